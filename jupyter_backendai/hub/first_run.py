"""What the hub does to a fresh install before it starts: the schema, the defaults, an admin."""

from __future__ import annotations

import secrets
import string

from sqlalchemy import select

from ..db import admin
from ..db import models as m
from ..db.engine import connect, upgrade

ADMIN_EMAIL = "admin@localhost.localdomain"


def _password() -> str:
    # 16 random letters and digits plus fixed special characters: always passes the rules.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16)) + "-1a"


def prepare_database(url: str, *, admin_email: str = ADMIN_EMAIL) -> str | None:
    """Migrate, add the defaults, and create a superadmin when there is none.

    Returns the new admin's password (to be shown once), or None when an admin existed.
    """
    upgrade(url)
    factory = connect(url)
    with factory() as db:
        admin.ensure_defaults(db)
        password = None
        if db.scalar(select(m.User).where(m.User.role == m.UserRole.SUPERADMIN).limit(1)) is None:
            password = _password()
            admin.create_user(db, admin_email, password, username="admin", role="superadmin", need_password_change=True)
        db.commit()
    factory.kw["bind"].dispose()
    return password
