"""``/admin/policies``: keypair resource policies; superadmins change them, admins read them."""

from __future__ import annotations

from sqlalchemy import select

from ...db import admin, views
from ...db import models as m
from ..base import APIError
from .common import AdminHandler, pick, reject_unknown

#: What a policy body may carry; the values are checked by admin.create_policy / update_policy.
POLICY_FIELDS = {"total_resource_slots", "allowed_vfolder_hosts", *admin.POLICY_FIELDS}
#: The JSON shapes admin.check_hosts and parse_slots assume (a bare string would be read as a list of letters).
POLICY_SHAPES: dict[str, type | tuple[type, ...]] = {"total_resource_slots": dict, "allowed_vfolder_hosts": list}


class PoliciesHandler(AdminHandler):
    async def get(self):
        rows = await self.run_db(
            lambda db: [views.policy_view(p) for p in db.scalars(select(m.KeyPairResourcePolicy).order_by("name"))]
        )
        self.send({"policies": rows})

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"name", *POLICY_FIELDS})
        pick(data, POLICY_SHAPES)
        name = data.pop("name", None)
        if not isinstance(name, str):
            raise APIError(400, "'name' is required")
        # The field names and values are checked by admin.create_policy ("unknown policy field ...").
        self.send(await self.run_db(lambda db: views.policy_view(admin.create_policy(db, name, **data))), status=201)


class PolicyHandler(AdminHandler):
    async def get(self, name: str):
        self.send(await self.run_db(lambda db: views.policy_view(admin.get_policy(db, name))))

    async def patch(self, name: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, POLICY_FIELDS)
        pick(data, POLICY_SHAPES)
        self.send(await self.run_db(lambda db: views.policy_view(admin.update_policy(db, name, **data))))

    async def delete(self, name: str):
        self.require_superadmin()
        await self.run_db(admin.delete_policy, name)
        self.send({"deleted": name})


handlers = [
    (r"/admin/policies/?", PoliciesHandler),
    (r"/admin/policies/([^/]+)", PolicyHandler),
]
