"""``jupyter-backendai invitation``: sign-up invitation tokens."""

from __future__ import annotations

import re

from sqlalchemy import select
from traitlets import Integer, Unicode

from ..db import admin
from ..db import models as m
from ._base import Command, CommandError, Output, commands, listing

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

        from ..db import tokens

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
    subcommands = commands(InvitationCreate, InvitationList)
