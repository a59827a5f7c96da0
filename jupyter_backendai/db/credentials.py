"""Secrets made and checked by the server: Backend.AI key pairs and argon2 password hashes."""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_ALNUM_UPPER = string.ascii_uppercase + string.digits
_hasher = PasswordHasher()


def new_access_key() -> str:
    """``AKIA`` and 16 upper-case alphanumerics, the form Backend.AI's clients expect."""
    return "AKIA" + "".join(secrets.choice(_ALNUM_UPPER) for _ in range(16))


def new_secret_key() -> str:
    """40 URL-safe characters (Backend.AI's length)."""
    return secrets.token_urlsafe(30)


def is_access_key(value: str) -> bool:
    return len(value) == 20 and value.startswith("AK") and all(c in _ALNUM_UPPER for c in value)


def is_secret_key(value: str) -> bool:
    return len(value) == 40 and all(c in string.ascii_letters + string.digits + "-_" for c in value)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


_dummy_hash: str | None = None


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; never raises for a wrong password or a damaged hash.

    Without a hash (no such account, or one that logs in elsewhere) a dummy hash is verified
    all the same and the answer is False: as slow as a wrong password, so that the time an
    answer takes does not tell which accounts exist.
    """
    global _dummy_hash
    if not stored_hash:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
        try:
            _hasher.verify(_dummy_hash, password)
        except (VerificationError, InvalidHashError):
            pass
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
