"""``/admin/scaling-groups``: resource groups and whom they are open to (domains, groups, keypairs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...db import admin, views
from ...db import models as m
from ..base import APIError
from .common import AdminHandler, pick, reject_unknown

SGROUP_FIELDS = {
    "description": str,
    "scheduler": str,
    "pending_timeout": int,
    "agent_selection": str,
    "fifo_max_skips": int,
    "is_active": bool,
}


class ScalingGroupsHandler(AdminHandler):
    async def get(self):
        me = self.me

        def run(db: DB) -> list[dict[str, Any]]:
            rows = db.scalars(select(m.ScalingGroup).order_by(m.ScalingGroup.name))
            # A domain admin sees the resource groups open to their domain.
            return [
                views.scaling_group_view(s)
                for s in rows
                if me.is_superadmin or any(d.name == me.domain for d in s.domains)
            ]

        self.send({"scaling_groups": await self.run_db(run)})

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        allowed = {"name", "driver", *SGROUP_FIELDS}
        reject_unknown(data, allowed)
        fields = pick(data, {"name": str, "driver": str, **SGROUP_FIELDS})
        name = fields.pop("name", "")
        self.send(
            await self.run_db(lambda db: views.scaling_group_view(admin.create_scaling_group(db, name, **fields))),
            status=201,
        )


class ScalingGroupHandler(AdminHandler):
    async def get(self, name: str):
        me = self.me

        def run(db: DB) -> dict[str, Any]:
            sgroup = admin.get_scaling_group(db, name)
            if not me.is_superadmin and not any(d.name == me.domain for d in sgroup.domains):
                raise APIError(403, f"resource group {name!r} is not open to your domain {me.domain!r}")
            return views.scaling_group_view(sgroup)

        self.send(await self.run_db(run))

    async def patch(self, name: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, set(SGROUP_FIELDS))
        fields = pick(data, SGROUP_FIELDS)
        self.send(
            await self.run_db(lambda db: views.scaling_group_view(admin.update_scaling_group(db, name, **fields)))
        )


def _group_pairs(values: list[Any]) -> list[tuple[str, str]]:
    """Groups as ``"domain/name"`` (how the view lists them), ``{"name", "domain"}`` or a name in default."""
    pairs = []
    for value in values:
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            pairs.append((value["name"], str(value.get("domain") or admin.DEFAULT)))
        elif isinstance(value, str) and "/" in value:
            domain, _, name = value.partition("/")
            pairs.append((name, domain))
        elif isinstance(value, str):
            pairs.append((value, admin.DEFAULT))
        else:
            raise APIError(400, f'a group is \'domain/name\', a name or {{"name", "domain"}}, not {value!r}')
    return pairs


class ScalingGroupAllowHandler(AdminHandler):
    async def post(self, name: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"domains", "groups", "keypairs", "revoke"})
        fields = pick(
            data, {"domains": list, "groups": list, "keypairs": list, "revoke": bool}, mixed_lists=frozenset({"groups"})
        )
        groups = _group_pairs(fields.pop("groups", []))

        def run(db: DB) -> dict[str, Any]:
            return views.scaling_group_view(admin.allow_scaling_group(db, name, groups=groups, **fields))

        self.send(await self.run_db(run))


handlers = [
    (r"/admin/scaling-groups/?", ScalingGroupsHandler),
    (r"/admin/scaling-groups/([^/]+)/allow", ScalingGroupAllowHandler),
    (r"/admin/scaling-groups/([^/]+)", ScalingGroupHandler),
]
