"""``jupyter-backendai policy`` and ``preset``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from traitlets import Integer, List, Unicode
from traitlets.config import Configurable

from ..db import admin, views
from ..db import models as m
from ._base import Command, CommandError, SlotCommand, SlotOptions, commands, listing, shown, split_values

# --- policies -----------------------------------------------------------------------------

POLICY_COLUMNS = (
    "name",
    "total_resource_slots",
    "max_concurrent_sessions",
    "max_containers_per_session",
    "idle_timeout",
    "max_vfolder_count",
    "max_vfolder_size",
    "allowed_vfolder_hosts",
)


class PolicyOptions(Configurable):
    """The non-slot fields of a keypair resource policy."""

    max_sessions = Integer(None, allow_none=True, config=True, help="Concurrent sessions (0 = unlimited).")
    containers_per_session = Integer(None, allow_none=True, config=True, help="Containers per session (1 or more).")
    idle_timeout = Integer(
        None, allow_none=True, config=True, help="Seconds of idleness before a session is ended (0 = never)."
    )
    max_session_lifetime = Integer(
        None, allow_none=True, config=True, help="Seconds a session may live (0 = unlimited)."
    )
    max_pending = Integer(None, allow_none=True, config=True, help="Sessions that may wait in the queue at once.")
    max_folders = Integer(None, allow_none=True, config=True, help="Folders a user may own (0 = unlimited).")
    folder_capacity = Unicode(
        None, allow_none=True, config=True, help="Size a folder may reach: 10g, 500m (0 = unlimited)."
    )
    allowed_hosts = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        config=True,
        help="Storage hosts allowed for folders (comma-separated or repeated).",
    )

    def fields(self) -> dict[str, Any]:
        size = None
        if self.folder_capacity is not None:
            try:
                size = (
                    int(admin.parse_slots({"disk": self.folder_capacity})["disk"]) if self.folder_capacity != "0" else 0
                )
            except (admin.AdminError, OverflowError):
                raise CommandError(
                    f"folder capacity: {self.folder_capacity!r} is not a size (examples: 10g, 500m)"
                ) from None
        return {
            "max_concurrent_sessions": self.max_sessions,
            "max_containers_per_session": self.containers_per_session,
            "idle_timeout": self.idle_timeout,
            "max_session_lifetime": self.max_session_lifetime,
            "max_pending_session_count": self.max_pending,
            "max_vfolder_count": self.max_folders,
            "max_vfolder_size": size,
            "allowed_vfolder_hosts": split_values(self.allowed_hosts) if self.allowed_hosts is not None else None,
        }


POLICY_ALIASES = {
    "max-sessions": "PolicyOptions.max_sessions",
    "containers-per-session": "PolicyOptions.containers_per_session",
    "idle-timeout": "PolicyOptions.idle_timeout",
    "max-session-lifetime": "PolicyOptions.max_session_lifetime",
    "max-pending": "PolicyOptions.max_pending",
    "max-folders": "PolicyOptions.max_folders",
    "folder-capacity": "PolicyOptions.folder_capacity",
    "allowed-hosts": "PolicyOptions.allowed_hosts",
}


class _PolicyWrite(SlotCommand):
    arguments = ("name",)
    classes = [SlotOptions, PolicyOptions]
    aliases = {**SlotCommand.aliases, **POLICY_ALIASES}

    def policy_fields(self) -> dict[str, Any]:
        slots = self.slot_options.slots()
        return {"total_resource_slots": slots or None, **PolicyOptions(parent=self).fields()}

    def message(self, verb: str, policy: m.KeyPairResourcePolicy, fields: dict[str, Any]) -> str:
        """What was set, read back from the row: ``updated policy p: max_concurrent_sessions 5``.

        Only the fields given (None is "not given"); the slots are "unlimited" when none is set.
        """
        parts = []
        for key, given in fields.items():
            if given is None:
                continue
            value = getattr(policy, key)
            if key == "total_resource_slots":
                parts.append(f"slots {value or 'unlimited'}")
            elif isinstance(value, (list, tuple)):
                parts.append(f"{key} {', '.join(map(str, value)) or '(none)'}")
            else:
                parts.append(f"{key} {value}")
        if not parts:
            parts = ["slots unlimited"] if verb == "created" else ["no option given, nothing changed"]
        return f"{verb} policy {policy.name}: " + "; ".join(parts)


class PolicyCreate(_PolicyWrite):
    name = "create"
    description = "Create a keypair resource policy; slots not given are unlimited."

    def run(self, db):
        fields = self.policy_fields()
        p = admin.create_policy(db, self.extra_args[0], **fields)
        return shown(views.policy_view(p), self.message("created", p, fields))


class PolicyUpdate(_PolicyWrite):
    name = "update"
    description = "Change a keypair resource policy; only the options given change."

    def run(self, db):
        fields = self.policy_fields()
        p = admin.update_policy(db, self.extra_args[0], **fields)
        return shown(views.policy_view(p), self.message("updated", p, fields))


class PolicyList(Command):
    name = "list"
    description = "List keypair resource policies."

    def run(self, db):
        rows = db.scalars(select(m.KeyPairResourcePolicy).order_by(m.KeyPairResourcePolicy.name))
        return listing([views.policy_view(p) for p in rows], POLICY_COLUMNS)


class PolicyDelete(Command):
    name = "delete"
    description = "Delete a policy that no keypair uses."
    arguments = ("name",)

    def run(self, db):
        admin.delete_policy(db, self.extra_args[0])
        return shown({"deleted": self.extra_args[0]}, f"deleted policy {self.extra_args[0]}")


class PolicyApp(Command):
    name = "policy"
    description = "Keypair resource policies."
    subcommands = commands(PolicyCreate, PolicyList, PolicyUpdate, PolicyDelete)


# --- presets ------------------------------------------------------------------------------

PRESET_COLUMNS = ("name", "resource_slots", "shared_memory", "scaling_group_name")


class _PresetWrite(SlotCommand):
    arguments = ("name",)
    shmem = Unicode(None, allow_none=True, config=True, help="Shared memory: 64m, 1g.")
    scaling_group = Unicode(None, allow_none=True, config=True, help="Offer it only in this resource group.")
    aliases = {**SlotCommand.aliases, "shmem": "_PresetWrite.shmem", "scaling-group": "_PresetWrite.scaling_group"}


class PresetCreate(_PresetWrite):
    name = "create"
    description = "Create a resource preset (a named amount of CPU, memory, GPUs and shared memory)."

    def run(self, db):
        p = admin.create_preset(
            db,
            self.extra_args[0],
            self.slot_options.slots(),
            shared_memory=self.shmem,
            scaling_group=self.scaling_group,
        )
        return shown(views.preset_view(p), f"created preset {p.name}: {p.resource_slots}")


class PresetUpdate(_PresetWrite):
    name = "update"
    description = "Change a resource preset."

    def run(self, db):
        p = admin.update_preset(
            db,
            self.extra_args[0],
            resource_slots=self.slot_options.slots(),
            shared_memory=self.shmem,
            scaling_group=self.scaling_group,
        )
        return shown(views.preset_view(p), f"updated preset {p.name}: {p.resource_slots}")


class PresetList(Command):
    name = "list"
    description = "List resource presets."

    def run(self, db):
        rows = db.scalars(select(m.ResourcePreset).order_by(m.ResourcePreset.name))
        return listing([views.preset_view(p) for p in rows], PRESET_COLUMNS)


class PresetDelete(Command):
    name = "delete"
    description = "Delete a resource preset."
    arguments = ("name",)

    def run(self, db):
        admin.delete_preset(db, self.extra_args[0])
        return shown({"deleted": self.extra_args[0]}, f"deleted preset {self.extra_args[0]}")


class PresetApp(Command):
    name = "preset"
    description = "Resource presets."
    subcommands = commands(PresetCreate, PresetList, PresetUpdate, PresetDelete)
