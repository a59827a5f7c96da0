"""``jupyter-backendai keypair``."""

from __future__ import annotations

from sqlalchemy import select
from traitlets import Bool, Integer, Unicode

from ..db import admin, views
from ..db import models as m
from ._base import Command, Output, commands, listing, shown, yes_no_flags

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
    admin_ = Bool(
        False, config=True, help="Mark it an admin keypair (Backend.AI's is_admin; rights follow the user's role)."
    )
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
    admin_ = Bool(None, allow_none=True, config=True, help="Mark it an admin keypair or not (Backend.AI's is_admin).")
    aliases = {**Command.aliases, "policy": "KeypairUpdate.policy", "rate-limit": "KeypairUpdate.rate_limit"}
    flags = {**Command.flags, **yes_no_flags("KeypairUpdate", "admin_", "admin", "the admin flag")}

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
    subcommands = commands(
        KeypairCreate, KeypairList, KeypairShow, KeypairUpdate, KeypairActivate, KeypairDeactivate, KeypairDelete
    )
