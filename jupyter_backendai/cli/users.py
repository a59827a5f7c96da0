"""``jupyter-backendai user``."""

from __future__ import annotations

from sqlalchemy import select
from traitlets import Bool, List, Unicode

from ..db import admin, views
from ..db import models as m
from ._base import Command, CommandError, Output, commands, listing, shown, split_values, yes_no_flags

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
    domain = Unicode(admin.DEFAULT, config=True, help="The domain the user belongs to.")
    groups = List(Unicode(), config=True, help="Groups to join (repeat --group).")
    policy = Unicode(admin.DEFAULT, config=True, help="The keypair resource policy of the new keypair.")
    full_name = Unicode("", config=True, help="The user's full name, as shown to administrators.")
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
            groups=split_values(self.groups),
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
    password = Unicode(
        None,
        allow_none=True,
        config=True,
        help="A new password (8+ characters, a letter, a digit and a special character).",
    )
    username = Unicode(
        None, allow_none=True, config=True, help="A new user name (unique; it is the hub's user name too)."
    )
    role = Unicode(
        None, allow_none=True, config=True, help="A new role: superadmin, admin (of its domain), user or monitor."
    )
    status = Unicode(None, allow_none=True, config=True, help="active, inactive or before-verification.")
    full_name = Unicode(None, allow_none=True, config=True, help="A new full name, as shown to administrators.")
    description_text = Unicode(
        None, allow_none=True, config=True, help="A new description of the user, for administrators."
    )
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
        **yes_no_flags("UserUpdate", "need_password_change", "need-password-change", "require-password-change"),
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
    subcommands = commands(UserCreate, UserList, UserShow, UserUpdate, UserDeactivate)
