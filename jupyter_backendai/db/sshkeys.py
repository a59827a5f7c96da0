"""Per-user SSH key pairs (F16, F22): the private half becomes ``/home/work/id_container``."""

from __future__ import annotations

from importlib import import_module

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy.orm import Session as DB

from . import models as m
from .types import utcnow


def generate(comment: str) -> tuple[str, str]:
    """A new ed25519 pair: (OpenSSH public key line, OpenSSH private key PEM)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode("ascii")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{public.decode('ascii')} {comment}", private


def get_or_create(db: DB, user: m.User) -> m.SSHKeyPair:
    row = db.get(m.SSHKeyPair, user.id)
    if row is None:
        public, private = generate(f"{user.username}@jupyter-backendai")
        values = {"user_id": user.id, "public_key": public, "private_key": private, "created_at": utcnow()}
        dialect = db.get_bind().dialect.name
        if dialect in ("postgresql", "sqlite"):
            # Two first sessions of one user may start at once: the pair written first is the pair.
            insert = import_module(f"sqlalchemy.dialects.{dialect}").insert
            db.execute(insert(m.SSHKeyPair).values(**values).on_conflict_do_nothing(index_elements=["user_id"]))
            row = db.get(m.SSHKeyPair, user.id, populate_existing=True)
        else:
            row = m.SSHKeyPair(**values)
            db.add(row)
            db.flush()
    return row


def refresh(db: DB, user: m.User) -> m.SSHKeyPair:
    """Replace the pair; the caller hands the new private key back once."""
    row = get_or_create(db, user)
    row.public_key, row.private_key = generate(f"{user.username}@jupyter-backendai")
    row.created_at = utcnow()
    db.flush()
    return row
