"""``jupyter-backendai``: the operator's command line.

A tree of traitlets Applications, the way JupyterHub builds ``jupyterhub upgrade-db``: the
top command has a sub-command per kind of thing (``user``, ``policy``...), each of those a
sub-command per action. Every leaf takes ``--db-url`` (or ``$BACKENDAI_DB_URL``) and every
listing takes ``--json``. Bad input ends with one line on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from traitlets import Bool, Dict, Integer, List, TraitError, Unicode
from traitlets.config import Application, Configurable
from traitlets.config.loader import ArgumentError

from ._version import __version__
from .core.slots import ResourceSlots, SlotError
from .db import admin, views
from .db import images as image_db
from .db import models as m
from .db.engine import ENV_DB_URL, DatabaseError, connect, make_engine, resolve_url, upgrade


class CommandError(Exception):
    """Bad usage of a command; printed as one line."""


# --- the base of every command --------------------------------------------------------------


class Command(Application):
    """A command: either a group of sub-commands or a leaf that does one thing."""

    version = __version__
    #: Names of the positional arguments of a leaf, for its usage line and count check.
    arguments: Sequence[str] = ()
    #: Trailing positional arguments may repeat (the last name takes the rest).
    variadic = False

    db_url = Unicode(
        "",
        config=True,
        help=f"SQLAlchemy URL of the database (default: ${ENV_DB_URL}, else sqlite:///jupyter_backendai.sqlite).",
    )
    json = Bool(False, config=True, help="Print JSON instead of a table.")

    aliases = {"db-url": "Command.db_url", "log-level": "Application.log_level"}
    flags = {"json": ({"Command": {"json": True}}, "Print JSON instead of a table.")}

    def initialize(self, argv: list[str] | None = None) -> None:
        # Not wrapped in catch_config_error: main() turns every error into one line.
        argv = list(argv or [])
        if not (argv and argv[0] in self.subcommands):
            self._check_options(argv)
        self.parse_command_line(argv)
        if self.subapp is not None:
            return
        if self.subcommands:
            if self.extra_args:
                raise CommandError(f"unknown command {self.extra_args[0]!r}; choose one of {self._choices()}")
            return
        given, wanted = len(self.extra_args), len(self.arguments)
        if given < wanted or (given > wanted and not self.variadic):
            usage = " ".join(a.upper() for a in self.arguments)
            raise CommandError(f"usage: {self._path()} {usage} [options] (see --help)")

    def _check_options(self, argv: list[str]) -> None:
        """Refuse options this command does not know (traitlets would only warn)."""
        known = {"help", "help-all", "h", "version", "debug", "show-config", "show-config-json"}
        known |= set(self.aliases) | set(self.flags)
        for arg in argv:
            if arg == "--":
                break
            if arg.startswith("-") and len(arg) > 1 and not arg[1:].replace(".", "").isdigit():
                name = arg.lstrip("-").split("=", 1)[0]
                if name not in known and "." not in name:
                    raise CommandError(f"{self._path()}: unknown option {arg.split('=', 1)[0]} (see --help)")

    def _choices(self) -> str:
        return ", ".join(sorted(self.subcommands))

    def _path(self) -> str:
        names = []
        app: Any = self
        while app is not None:
            names.append(app.name)
            app = app.parent
        return " ".join(reversed(names))

    def start(self) -> None:
        if self.subapp is not None:
            self.subapp.start()
            return
        if self.subcommands:
            raise CommandError(f"{self._path()} needs a command: {self._choices()} (see --help)")
        factory = connect(self.db_url or None)
        with factory() as db:
            result = self.run(db)
            db.commit()
        if result is not None:
            self.emit(result)

    def run(self, db) -> Any:  # pragma: no cover - every leaf overrides it
        raise NotImplementedError

    # output --------------------------------------------------------------------------------
    def emit(self, result: Output) -> None:
        if self.json:
            print(json.dumps(result.data, indent=2, sort_keys=True, default=str))
        else:
            print(result.text())


class Output:
    """What a command prints: JSON data, shown as a table (listings) or as text."""

    def __init__(self, data: Any, columns: Sequence[str] = (), message: str | None = None):
        self.data = data
        self.columns = columns
        self.message = message

    def text(self) -> str:
        if self.message is not None:
            return self.message
        rows = self.data if isinstance(self.data, list) else [self.data]
        if not rows:
            return "(none)"
        if not isinstance(self.data, list):  # one object: "key: value" lines
            return "\n".join(f"{k}: {_cell(v, k)}" for k, v in self.data.items())
        cells = [[_cell(r.get(c), c) for c in self.columns] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        return "\n".join(lines)


SLOT_COLUMNS = frozenset({"total_resource_slots", "resource_slots", "resource_limits"})


def _cell(value: Any, column: str = "") -> str:
    if column in SLOT_COLUMNS and isinstance(value, dict):
        value = ResourceSlots.parse(value).humanize()
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def listing(rows: list[dict], columns: Sequence[str]) -> Output:
    return Output(rows, columns)


def shown(view: dict, message: str | None = None) -> Output:
    out = Output(view)
    out.message = message
    return out


# --- shared options -------------------------------------------------------------------------


class SlotOptions(Configurable):
    """Resource amounts given as options (``--cpu 4 --mem 16g --cuda-shares 0.5``)."""

    cpu = Unicode(None, allow_none=True, config=True, help="CPU cores (a number, or 'unlimited').")
    mem = Unicode(None, allow_none=True, config=True, help="Memory: 16g, 512m, 1.5GiB, bytes, or 'unlimited'.")
    cuda_device = Unicode(None, allow_none=True, config=True, help="Whole GPUs (cuda.device).")
    cuda_shares = Unicode(None, allow_none=True, config=True, help="Fractional GPUs (cuda.shares).")
    slot = Dict({}, config=True, help="Any other slot as NAME=AMOUNT, repeatable (--slot rocm.device=1).")

    def slots(self) -> dict[str, Any]:
        given = {"cpu": self.cpu, "mem": self.mem, "cuda.device": self.cuda_device, "cuda.shares": self.cuda_shares}
        given.update(self.slot)
        return {k: v for k, v in given.items() if v is not None}


SLOT_ALIASES = {
    "cpu": "SlotOptions.cpu",
    "mem": "SlotOptions.mem",
    "cuda-device": "SlotOptions.cuda_device",
    "cuda-shares": "SlotOptions.cuda_shares",
    "slot": "SlotOptions.slot",
}


class SlotCommand(Command):
    """A leaf that reads resource amounts."""

    aliases = {**Command.aliases, **SLOT_ALIASES}
    # Listing the option classes lets the parser type their values (a single --allowed-hosts
    # value would otherwise stay an unparsed string).
    classes = [SlotOptions]

    @property
    def slot_options(self) -> SlotOptions:
        return SlotOptions(parent=self)


def _yes_no_flags(cls: str, trait: str, name: str, what: str) -> dict:
    return {
        name: ({cls: {trait: True}}, f"Set {what}."),
        f"no-{name}": ({cls: {trait: False}}, f"Unset {what}."),
    }


# --- db ---------------------------------------------------------------------------------------


class DBUpgrade(Command):
    name = "upgrade"
    description = "Create or migrate the database schema to the newest revision, and add the defaults."

    def start(self) -> None:
        url = resolve_url(self.db_url or None)
        revision, created = upgrade_with_defaults(url)
        self.emit(
            Output(
                {"revision": revision, "created": created, "url": make_engine(url).url.render_as_string()},
                message=f"database at revision {revision}" + (f"; created {', '.join(created)}" if created else ""),
            )
        )


def upgrade_with_defaults(url: str) -> tuple[str, list[str]]:
    """Migrate the schema, then add the default domain, group, policy and resource group."""
    revision = upgrade(make_engine(url))
    factory = connect(url)
    with factory() as db:
        created = admin.ensure_defaults(db)
        db.commit()
    return revision, created


class DBApp(Command):
    name = "db"
    description = "Database maintenance."
    subcommands = {"upgrade": (DBUpgrade, DBUpgrade.description)}


# --- domains and groups -----------------------------------------------------------------------

DOMAIN_COLUMNS = ("name", "is_active", "total_resource_slots", "allowed_vfolder_hosts", "description")
GROUP_COLUMNS = ("name", "domain_name", "is_active", "total_resource_slots", "members")


class DomainCreate(SlotCommand):
    name = "create"
    description = "Create a domain; --cpu/--mem/... cap what all its sessions together hold (F2)."
    arguments = ("name",)
    description_text = Unicode("", config=True, help="A description.")
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
            allowed_vfolder_hosts=_split(self.allowed_hosts),
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
    description_text = Unicode(None, allow_none=True, config=True, help="A new description.")

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
    subcommands = {c.name: (c, c.description) for c in (DomainCreate, DomainList, DomainUpdate)}


class GroupCommand(SlotCommand):
    domain = Unicode(admin.DEFAULT, config=True, help="The domain of the group.")
    aliases = {**SlotCommand.aliases, "domain": "GroupCommand.domain"}


class GroupCreate(GroupCommand):
    name = "create"
    description = "Create a group (project) in a domain; --cpu/--mem/... cap what its sessions together hold."
    arguments = ("name",)
    description_text = Unicode("", config=True, help="A description.")
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
            allowed_vfolder_hosts=_split(self.allowed_hosts),
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
    subcommands = {
        c.name: (c, c.description) for c in (GroupCreate, GroupList, GroupUpdate, GroupAddUser, GroupRemoveUser)
    }


# --- users --------------------------------------------------------------------------------

USER_COLUMNS = ("email", "username", "role", "status", "domain_name", "groups", "need_password_change")


class UserCreate(Command):
    name = "create"
    description = "Create a user and its keypair; prints the access key and the secret key."
    arguments = ("email",)
    password = Unicode(
        None, allow_none=True, config=True, help="The password (8+ characters, a letter, a digit, a special character)."
    )
    username = Unicode("", config=True, help="The user name (default: from the e-mail address).")
    role = Unicode("user", config=True, help="superadmin, admin (of its domain), user or monitor.")
    domain = Unicode(admin.DEFAULT, config=True, help="The user's domain.")
    groups = List(Unicode(), config=True, help="Groups to join (repeat --group).")
    policy = Unicode(admin.DEFAULT, config=True, help="The keypair resource policy of the new keypair.")
    full_name = Unicode("", config=True, help="The full name.")
    need_password_change = Bool(False, config=True, help="Ask for a new password at first login.")
    aliases = {
        **Command.aliases,
        "password": "UserCreate.password",
        "username": "UserCreate.username",
        "role": "UserCreate.role",
        "domain": "UserCreate.domain",
        "group": "UserCreate.groups",
        "policy": "UserCreate.policy",
        "full-name": "UserCreate.full_name",
    }
    flags = {
        **Command.flags,
        "need-password-change": (
            {"UserCreate": {"need_password_change": True}},
            "Ask for a new password at first login.",
        ),
    }

    def run(self, db):
        if self.password is None:
            raise CommandError("a password is required: --password P")
        user, keypair = admin.create_user(
            db,
            self.extra_args[0],
            self.password,
            username=self.username or None,
            role=self.role,
            domain=self.domain,
            groups=_split(self.groups),
            policy=self.policy,
            full_name=self.full_name,
            need_password_change=self.need_password_change,
        )
        view = {**views.user_view(user), "access_key": keypair.access_key, "secret_key": keypair.secret_key}
        return shown(
            view,
            f"created user {user.email} ({user.username}, {user.role.value})\n"
            f"access key: {keypair.access_key}\nsecret key: {keypair.secret_key}",
        )


class UserList(Command):
    name = "list"
    description = "List users (active ones; --all for inactive too)."
    domain = Unicode("", config=True, help="Only this domain's users.")
    all = Bool(False, config=True, help="Include inactive users.")
    aliases = {**Command.aliases, "domain": "UserList.domain"}
    flags = {**Command.flags, "all": ({"UserList": {"all": True}}, "Include inactive users.")}

    def run(self, db):
        query = select(m.User).order_by(m.User.email)
        if self.domain:
            query = query.where(m.User.domain_name == self.domain)
        if not self.all:
            query = query.where(m.User.status != m.UserStatus.INACTIVE)
        return listing([views.user_view(u) for u in db.scalars(query)], USER_COLUMNS)


class UserShow(Command):
    name = "show"
    description = "Show one user with its keypairs."
    arguments = ("email",)

    def run(self, db):
        user = admin.get_user(db, self.extra_args[0])
        view = views.user_view(user)
        view["keypairs"] = [k.access_key for k in user.keypairs]
        return shown(view) if self.json else Output(view)


class UserUpdate(Command):
    name = "update"
    description = "Change a user's password, name, role, status or require-password-change."
    arguments = ("email",)
    password = Unicode(None, allow_none=True, config=True, help="A new password.")
    username = Unicode(None, allow_none=True, config=True, help="A new user name.")
    role = Unicode(None, allow_none=True, config=True, help="A new role.")
    status = Unicode(None, allow_none=True, config=True, help="active, inactive or before-verification.")
    full_name = Unicode(None, allow_none=True, config=True, help="A new full name.")
    description_text = Unicode(None, allow_none=True, config=True, help="A new description.")
    need_password_change = Bool(None, allow_none=True, config=True, help="Require a new password at next login.")
    aliases = {
        **Command.aliases,
        "password": "UserUpdate.password",
        "username": "UserUpdate.username",
        "role": "UserUpdate.role",
        "status": "UserUpdate.status",
        "full-name": "UserUpdate.full_name",
        "description": "UserUpdate.description_text",
    }
    flags = {
        **Command.flags,
        **_yes_no_flags("UserUpdate", "need_password_change", "need-password-change", "require-password-change"),
    }

    def run(self, db):
        user = admin.update_user(
            db,
            admin.get_user(db, self.extra_args[0]),
            password=self.password,
            username=self.username,
            role=self.role,
            status=self.status,
            full_name=self.full_name,
            description=self.description_text,
            need_password_change=self.need_password_change,
        )
        return shown(views.user_view(user), f"updated user {user.email}")


class UserDeactivate(Command):
    name = "deactivate"
    description = "Deactivate a user (users are never deleted); it can no longer log in."
    arguments = ("email",)

    def run(self, db):
        user = admin.deactivate_user(db, admin.get_user(db, self.extra_args[0]))
        return shown(views.user_view(user), f"deactivated user {user.email}")


class UserApp(Command):
    name = "user"
    description = "Users."
    subcommands = {c.name: (c, c.description) for c in (UserCreate, UserList, UserShow, UserUpdate, UserDeactivate)}


# --- keypairs -----------------------------------------------------------------------------

KEYPAIR_COLUMNS = (
    "access_key",
    "user_id",
    "is_active",
    "is_admin",
    "resource_policy",
    "rate_limit",
    "num_queries",
    "last_used",
)


class KeypairCreate(Command):
    name = "create"
    description = "Add a keypair to a user (optionally with a given access key and secret key)."
    arguments = ("email",)
    policy = Unicode(admin.DEFAULT, config=True, help="Its keypair resource policy.")
    rate_limit = Integer(1000, config=True, help="Requests allowed per 15 minutes.")
    admin_ = Bool(False, config=True, help="An admin keypair.")
    access_key = Unicode(None, allow_none=True, config=True, help="Use this access key (AKIA + 16 characters).")
    secret_key = Unicode(None, allow_none=True, config=True, help="Use this secret key (40 characters).")
    aliases = {
        **Command.aliases,
        "policy": "KeypairCreate.policy",
        "rate-limit": "KeypairCreate.rate_limit",
        "access-key": "KeypairCreate.access_key",
        "secret-key": "KeypairCreate.secret_key",
    }
    flags = {**Command.flags, "admin": ({"KeypairCreate": {"admin_": True}}, "An admin keypair.")}

    def run(self, db):
        user = admin.get_user(db, self.extra_args[0])
        k = admin.create_keypair(
            db,
            user,
            policy=self.policy,
            rate_limit=self.rate_limit,
            is_admin=self.admin_,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )
        return shown(
            views.keypair_view(k, with_secret=True),
            f"created keypair for {user.email}\naccess key: {k.access_key}\nsecret key: {k.secret_key}",
        )


class KeypairList(Command):
    name = "list"
    description = "List keypairs (active ones; --inactive for the others)."
    email = Unicode("", config=True, help="Only this user's keypairs.")
    inactive = Bool(False, config=True, help="List the inactive keypairs.")
    aliases = {**Command.aliases, "email": "KeypairList.email", "user": "KeypairList.email"}
    flags = {**Command.flags, "inactive": ({"KeypairList": {"inactive": True}}, "List the inactive keypairs.")}

    def run(self, db):
        query = select(m.KeyPair).where(m.KeyPair.is_active == (not self.inactive)).order_by(m.KeyPair.created_at)
        if self.email:
            query = query.where(m.KeyPair.user_id == admin.get_user(db, self.email).id)
        return listing([views.keypair_view(k) for k in db.scalars(query)], KEYPAIR_COLUMNS)


class KeypairShow(Command):
    name = "show"
    description = "Show one keypair (with its secret key: --show-secret)."
    arguments = ("access_key",)
    show_secret = Bool(False, config=True, help="Print the secret key too.")
    flags = {**Command.flags, "show-secret": ({"KeypairShow": {"show_secret": True}}, "Print the secret key too.")}

    def run(self, db):
        return Output(views.keypair_view(admin.get_keypair(db, self.extra_args[0]), with_secret=self.show_secret))


class KeypairUpdate(Command):
    name = "update"
    description = "Change a keypair's policy, rate limit or admin flag."
    arguments = ("access_key",)
    policy = Unicode(None, allow_none=True, config=True, help="A new resource policy.")
    rate_limit = Integer(None, allow_none=True, config=True, help="A new rate limit (requests per 15 minutes).")
    admin_ = Bool(None, allow_none=True, config=True, help="Admin keypair or not.")
    aliases = {**Command.aliases, "policy": "KeypairUpdate.policy", "rate-limit": "KeypairUpdate.rate_limit"}
    flags = {**Command.flags, **_yes_no_flags("KeypairUpdate", "admin_", "admin", "the admin flag")}

    def run(self, db):
        k = admin.update_keypair(
            db,
            admin.get_keypair(db, self.extra_args[0]),
            policy=self.policy,
            rate_limit=self.rate_limit,
            is_admin=self.admin_,
        )
        return shown(views.keypair_view(k), f"updated keypair {k.access_key}")


class _KeypairActive(Command):
    arguments = ("access_key",)
    active = True

    def run(self, db):
        k = admin.update_keypair(db, admin.get_keypair(db, self.extra_args[0]), is_active=self.active)
        return shown(views.keypair_view(k), f"{self.name}d keypair {k.access_key}")


class KeypairActivate(_KeypairActive):
    name = "activate"
    description = "Activate a keypair."


class KeypairDeactivate(_KeypairActive):
    name = "deactivate"
    description = "Deactivate a keypair; it can no longer sign requests."
    active = False


class KeypairDelete(Command):
    name = "delete"
    description = "Delete a keypair that never ran a session."
    arguments = ("access_key",)

    def run(self, db):
        k = admin.get_keypair(db, self.extra_args[0])
        admin.delete_keypair(db, k)
        return shown({"deleted": k.access_key}, f"deleted keypair {k.access_key}")


class KeypairApp(Command):
    name = "keypair"
    description = "Keypairs (credentials)."
    subcommands = {
        c.name: (c, c.description)
        for c in (
            KeypairCreate,
            KeypairList,
            KeypairShow,
            KeypairUpdate,
            KeypairActivate,
            KeypairDeactivate,
            KeypairDelete,
        )
    }


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
            "allowed_vfolder_hosts": _split(self.allowed_hosts) if self.allowed_hosts is not None else None,
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
    description = "Create a keypair resource policy (F40); slots not given are unlimited."

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
    subcommands = {c.name: (c, c.description) for c in (PolicyCreate, PolicyList, PolicyUpdate, PolicyDelete)}


# --- presets ------------------------------------------------------------------------------

PRESET_COLUMNS = ("name", "resource_slots", "shared_memory", "scaling_group_name")


class _PresetWrite(SlotCommand):
    arguments = ("name",)
    shmem = Unicode(None, allow_none=True, config=True, help="Shared memory: 64m, 1g.")
    scaling_group = Unicode(None, allow_none=True, config=True, help="Offer it only in this resource group.")
    aliases = {**SlotCommand.aliases, "shmem": "_PresetWrite.shmem", "scaling-group": "_PresetWrite.scaling_group"}


class PresetCreate(_PresetWrite):
    name = "create"
    description = "Create a resource preset (F43)."

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
    subcommands = {c.name: (c, c.description) for c in (PresetCreate, PresetList, PresetUpdate, PresetDelete)}


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
    description = "Set an image's minimum resources (F41); requests below it are raised to it."
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
    subcommands = {c.name: (c, c.description) for c in (ImageList, ImageAdd, ImageSetMin, ImageInstall)}


REGISTRY_COLUMNS = ("hostname", "url", "type", "project", "username", "has_password")


class RegistryAdd(Command):
    name = "add"
    description = "Add a Docker registry (F42)."
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
    subcommands = {c.name: (c, c.description) for c in (RegistryAdd, RegistryList, RegistryRemove)}


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
    description_text = Unicode(None, allow_none=True, config=True, help="A description.")
    scheduler = Unicode(None, allow_none=True, config=True, help="fifo, lifo or drf.")
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
    flags = {**Command.flags, **_yes_no_flags("_ScalingGroupWrite", "active", "active", "active")}

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
    description = "Create a resource group (F45)."

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
        groups = [tuple(reversed(g.split("/", 1))) if "/" in g else (g, admin.DEFAULT) for g in _split(self.groups)]
        s = admin.allow_scaling_group(
            db,
            self.extra_args[0],
            domains=_split(self.domains),
            groups=groups,
            keypairs=_split(self.keypairs),
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
    subcommands = {
        c.name: (c, c.description)
        for c in (ScalingGroupCreate, ScalingGroupList, ScalingGroupUpdate, ScalingGroupAllow)
    }


# --- sign-up invitations -------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) <= 0:
        raise CommandError(f"invalid duration {text!r}: use a positive number with s, m, h or d (like 7d)")
    return int(match.group(1)) * _SECONDS[match.group(2)]


INVITATION_COLUMNS = ("id", "email", "created_by", "created_at", "expires_at", "used_at", "used_by")


class InvitationCreate(Command):
    name = "create"
    description = "Create single-use sign-up invitation tokens (printed once; only their hash is stored)."
    email = Unicode("", config=True, help="Only this e-mail address may use the token.")
    expires_in = Unicode("7d", config=True, help="How long the tokens stay valid: 3600, 30m, 12h, 7d.")
    count = Integer(1, config=True, help="How many tokens to create.")
    created_by = Unicode("operator", config=True, help="Who the tokens are recorded as created by.")
    aliases = {
        **Command.aliases,
        "email": "InvitationCreate.email",
        "expires-in": "InvitationCreate.expires_in",
        "count": "InvitationCreate.count",
        "created-by": "InvitationCreate.created_by",
    }

    def run(self, db):
        import datetime as dt

        from .db import tokens

        ttl = dt.timedelta(seconds=parse_duration(self.expires_in))
        if not 1 <= self.count <= 1000:
            raise CommandError("--count must be between 1 and 1000")
        email = admin.check_email(self.email) if self.email else None
        made = []
        for _ in range(self.count):
            token, inv = tokens.create_invitation(db, ttl=ttl, email=email, created_by=self.created_by)
            made.append(
                {"token": token, "id": str(inv.id), "email": inv.email, "expires_at": inv.expires_at.isoformat()}
            )
        return Output(made, message="\n".join(t["token"] for t in made))


class InvitationList(Command):
    name = "list"
    description = "List sign-up invitations (the tokens themselves are not stored)."

    def run(self, db):
        rows = db.scalars(select(m.SignupInvitation).order_by(m.SignupInvitation.created_at))
        return listing(
            [
                {
                    "id": str(i.id),
                    "email": i.email,
                    "created_by": i.created_by,
                    "created_at": i.created_at.isoformat(),
                    "expires_at": i.expires_at.isoformat(),
                    "used_at": i.used_at.isoformat() if i.used_at else None,
                    "used_by": i.used_by,
                }
                for i in rows
            ],
            INVITATION_COLUMNS,
        )


class InvitationApp(Command):
    name = "invitation"
    description = "Sign-up invitations."
    subcommands = {c.name: (c, c.description) for c in (InvitationCreate, InvitationList)}


# --- bootstrap ----------------------------------------------------------------------------


class Bootstrap(Command):
    name = "bootstrap"
    description = "Load a whole set-up from a YAML file, idempotently (running it twice changes nothing)."
    arguments = ("file",)
    upgrade_db = Bool(True, config=True, help="Bring the schema up to date first.")
    flags = {**Command.flags, "no-upgrade": ({"Bootstrap": {"upgrade_db": False}}, "Do not upgrade the schema first.")}

    def start(self) -> None:
        from .bootstrap import BootstrapError, load_file

        url = resolve_url(self.db_url or None)
        if self.upgrade_db:
            upgrade_with_defaults(url)
        try:
            spec = load_file(self.extra_args[0])
        except BootstrapError as e:
            raise CommandError(str(e)) from None
        factory = connect(url)
        with factory() as db:
            from .bootstrap import apply

            report = apply(db, spec)
            db.commit()
        self.emit(Output({"changes": report}, message="\n".join(report) if report else "nothing to change"))


# --- the top ------------------------------------------------------------------------------


class BackendAIApp(Command):
    name = "jupyter-backendai"
    description = "Operate a jupyter-backendai installation: database, accounts, policies, images, resource groups."
    examples = """
    jupyter-backendai db upgrade --db-url=sqlite:///backendai.sqlite
    jupyter-backendai policy create student --cpu 4 --mem 16g --max-sessions 2
    jupyter-backendai user create alice@example.com --password 'S3cret!pw' --group default --policy student
    jupyter-backendai user list --json
    """
    subcommands = {
        c.name: (c, c.description)
        for c in (
            DBApp,
            DomainApp,
            GroupApp,
            UserApp,
            KeypairApp,
            PolicyApp,
            PresetApp,
            ImageApp,
            RegistryApp,
            ScalingGroupApp,
            InvitationApp,
            Bootstrap,
        )
    }


def _split(values: Sequence[str] | None) -> list[str]:
    """Accept both repeated options and comma-separated values."""
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    CommandError,
    admin.AdminError,
    SlotError,
    DatabaseError,
    TraitError,
    ArgumentError,
    ValueError,
)


def _reset_singletons() -> None:
    """Forget the sub-command instances of an earlier run (traitlets keeps them as singletons)."""
    stack: list[type] = [Command]
    while stack:
        cls = stack.pop()
        cls.clear_instance()
        stack.extend(cls.__subclasses__())


def main(argv: list[str] | None = None) -> int:
    _reset_singletons()
    app = BackendAIApp()
    try:
        app.initialize(sys.argv[1:] if argv is None else argv)
        app.start()
    except EXPECTED_ERRORS as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except SQLAlchemyError as e:
        print(f"error: database: {_one_line(e.orig if getattr(e, 'orig', None) else e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        # A sub-command left as the Application singleton would make any later Application in
        # this process (a jupyter server started by a test or a notebook) refuse to start.
        _reset_singletons()
    return 0


_TRAIT_ERROR = re.compile(r"^The '(\w+)' trait of an? \w+ instance expected (.+?), not the \w+ (.+?)\.?$")


def _one_line(e: BaseException) -> str:
    if isinstance(e, TraitError):
        match = _TRAIT_ERROR.match(str(e).strip())
        if match:
            option, expected, got = match.groups()
            return f"--{option.rstrip('_').replace('_', '-')}: expected {expected}, not {got}"
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
