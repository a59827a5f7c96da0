"""``jupyter-backendai image`` and ``registry``."""

from __future__ import annotations

from sqlalchemy import select
from traitlets import Bool, Dict, List, Unicode

from ..db import admin, views
from ..db import images as image_db
from ..db import models as m
from ._base import Command, CommandError, SlotCommand, commands, listing, shown

# --- images and registries ----------------------------------------------------------------

IMAGE_COLUMNS = ("reference", "architecture", "installed", "installed_agents", "resource_limits", "service_ports")


class ImageList(Command):
    name = "list"
    description = "List images with their minimum resources."
    installed = Bool(False, config=True, help="Only images installed on an agent.")
    flags = {**Command.flags, "installed": ({"ImageList": {"installed": True}}, "Only installed images.")}

    def run(self, db):
        query = select(m.Image).order_by(m.Image.registry_host, m.Image.name, m.Image.tag)
        if self.installed:
            query = query.where(m.Image.installed.is_(True))
        installs = image_db.installs_by_reference(db)
        rows = [
            {**views.image_view(i), **image_db.agents_view(installs.get(image_db.reference_of(i), ()))}
            for i in db.scalars(query)
        ]
        for row in rows:
            row["service_ports"] = [p["name"] for p in row["service_ports"]]
        return listing(rows, IMAGE_COLUMNS)


class ImageAdd(Command):
    name = "add"
    description = "Add an image (or refresh it) with its labels, as a rescan would."
    arguments = ("image",)
    labels = Dict({}, config=True, help="A label as KEY=VALUE, repeatable (ai.backend.resource.min.cpu=1).")
    installed = Bool(False, config=True, help="Mark it installed on the agents.")
    aliases = {**Command.aliases, "label": "ImageAdd.labels"}
    flags = {**Command.flags, "installed": ({"ImageAdd": {"installed": True}}, "Mark it installed on the agents.")}

    def run(self, db):
        image, created = admin.upsert_image(db, self.extra_args[0], labels=self.labels, installed=self.installed)
        return shown(views.image_view(image), f"{'added' if created else 'refreshed'} image {image.reference}")


class ImageSetMin(SlotCommand):
    name = "set-min"
    description = "Set an image's minimum resources; requests below it are raised to it."
    arguments = ("image",)

    def run(self, db):
        slots = self.slot_options.slots()
        if not slots:
            raise CommandError("give at least one amount, for example --cpu 1 --mem 1g")
        image = admin.set_image_min(db, admin.get_image(db, self.extra_args[0]), slots)
        return shown(views.image_view(image), f"image {image.reference} minimum: {image.min_slots}")


class ImageInstall(Command):
    name = "install"
    description = "Have the agents pull an image from its registry (the running hub does the pulls)."
    arguments = ("image",)
    scaling_group = Unicode(None, allow_none=True, config=True, help="Only the agents of this resource group.")
    agents = List(Unicode(), config=True, help="Only these agents (ids, repeatable).")
    aliases = {**Command.aliases, "scaling-group": "ImageInstall.scaling_group", "agent": "ImageInstall.agents"}

    def run(self, db):
        image = admin.get_image(db, self.extra_args[0])
        image_db.pull_source(db, image.reference)
        agents = image_db.install_targets(db, scaling_group=self.scaling_group, agent_ids=self.agents or None)
        queued, already = image_db.queue_install(db, image, agents)
        text = f"queued the install of {image.reference} on {', '.join(queued) or 'no agent'}"
        if already:
            text += f" (already there or on its way: {', '.join(already)})"
        return shown({"image": image.reference, "queued": queued, "already": already}, text)


class ImageApp(Command):
    name = "image"
    description = "Images (environments)."
    subcommands = commands(ImageList, ImageAdd, ImageSetMin, ImageInstall)


REGISTRY_COLUMNS = ("hostname", "url", "type", "project", "username", "has_password")


class RegistryAdd(Command):
    name = "add"
    description = "Add a Docker registry that images are pulled from and rescanned in."
    arguments = ("hostname", "url")
    username = Unicode(None, allow_none=True, config=True, help="User name for the registry.")
    password = Unicode(None, allow_none=True, config=True, help="Password for the registry.")
    project = Unicode(None, allow_none=True, config=True, help="Only this project (namespace) of the registry.")
    aliases = {
        **Command.aliases,
        "username": "RegistryAdd.username",
        "password": "RegistryAdd.password",
        "project": "RegistryAdd.project",
    }

    def run(self, db):
        r = admin.add_registry(
            db,
            self.extra_args[0],
            self.extra_args[1],
            username=self.username,
            password=self.password,
            project=self.project,
        )
        return shown(views.registry_view(r), f"added registry {r.hostname} ({r.url})")


class RegistryList(Command):
    name = "list"
    description = "List registries."

    def run(self, db):
        rows = db.scalars(select(m.ContainerRegistry).order_by(m.ContainerRegistry.hostname))
        return listing([views.registry_view(r) for r in rows], REGISTRY_COLUMNS)


class RegistryRemove(Command):
    name = "remove"
    description = "Remove a registry."
    arguments = ("hostname",)

    def run(self, db):
        admin.remove_registry(db, self.extra_args[0])
        return shown({"removed": self.extra_args[0]}, f"removed registry {self.extra_args[0]}")


class RegistryApp(Command):
    name = "registry"
    description = "Docker registries."
    subcommands = commands(RegistryAdd, RegistryList, RegistryRemove)
