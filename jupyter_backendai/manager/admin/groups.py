"""``/admin/groups``: groups (projects) of a domain, their caps and members; the domain's admins manage them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...db import admin, views
from ...db import models as m
from .common import ORG_FIELDS, AdminHandler, check_user_reach, pick, reject_unknown


class GroupsHandler(AdminHandler):
    async def get(self):
        scope = self.domain_scope(self.get_query_argument("domain", None))

        def run(db: DB) -> list[dict[str, Any]]:
            query = select(m.Group).order_by(m.Group.domain_name, m.Group.name)
            if scope is not None:
                query = query.where(m.Group.domain_name == scope)
            return [views.group_view(g) for g in db.scalars(query)]

        self.send({"groups": await self.run_db(run)})

    async def post(self):
        data = self.json_body()
        reject_unknown(data, {"name", "domain", *ORG_FIELDS})
        fields = pick(data, {"name": str, "domain": str, **ORG_FIELDS})
        fields.setdefault("domain", self.me.domain)
        self.require_admin(fields["domain"])
        name = fields.pop("name", "")
        self.send(await self.run_db(lambda db: views.group_view(admin.create_group(db, name, **fields))), status=201)


class GroupHandler(AdminHandler):
    """``GET|PATCH /admin/groups/{name}?domain=``: a group (project); the admins of its domain change
    its caps and description, as for a domain (``domain`` defaults to the caller's)."""

    def _domain(self, given: str | None = None) -> str:
        domain = given or self.get_query_argument("domain", None) or self.me.domain
        self.require_admin(domain)
        return domain

    async def get(self, name: str):
        domain = self._domain()
        self.send(await self.run_db(lambda db: views.group_view(admin.get_group(db, name, domain))))

    async def patch(self, name: str):
        data = self.json_body()
        reject_unknown(data, {"domain", *ORG_FIELDS})
        fields = pick(data, {"domain": str, **ORG_FIELDS})
        domain = self._domain(fields.pop("domain", None))
        self.send(await self.run_db(lambda db: views.group_view(admin.update_group(db, name, domain, **fields))))


class GroupMembersHandler(AdminHandler):
    async def post(self, name: str):
        data = self.json_body()
        reject_unknown(data, {"add", "remove", "domain"})
        fields = pick(data, {"add": list, "remove": list, "domain": str})
        domain = fields.get("domain") or self.get_query_argument("domain", None) or self.me.domain
        self.require_admin(domain)

        def run(db: DB) -> dict[str, Any]:
            group = admin.get_group(db, name, domain)
            added, removed = [], []
            for key in fields.get("add", []):
                user = admin.get_user(db, key)
                check_user_reach(self.me, user)
                if admin.add_user_to_group(db, group, user):
                    added.append(user.email)
            for key in fields.get("remove", []):
                user = admin.get_user(db, key)
                check_user_reach(self.me, user)
                if admin.remove_user_from_group(db, group, user):
                    removed.append(user.email)
            return {"group": views.group_view(group), "added": added, "removed": removed}

        self.send(await self.run_db(run))


handlers = [
    (r"/admin/groups/?", GroupsHandler),
    (r"/admin/groups/([^/]+)/members", GroupMembersHandler),
    (r"/admin/groups/([^/]+)", GroupHandler),
]
