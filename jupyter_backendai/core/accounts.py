"""Which Unix account runs a local session, decided without touching the system.

The local backend (``hub/local.py``) runs each hub user's sessions under a Unix account of
that user's own when the hub runs as root, and as the hub's own user otherwise (a single-user
demo that does not isolate users). These functions are the pure part of that decision.
"""

from __future__ import annotations

import hashlib
import re

#: A portable Unix user name (what ``useradd`` accepts without ``--badname``), 32 characters at most.
_VALID = re.compile(r"[a-z_][a-z0-9_-]*")
MAX_NAME = 32
#: Characters of the name's digest appended when the name had to be changed (see :func:`account_name`).
_DIGEST = 6


def account_name(prefix: str, username: str) -> str:
    """The Unix account of hub user ``username``: ``<prefix><username>``, made a valid user name.

    Upper case becomes lower case and every other character outside ``[a-z0-9_-]`` becomes
    ``-``. Whenever that changes the name, or the name has to be cut to 32 characters, a digest
    of the original is appended, so that two hub users (``Ann.B`` and ``ann-b``) never share an
    account. Raises ``ValueError`` when the prefix itself cannot start a user name.
    """
    if not username:
        raise ValueError("a hub user name is needed")
    if not _VALID.fullmatch(prefix or "x") or (prefix and len(prefix) > MAX_NAME - _DIGEST - 2):
        raise ValueError(
            f"account prefix {prefix!r} must start with a-z or _ and use only a-z, 0-9, _ and -,"
            f" {MAX_NAME - _DIGEST - 2} characters at most"
        )
    safe = re.sub(r"[^a-z0-9_-]", "-", username.lower())
    name = prefix + safe
    if not prefix and not _VALID.fullmatch(name):
        name = "_" + name  # a name may not start with a digit or a dash
    if name == prefix + username and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(username.encode()).hexdigest()[:_DIGEST]
    return f"{name[: MAX_NAME - _DIGEST - 1]}-{digest}"


def isolates_users(euid: int) -> bool:
    """Whether a local backend whose hub runs as ``euid`` can give each user an account of their own.

    Only root can create accounts and switch to them; any other hub (Binder, a laptop) runs
    every session as itself, which is a single-user demo.
    """
    return euid == 0


def closed_ancestor(path: str, modes: dict[str, int]) -> str | None:
    """The first directory on the way to ``path`` that other accounts may not pass, or None.

    ``modes`` maps each directory of the absolute ``path`` (``/``, ``/a``, ``/a/b`` ...) to its
    permission bits; a directory without the "others may search" bit (``o+x``) stops a
    session account there.
    """
    parts = [p for p in path.split("/") if p]
    current = "/"
    for i in range(len(parts) + 1):
        if not modes.get(current, 0) & 0o001:
            return current
        if i < len(parts):
            current = current.rstrip("/") + "/" + parts[i]
    return None
