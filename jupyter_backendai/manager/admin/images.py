"""``/admin/images``: the images offered, their installs onto agents, the rescan of the registries and the cleanup.

The registries are read by :mod:`..registry`; this module only stores what it found.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...db import admin, views
from ...db import images as image_db
from ...db import models as m
from ...db import sessions as session_db
from ..base import APIError
from ..registry import RegistryAccess, ScanReport, scan_registry
from .common import AdminHandler, bool_arg, pick, reject_unknown


def image_view(db: DB, image: m.Image, installs: dict[str, list[m.AgentImage]] | None = None) -> dict[str, Any]:
    """An image with the agents that have it and the installs in progress (``installed_agents``, ``installs``)."""
    ref = image_db.reference_of(image)
    if installs is None:
        installs = image_db.installs_by_reference(db, [ref])
    return {**views.image_view(image), **image_db.agents_view(installs.get(ref, ()))}


class ImagesHandler(AdminHandler):
    async def get(self):
        installed = bool_arg(self.get_query_argument("installed", None), "installed")

        def run(db: DB) -> list[dict[str, Any]]:
            query = select(m.Image).order_by(m.Image.registry_host, m.Image.name, m.Image.tag, m.Image.architecture)
            if installed is not None:
                query = query.where(m.Image.installed.is_(installed))
            installs = image_db.installs_by_reference(db)
            return [image_view(db, i, installs) for i in db.scalars(query)]

        self.send({"images": await self.run_db(run)})


class ImageHandler(AdminHandler):
    async def get(self, ref: str):
        arch = self.get_query_argument("architecture", None)
        self.send(await self.run_db(lambda db: image_view(db, admin.get_image(db, ref, arch))))

    async def patch(self, ref: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"min_slots", "architecture"})
        fields = pick(data, {"min_slots": dict, "architecture": str})
        if "min_slots" not in fields:
            raise APIError(400, '\'min_slots\' is required, like {"cpu": 1, "mem": "1g"}')
        arch = fields.get("architecture") or self.get_query_argument("architecture", None)

        def run(db: DB) -> dict[str, Any]:
            return image_view(db, admin.set_image_min(db, admin.get_image(db, ref, arch), fields["min_slots"]))

        self.send(await self.run_db(run))


class ImageInstallHandler(AdminHandler):
    """``POST /admin/images/{ref}/install``: the agents pull the image (Backend.AI's "install").

    The manager only queues the installs; the hub's backend pulls onto its agents (Docker: the
    hub's engine; Swarm: each node) and keeps each agent's state, which ``GET /admin/images``
    shows in ``installs`` (queued, pulling with bytes done, installed, failed with the reason)
    and ``installed_agents``. Once an agent has it the image is ``installed`` and offered.
    """

    async def post(self, ref: str):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"scaling_group", "agents", "architecture"})
        fields = pick(data, {"scaling_group": str, "agents": list, "architecture": str})
        arch = fields.get("architecture") or self.get_query_argument("architecture", None)

        def run(db: DB) -> dict[str, Any]:
            image = admin.get_image(db, ref, arch)
            image_db.pull_source(db, image.reference)  # an image no agent can pull is refused now, with why
            agents = image_db.install_targets(
                db, scaling_group=fields.get("scaling_group"), agent_ids=fields.get("agents")
            )
            queued, already = image_db.queue_install(db, image, agents)
            return {"image": image.reference, "queued": queued, "already": already, **image_view(db, image)}

        self.send(await self.run_db(run), status=202)


class ImageCleanupHandler(AdminHandler):
    """Forget image rows that no agent has and no session in flight names (Maintenance → clean up images).

    Only the database is touched: images on the agents are the spawners' business. A session
    still pending or running keeps its image row, so its reference stays resolvable.
    """

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"dry_run", "registry"})
        opts = pick(data, {"dry_run": bool, "registry": str})

        def run(db: DB) -> dict[str, Any]:
            in_use: set[tuple[str, str, str]] = set()
            for ref in db.scalars(select(m.Session.image).where(m.Session.status.in_(session_db.RESERVING))):
                try:
                    in_use.add(admin.parse_image_ref(ref))
                except admin.AdminError:
                    continue
            query = select(m.Image).where(m.Image.installed.is_(False))
            if "registry" in opts:
                query = query.where(m.Image.registry_host == opts["registry"])
            removed, kept = [], []
            for image in db.scalars(query):
                if (image.registry_host, image.name, image.tag) in in_use:
                    kept.append(image.reference)
                    continue
                removed.append(f"{image.reference} ({image.architecture})")
                if not opts.get("dry_run"):
                    db.delete(image)
            db.flush()
            return {"removed": sorted(removed), "kept_in_use": sorted(kept), "dry_run": bool(opts.get("dry_run"))}

        self.send(await self.run_db(run))


class ImageRescanHandler(AdminHandler):
    """Read every registry and upsert the images labeled for the platform (Maintenance → rescan images).

    Registries are read concurrently on the event loop; the database is written in one
    transaction afterwards, so a scan that fails half-way leaves the images as they were for
    that registry and reports why instead of answering 500.
    """

    async def post(self):
        self.require_superadmin()
        data = self.json_body()
        reject_unknown(data, {"registry"})
        only = pick(data, {"registry": str}).get("registry") or self.get_query_argument("registry", None)

        def registries(db: DB) -> list[RegistryAccess]:
            query = select(m.ContainerRegistry).order_by(m.ContainerRegistry.hostname)
            if only:
                query = query.where(m.ContainerRegistry.hostname == admin.get_registry(db, only).hostname)
            return [
                RegistryAccess(r.hostname, r.url, r.username, r.password, r.project, bool(r.ssl_verify))
                for r in db.scalars(query)
            ]

        accesses = await self.run_db(registries)
        report = ScanReport()
        await asyncio.gather(*(scan_registry(a, report) for a in accesses))

        def store(db: DB) -> dict[str, Any]:
            added, updated = [], []
            for image in sorted(report.images, key=lambda i: (i.reference, i.architecture)):
                host = image.reference.split("/", 1)[0]
                try:
                    if admin.parse_image_ref(image.reference)[0] != host:
                        raise admin.AdminError(
                            f"registry host name {host!r} is not read as a registry in image references "
                            "(it needs a '.', a ':port' or to be 'localhost')"
                        )
                    row, created = admin.upsert_image(
                        db, image.reference, labels=image.labels, architecture=image.architecture, digest=image.digest
                    )
                except admin.AdminError as e:  # checked before the row is touched: the others still count
                    report.errors.append(f"{image.reference} ({image.architecture}): {e}")
                    continue
                (added if created else updated).append(f"{row.reference} ({row.architecture})")
            return {
                "added": len(added),
                "updated": len(updated),
                "images": added + updated,
                "skipped": sorted(report.skipped),
                "errors": sorted(report.errors),
                "registries": [a.hostname for a in accesses],
            }

        self.send(await self.run_db(store))


handlers = [
    (r"/admin/images/?", ImagesHandler),
    (r"/admin/images/rescan", ImageRescanHandler),
    (r"/admin/images/cleanup", ImageCleanupHandler),
    (r"/admin/images/(.+)/install", ImageInstallHandler),
    (r"/admin/images/(.+)", ImageHandler),
]
