"""``jupyter-backendai sgroup``: resource groups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from traitlets import Bool, Integer, List, Unicode

from ..db import admin, views
from ..db import models as m
from ._base import Command, CommandError, commands, listing, shown, split_values, yes_no_flags

# --- resource groups ----------------------------------------------------------------------

SGROUP_COLUMNS = (
    "name",
    "is_active",
    "scheduler",
    "pending_timeout",
    "scheduler_opts",
    "allowed_domains",
    "allowed_groups",
)


class _ScalingGroupWrite(Command):
    arguments = ("name",)
    description_text = Unicode(
        None, allow_none=True, config=True, help="A description of the resource group, for administrators."
    )
    scheduler = Unicode(
        None, allow_none=True, config=True, help="The queue's order: fifo, lifo or drf (dominant resource fairness)."
    )
    pending_timeout = Integer(
        None, allow_none=True, config=True, help="Seconds a session may wait in the queue (0 = forever)."
    )
    agent_selection = Unicode(None, allow_none=True, config=True, help="concentrated or dispersed.")
    fifo_max_skips = Integer(
        None, allow_none=True, config=True, help="How often FIFO may pass a head-of-line session that does not fit."
    )
    active = Bool(None, allow_none=True, config=True, help="Whether the group takes new sessions.")
    aliases = {
        **Command.aliases,
        "description": "_ScalingGroupWrite.description_text",
        "scheduler": "_ScalingGroupWrite.scheduler",
        "pending-timeout": "_ScalingGroupWrite.pending_timeout",
        "agent-selection": "_ScalingGroupWrite.agent_selection",
        "fifo-max-skips": "_ScalingGroupWrite.fifo_max_skips",
    }
    flags = {**Command.flags, **yes_no_flags("_ScalingGroupWrite", "active", "active", "active")}

    def opts(self) -> dict[str, Any]:
        return {
            "description": self.description_text,
            "scheduler": self.scheduler,
            "pending_timeout": self.pending_timeout,
            "agent_selection": self.agent_selection,
            "fifo_max_skips": self.fifo_max_skips,
            "is_active": self.active,
        }


class ScalingGroupCreate(_ScalingGroupWrite):
    name = "create"
    description = "Create a resource group (its queue, scheduler and agent selection)."

    def run(self, db):
        given = {k: v for k, v in self.opts().items() if v is not None}
        s = admin.create_scaling_group(db, self.extra_args[0], **given)
        return shown(views.scaling_group_view(s), f"created resource group {s.name} ({s.scheduler.value})")


class ScalingGroupUpdate(_ScalingGroupWrite):
    name = "update"
    description = "Change a resource group."

    def run(self, db):
        s = admin.update_scaling_group(db, self.extra_args[0], **self.opts())
        return shown(views.scaling_group_view(s), f"updated resource group {s.name}")


class ScalingGroupList(Command):
    name = "list"
    description = "List resource groups."

    def run(self, db):
        rows = db.scalars(select(m.ScalingGroup).order_by(m.ScalingGroup.name))
        return listing([views.scaling_group_view(s) for s in rows], SGROUP_COLUMNS)


class ScalingGroupAllow(Command):
    name = "allow"
    description = "Let domains, groups (DOMAIN/GROUP or GROUP in the default domain) and keypairs use a resource group."
    arguments = ("name",)
    domains = List(Unicode(), config=True, help="Domains to allow (repeat --domain).")
    groups = List(Unicode(), config=True, help="Groups to allow: DOMAIN/GROUP or GROUP (repeat --group).")
    keypairs = List(Unicode(), config=True, help="Access keys to allow (repeat --keypair).")
    revoke = Bool(False, config=True, help="Take the access back instead.")
    aliases = {
        **Command.aliases,
        "domain": "ScalingGroupAllow.domains",
        "group": "ScalingGroupAllow.groups",
        "keypair": "ScalingGroupAllow.keypairs",
    }
    flags = {**Command.flags, "revoke": ({"ScalingGroupAllow": {"revoke": True}}, "Take the access back instead.")}

    def run(self, db):
        if not (self.domains or self.groups or self.keypairs):
            raise CommandError("name what to allow: --domain D, --group DOMAIN/GROUP or --keypair AK")
        groups = [
            tuple(reversed(g.split("/", 1))) if "/" in g else (g, admin.DEFAULT) for g in split_values(self.groups)
        ]
        s = admin.allow_scaling_group(
            db,
            self.extra_args[0],
            domains=split_values(self.domains),
            groups=groups,
            keypairs=split_values(self.keypairs),
            revoke=self.revoke,
        )
        return shown(
            views.scaling_group_view(s),
            f"resource group {s.name}: domains {', '.join(d.name for d in s.domains) or '-'}; "
            f"groups {', '.join(g.name for g in s.groups) or '-'}; keypairs {len(s.keypairs)}",
        )


class ScalingGroupApp(Command):
    name = "scaling-group"
    description = "Resource groups (scaling groups)."
    subcommands = commands(ScalingGroupCreate, ScalingGroupList, ScalingGroupUpdate, ScalingGroupAllow)
