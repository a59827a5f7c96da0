"""``/admin/domains``: domains and their caps; superadmins create and change them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...db import admin, views
from ...db import models as m
from .common import ORG_FIELDS, AdminHandler, pick, reject_unknown


class DomainsHandler(AdminHandler):
    async def get(self):
        scope = self.domain_scope(None)

        def run(db: DB) -> list[dict[str, Any]]:
            query = select(m.Domain).order_by(m.Domain.name)
            if scope is not None:
                query = query.where(m.Domain.name == scope)
            return [views.domain_view(d) for d in db.scalars(query)]

        self.send({"domains": await self.run_db(run)})

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"name", *ORG_FIELDS})
        fields = pick(data, {"name": str, **ORG_FIELDS})
        name = fields.pop("name", "")
        self.send(await self.run_db(lambda db: views.domain_view(admin.create_domain(db, name, **fields))), status=201)


class DomainHandler(AdminHandler):
    """``GET|PATCH /admin/domains/{name}``: a domain; superadmins change its caps and description.

    ``total_resource_slots`` in a PATCH changes the slots it names (``"unlimited"`` lifts a
    cap) and keeps the others; see :func:`...db.admin.update_domain`.
    """

    async def get(self, name: str):
        self.require_admin(name)
        self.send(await self.run_db(lambda db: views.domain_view(admin.get_domain(db, name))))

    async def patch(self, name: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, set(ORG_FIELDS))
        fields = pick(data, ORG_FIELDS)
        self.send(await self.run_db(lambda db: views.domain_view(admin.update_domain(db, name, **fields))))


handlers = [
    (r"/admin/domains/?", DomainsHandler),
    (r"/admin/domains/([^/]+)", DomainHandler),
]
