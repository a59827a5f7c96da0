"""``jupyter-backendai domain`` and ``group``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from traitlets import List, Unicode

from ..db import admin, views
from ..db import models as m
from ._base import Command, CommandError, SlotCommand, commands, listing, shown, split_values

# --- domains and groups -----------------------------------------------------------------------

DOMAIN_COLUMNS = ("name", "is_active", "total_resource_slots", "allowed_vfolder_hosts", "description")
GROUP_COLUMNS = ("name", "domain_name", "is_active", "total_resource_slots", "members")


class DomainCreate(SlotCommand):
    name = "create"
    description = "Create a domain; --cpu/--mem/... cap what all its sessions together hold."
    arguments = ("name",)
    description_text = Unicode("", config=True, help="A description of the domain, for administrators.")
    allowed_hosts = List(Unicode(), config=True, help="Storage hosts its users may create folders on.")
    aliases = {
        **SlotCommand.aliases,
        "description": "DomainCreate.description_text",
        "allowed-hosts": "DomainCreate.allowed_hosts",
    }

    def run(self, db):
        d = admin.create_domain(
            db,
            self.extra_args[0],
            description=self.description_text,
            total_resource_slots=self.slot_options.slots(),
            allowed_vfolder_hosts=split_values(self.allowed_hosts),
        )
        return shown(views.domain_view(d), f"created domain {d.name}")


class DomainList(Command):
    name = "list"
    description = "List domains."

    def run(self, db):
        rows = db.scalars(select(m.Domain).order_by(m.Domain.name)).all()
        return listing([views.domain_view(d) for d in rows], DOMAIN_COLUMNS)


class _OrgUpdate(SlotCommand):
    """Change the caps (``--cpu 32``; ``--cpu unlimited`` lifts one) or the description."""

    arguments = ("name",)
    description_text = Unicode(None, allow_none=True, config=True, help="A new description, for administrators.")

    def fields(self) -> dict[str, Any]:
        slots = self.slot_options.slots()
        return {"total_resource_slots": slots or None, "description": self.description_text}

    def message(self, what: str, org: Any, fields: dict[str, Any]) -> str:
        given = {k: v for k, v in fields.items() if v is not None}
        if not given:
            return f"updated {what}: no option given, nothing changed"
        parts = []
        if "total_resource_slots" in given:
            parts.append(f"caps {org.total_resource_slots or 'none (unlimited)'}")
        if "description" in given:
            parts.append(f"description {org.description!r}")
        return f"updated {what}: " + "; ".join(parts)


class DomainUpdate(_OrgUpdate):
    name = "update"
    description = "Change a domain's caps (--cpu/--mem/...; 'unlimited' lifts one) or description."
    aliases = {**SlotCommand.aliases, "description": "DomainUpdate.description_text"}

    def run(self, db):
        fields = self.fields()
        d = admin.update_domain(db, self.extra_args[0], **fields)
        return shown(views.domain_view(d), self.message(f"domain {d.name}", d, fields))


class DomainApp(Command):
    name = "domain"
    description = "Domains."
    subcommands = commands(DomainCreate, DomainList, DomainUpdate)


class GroupCommand(SlotCommand):
    domain = Unicode(admin.DEFAULT, config=True, help="The domain of the group.")
    aliases = {**SlotCommand.aliases, "domain": "GroupCommand.domain"}


class GroupCreate(GroupCommand):
    name = "create"
    description = "Create a group (project) in a domain; --cpu/--mem/... cap what its sessions together hold."
    arguments = ("name",)
    description_text = Unicode("", config=True, help="A description of the group (project), for administrators.")
    allowed_hosts = List(Unicode(), config=True, help="Storage hosts for its group folders.")
    aliases = {
        **GroupCommand.aliases,
        "description": "GroupCreate.description_text",
        "allowed-hosts": "GroupCreate.allowed_hosts",
    }

    def run(self, db):
        g = admin.create_group(
            db,
            self.extra_args[0],
            domain=self.domain,
            description=self.description_text,
            total_resource_slots=self.slot_options.slots(),
            allowed_vfolder_hosts=split_values(self.allowed_hosts),
        )
        return shown(views.group_view(g), f"created group {g.name} in domain {g.domain_name}")


class GroupList(Command):
    name = "list"
    description = "List groups (all domains, or --domain D)."
    domain = Unicode("", config=True, help="Only this domain's groups.")
    aliases = {**Command.aliases, "domain": "GroupList.domain"}

    def run(self, db):
        query = select(m.Group).order_by(m.Group.domain_name, m.Group.name)
        if self.domain:
            admin.get_domain(db, self.domain)
            query = query.where(m.Group.domain_name == self.domain)
        return listing([views.group_view(g) for g in db.scalars(query)], GROUP_COLUMNS)


class GroupAddUser(GroupCommand):
    name = "add-user"
    description = "Make users members of a group."
    arguments = ("group", "email")
    variadic = True

    def run(self, db):
        group = admin.get_group(db, self.extra_args[0], self.domain)
        for who in self.extra_args[1:]:
            admin.add_user_to_group(db, group, admin.get_user(db, who))
        return shown(views.group_view(group), f"group {group.name}: {', '.join(sorted(u.email for u in group.users))}")


class GroupRemoveUser(GroupCommand):
    name = "remove-user"
    description = "Take users out of a group."
    arguments = ("group", "email")
    variadic = True

    def run(self, db):
        group = admin.get_group(db, self.extra_args[0], self.domain)
        for who in self.extra_args[1:]:
            if not admin.remove_user_from_group(db, group, admin.get_user(db, who)):
                raise CommandError(f"{who} is not a member of group {group.name}")
        return shown(
            views.group_view(group),
            f"group {group.name}: {', '.join(sorted(u.email for u in group.users)) or 'no members'}",
        )


class GroupUpdate(_OrgUpdate, GroupCommand):
    name = "update"
    description = "Change a group's caps (--cpu/--mem/...; 'unlimited' lifts one) or description."
    aliases = {**GroupCommand.aliases, "description": "GroupUpdate.description_text"}

    def run(self, db):
        fields = self.fields()
        g = admin.update_group(db, self.extra_args[0], self.domain, **fields)
        return shown(views.group_view(g), self.message(f"group {g.name} in domain {g.domain_name}", g, fields))


class GroupApp(Command):
    name = "group"
    description = "Groups (projects)."
    subcommands = commands(GroupCreate, GroupList, GroupUpdate, GroupAddUser, GroupRemoveUser)
