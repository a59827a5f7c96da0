"""``GET /resource/launch-options``: the choices of a start dialog (projects, images, resource groups).

The spawn form offers these from the spawner; launchers outside the hub (the lab panels, the
notebook widgets) read them here. The rules are the spawner's (db/launch.py), so that what is
offered is what a spawn accepts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session as DB

from ..db import launch, views
from ..db import models as m
from .base import APIError, APIHandler

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
            try:
                user, keypair, group = launch.launcher(db, self.identity.user_id, group_name)
            except launch.Refused as e:
                raise APIError(403, str(e)) from None
            return {
                "groups": [{"name": g.name, "id": str(g.id)} for g in sorted(user.groups, key=lambda g: g.name)],
                "group": group.name if group is not None else None,
                "images": [image_item(i) for i in launch.allowed_images(db, user, group)],
                "scaling_groups": launch.allowed_scaling_groups(db, user, keypair, group),
            }

        self.send(await self.run_db(read))


handlers = [(r"/resource/launch-options/?", LaunchOptionsHandler)]
