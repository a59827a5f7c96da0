"""What administrative input may look like: names, e-mail addresses, slots, hosts, enums, image references.

Pure checks (no database): each returns the value in its stored form or raises an
:class:`AdminError` (400) whose one-line message says what is wrong and what is allowed.
:class:`NotFound` (404) and :class:`Conflict` (409) are raised by the other modules of the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ...core import errors
from ...core.slots import ResourceSlots, SlotError

DEFAULT = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# No '@': a login with '@' names an e-mail address, so a user name like someone else's address
# must not exist (it would shadow them). Users of other authenticators named by their e-mail
# address are the one exception: create_user(..., username_is_email=True).
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FOLDER_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class AdminError(errors.Error, ValueError):
    """Bad input for an administrative operation (HTTP 400)."""

    status = 400


class NotFound(AdminError, errors.NotFound):
    status = 404


class Conflict(AdminError, errors.Conflict):
    status = 409


# --- validation helpers ---------------------------------------------------------------------


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise AdminError(
            f"invalid {kind} name {name!r}: use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_email(email: str) -> str:
    email = (email or "").strip()
    if not _EMAIL.match(email) or len(email) > 254:
        raise AdminError(f"invalid e-mail address {email!r}")
    return email.lower()


def username_from_email(email: str) -> str:
    local = re.sub(r"[^a-z0-9._-]", "-", email.split("@", 1)[0].lower()).strip("-._") or "user"
    return local[:64]


def check_username(username: str) -> str:
    username = (username or "").strip().lower()
    if not _USERNAME.match(username):
        raise AdminError(
            f"invalid user name {username!r}: use up to 64 lower-case letters, digits, '.', '_', '+' or '-' "
            "(no '@': a name with '@' would read as an e-mail address at login)"
        )
    return username


def parse_slots(values: Mapping[str, Any] | None) -> ResourceSlots:
    try:
        return ResourceSlots.parse({k: v for k, v in (values or {}).items() if v is not None})
    except SlotError as e:
        raise AdminError(str(e)) from None


def check_non_negative(label: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AdminError(f"{label} must be a whole number of 0 or more, not {value!r}")
    return value


def check_hosts(hosts: Iterable[str] | None) -> list[str]:
    if isinstance(hosts, str):  # a plain string would be read as a list of letters
        raise AdminError(f"storage hosts must be a list of host names, not the string {hosts!r}")
    out = []
    for host in hosts or []:
        if not isinstance(host, str):
            raise AdminError(f"invalid storage host name {host!r}")
        host = host.strip()
        if not host:
            continue
        if not _FOLDER_HOST.match(host):
            raise AdminError(f"invalid storage host name {host!r}")
        out.append(host)
    return sorted(set(out))


def parse_enum(cls, label: str, value):
    """``value`` as a member of the enum ``cls``; an unknown value is an AdminError naming the choices."""
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(e.value for e in cls)
        raise AdminError(f"invalid {label} {value!r}: choose one of {allowed}") from None


def parse_image_ref(ref: str) -> tuple[str, str, str]:
    """``[registry/]name[:tag]`` → (registry, name, tag); the registry is ``local`` when absent."""
    ref = (ref or "").strip()
    if not ref or any(c.isspace() for c in ref):
        raise AdminError(f"invalid image reference {ref!r}")
    registry = "local"
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, ref = first, rest
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    if not name or not tag:
        raise AdminError(f"invalid image reference {ref!r}")
    return registry, name, tag
