"""Invitation, verification and reset tokens: single use, expiring, stored hashed."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from jupyter_backendai.db import admin, tokens
from jupyter_backendai.db import models as m
from jupyter_backendai.db.types import utcnow

HOUR = dt.timedelta(hours=1)


def test_invitation_is_single_use(db):
    token, inv = tokens.create_invitation(db, ttl=HOUR, created_by="ops")
    assert token not in inv.token_hash and len(inv.token_hash) == 64
    used = tokens.use_invitation(db, token, "New@Example.com")
    assert used.used_by == "new@example.com" and used.used_at is not None
    with pytest.raises(tokens.TokenError, match="already been used"):
        tokens.use_invitation(db, token, "other@example.com")


def test_invitation_expiry_address_and_unknown(db):
    now = utcnow()
    token, _ = tokens.create_invitation(db, ttl=HOUR, now=now - 2 * HOUR)
    with pytest.raises(tokens.TokenError, match="has expired"):
        tokens.use_invitation(db, token, "a@example.com")
    token, _ = tokens.create_invitation(db, ttl=HOUR, email="only@example.com")
    with pytest.raises(tokens.TokenError, match="for another e-mail address"):
        tokens.use_invitation(db, token, "a@example.com")
    tokens.use_invitation(db, token, "ONLY@example.com")
    with pytest.raises(tokens.TokenError, match="not valid"):
        tokens.use_invitation(db, "made-up", "a@example.com")
    db.commit()


def test_user_tokens_by_purpose(db):
    user, _ = admin.create_user(db, "t@example.com", "S3cret!pw")
    reset = tokens.create_user_token(db, user, m.TokenPurpose.RESET_PASSWORD, ttl=HOUR)
    with pytest.raises(tokens.TokenError, match="verification link is not valid"):
        tokens.use_user_token(db, reset, m.TokenPurpose.VERIFY_EMAIL)
    assert tokens.use_user_token(db, reset, m.TokenPurpose.RESET_PASSWORD).id == user.id
    with pytest.raises(tokens.TokenError, match="password reset link has already been used"):
        tokens.use_user_token(db, reset, m.TokenPurpose.RESET_PASSWORD)
    old = tokens.create_user_token(db, user, m.TokenPurpose.RESET_PASSWORD, ttl=HOUR, now=utcnow() - 2 * HOUR)
    with pytest.raises(tokens.TokenError, match="has expired; ask for a new one"):
        tokens.peek_user_token(db, old, m.TokenPurpose.RESET_PASSWORD)
    db.commit()
    assert all(len(row.token_hash) == 64 for row in db.scalars(select(m.UserToken)))
