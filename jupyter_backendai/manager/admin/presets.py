"""``/admin/presets``: resource presets, offered in the spawn form and to ``check-presets``."""

from __future__ import annotations

from sqlalchemy import select

from ...db import admin, views
from ...db import models as m
from .common import AdminHandler, pick, reject_unknown

PRESET_FIELDS = {"resource_slots": dict, "shared_memory": (str, int), "scaling_group": str}


class PresetsHandler(AdminHandler):
    async def get(self):
        rows = await self.run_db(
            lambda db: [views.preset_view(p) for p in db.scalars(select(m.ResourcePreset).order_by("name"))]
        )
        self.send({"presets": rows})

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"name", *PRESET_FIELDS})
        fields = pick(data, {"name": str, **PRESET_FIELDS})
        name, slots = fields.pop("name", ""), fields.pop("resource_slots", {})
        self.send(
            await self.run_db(lambda db: views.preset_view(admin.create_preset(db, name, slots, **fields))), status=201
        )


class PresetHandler(AdminHandler):
    async def get(self, name: str):
        self.send(await self.run_db(lambda db: views.preset_view(admin.get_preset(db, name))))

    async def patch(self, name: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, set(PRESET_FIELDS))
        fields = pick(data, PRESET_FIELDS)
        self.send(await self.run_db(lambda db: views.preset_view(admin.update_preset(db, name, **fields))))

    async def delete(self, name: str):
        self.require_superadmin()
        await self.run_db(admin.delete_preset, name)
        self.send({"deleted": name})


handlers = [
    (r"/admin/presets/?", PresetsHandler),
    (r"/admin/presets/([^/]+)", PresetHandler),
]
