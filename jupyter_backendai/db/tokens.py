"""Single-use, expiring tokens: sign-up invitations, e-mail verification, password reset.

The token itself goes to the person (printed by the CLI, or in an e-mail link); the database
keeps only its SHA-256, so reading the database does not give anyone a usable token. Using a
token marks it used in the same transaction that acts on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ..core import errors
from . import models as m
from .types import utcnow


class TokenError(errors.BadRequest, ValueError):
    """A token that cannot be used; the message says why, in words for the person holding it."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def create_invitation(
    db: DB, *, ttl: dt.timedelta, email: str | None = None, created_by: str = "", now: dt.datetime | None = None
) -> tuple[str, m.SignupInvitation]:
    now = now or utcnow()
    token = new_token()
    invitation = m.SignupInvitation(
        token_hash=_hash(token),
        email=email.lower() if email else None,
        created_by=created_by,
        created_at=now,
        expires_at=now + ttl,
    )
    db.add(invitation)
    db.flush()
    return token, invitation


def use_invitation(db: DB, token: str, email: str, *, now: dt.datetime | None = None) -> m.SignupInvitation:
    """Check and spend an invitation for ``email``; raises :class:`TokenError`."""
    now = now or utcnow()
    invitation = db.scalar(select(m.SignupInvitation).where(m.SignupInvitation.token_hash == _hash(token.strip())))
    if invitation is None:
        raise TokenError("this invitation token is not valid")
    if invitation.used_at is not None:
        raise TokenError("this invitation token has already been used")
    if invitation.expires_at <= now:
        raise TokenError("this invitation token has expired")
    if invitation.email and invitation.email != email.lower():
        raise TokenError("this invitation token is for another e-mail address")
    invitation.used_at = now
    invitation.used_by = email.lower()
    db.flush()
    return invitation


def create_user_token(
    db: DB, user: m.User, purpose: m.TokenPurpose, *, ttl: dt.timedelta, now: dt.datetime | None = None
) -> str:
    now = now or utcnow()
    token = new_token()
    db.add(m.UserToken(token_hash=_hash(token), user_id=user.id, purpose=purpose, created_at=now, expires_at=now + ttl))
    db.flush()
    return token


def peek_user_token(db: DB, token: str, purpose: m.TokenPurpose, *, now: dt.datetime | None = None) -> m.UserToken:
    """The token's row if it can still be used (to show a form); raises :class:`TokenError`."""
    now = now or utcnow()
    row = db.scalar(
        select(m.UserToken).where(m.UserToken.token_hash == _hash(token.strip()), m.UserToken.purpose == purpose)
    )
    what = "verification" if purpose == m.TokenPurpose.VERIFY_EMAIL else "password reset"
    if row is None:
        raise TokenError(f"this {what} link is not valid")
    if row.used_at is not None:
        raise TokenError(f"this {what} link has already been used")
    if row.expires_at <= now:
        raise TokenError(f"this {what} link has expired; ask for a new one")
    return row


def use_user_token(db: DB, token: str, purpose: m.TokenPurpose, *, now: dt.datetime | None = None) -> m.User:
    """Check and spend a mailed token; returns its user. Raises :class:`TokenError`."""
    now = now or utcnow()
    row = peek_user_token(db, token, purpose, now=now)
    row.used_at = now
    user = db.get(m.User, row.user_id)
    db.flush()
    return user
