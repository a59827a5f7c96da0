"""``GET /resource/launch-options``: the choices of a start dialog (projects, images, resource groups).

The spawn form offers these from the spawner; launchers outside the hub (the lab panels, the
notebook widgets) read them here. The rules are the spawner's (``_allowed_images`` and
``_allowed_scaling_groups``), so that what is offered is what a spawn accepts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ..db import models as m
from ..db import views
from .api_resources import _group_of, allowed_scaling_groups
from .base import APIHandler


def allowed_images(db: DB, user: m.User, group: m.Group | None) -> list[m.Image]:
    """Installed images from the ``local`` registry or a registry the domain or project allows."""
    domain = db.get(m.Domain, user.domain_name)
    registries = set(domain.allowed_docker_registries or []) | set(
        (group.allowed_docker_registries or []) if group is not None else []
    )
    rows = db.scalars(select(m.Image).where(m.Image.installed.is_(True)).order_by(m.Image.name, m.Image.tag))
    return [i for i in rows if i.registry_host == "local" or i.registry_host in registries]


# What a start dialog needs of an image; the encoding is the admin API's (views.image_view).
LAUNCH_IMAGE_FIELDS = (
    "reference",
    "name",
    "tag",
    "registry",
    "architecture",
    "labels",
    "resource_limits",
    "service_ports",
)


def image_item(image: m.Image) -> dict[str, Any]:
    view = views.image_view(image)
    return {key: view[key] for key in LAUNCH_IMAGE_FIELDS}


class LaunchOptionsHandler(APIHandler):
    """``GET /resource/launch-options?group=``: the caller's projects, and the images and resource groups of one."""

    async def get(self) -> None:
        data = self.json_body()
        group_name = self.param(data, "group", kind=str)

        def read(db: DB) -> dict[str, Any]:
            user = db.get(m.User, self.identity.user_id)
            keypair = db.get(m.KeyPair, self.identity.access_key)
            group = _group_of(user, group_name)
            return {
                "groups": [{"name": g.name, "id": str(g.id)} for g in sorted(user.groups, key=lambda g: g.name)],
                "group": group.name if group is not None else None,
                "images": [image_item(i) for i in allowed_images(db, user, group)],
                "scaling_groups": allowed_scaling_groups(db, user, keypair, group),
            }

        self.send(await self.run_db(read))


handlers = [(r"/resource/launch-options/?", LaunchOptionsHandler)]
