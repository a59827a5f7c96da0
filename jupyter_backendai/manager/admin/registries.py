"""``/admin/registries``: the container registries that a rescan reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...db import admin, views
from ...db import models as m
from .common import AdminHandler, pick, reject_unknown

REGISTRY_CREATE = {"hostname": str, "url": str, "username": str, "password": str, "project": str, "ssl_verify": bool}


class RegistriesHandler(AdminHandler):
    async def get(self):
        rows = await self.run_db(
            lambda db: [views.registry_view(r) for r in db.scalars(select(m.ContainerRegistry).order_by("hostname"))]
        )
        self.send({"registries": rows})

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, set(REGISTRY_CREATE))
        fields = pick(data, REGISTRY_CREATE)
        hostname, url = fields.pop("hostname", ""), fields.pop("url", "")
        ssl_verify = fields.pop("ssl_verify", True)

        def run(db: DB) -> dict[str, Any]:
            registry = admin.add_registry(db, hostname, url, **fields)
            registry.ssl_verify = ssl_verify
            return views.registry_view(registry)

        self.send(await self.run_db(run), status=201)


class RegistryHandler(AdminHandler):
    async def get(self, hostname: str):
        self.send(await self.run_db(lambda db: views.registry_view(admin.get_registry(db, hostname))))

    async def delete(self, hostname: str):
        self.require_superadmin()
        await self.run_db(admin.remove_registry, hostname)
        self.send({"deleted": hostname})


handlers = [
    (r"/admin/registries/?", RegistriesHandler),
    (r"/admin/registries/([^/]+)", RegistryHandler),
]
