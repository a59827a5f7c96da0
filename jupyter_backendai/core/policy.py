"""Limits a session must respect: a keypair's resource policy and group/domain caps.

These mirror Backend.AI's ``keypair_resource_policies`` rows and the ``total_resource_slots``
of its domains and groups (console features F2, F40), so that an operator coming from
Backend.AI finds the same knobs with the same meaning. They are plain frozen values: loading
them from the database and enforcing them (:mod:`jupyter_backendai.core.admission`) live
elsewhere.

Conventions, chosen once for every count and duration field so that admins need not learn
one rule per field: **0 means "no limit"** (``idle_timeout`` 0 = never idle-terminated,
``max_session_lifetime`` 0 = lives forever, ``max_vfolder_count``/``max_vfolder_size`` 0 =
unlimited, and also ``max_concurrent_sessions``/``max_containers_per_session`` 0 =
unlimited). Backend.AI's own scheduler reads ``max_concurrent_sessions = 0`` as "no session
at all"; its console never lets an admin store 0 there, and a policy that forbids every
session is better expressed by deactivating the keypair, so we take the uniform reading.
``max_pending_session_count`` is the exception, as in Backend.AI: ``None`` means unlimited
and ``0`` really means "never queue" (a request that cannot start now is refused).

For slots, a slot missing from ``total_resource_slots`` is unlimited (the policy sets no
limit on it), and ``unlimited`` may also be written explicitly; an explicit ``0`` forbids
the slot (for example ``cuda.device 0`` for a CPU-only policy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from .slots import UNLIMITED, ResourceSlots

__all__ = ["Cap", "CapKind", "KeypairPolicy", "as_slots"]

CapKind = Literal["group", "domain"]


def as_slots(value: Mapping[str, object] | None, what: str) -> ResourceSlots:
    """Accept a ResourceSlots or a plain mapping (``{"cpu": 4, "mem": "8g"}``) for ``what``."""
    if isinstance(value, ResourceSlots):
        return value
    if value is None:
        return ResourceSlots()
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be resource slots (a mapping of slot name to amount), not {type(value).__name__}")
    return ResourceSlots(value)


def _count(value: object, what: str) -> int:
    # bool is an int subclass; True as "1 session" is always a mistake in a policy.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a whole number, not {value!r}")
    if value < 0:
        raise ValueError(f"{what} must not be negative (0 means no limit), not {value}")
    return value


@dataclass(frozen=True)
class KeypairPolicy:
    """A keypair resource policy (F40). See the module docstring for what 0 and missing mean."""

    name: str
    total_resource_slots: ResourceSlots = field(default_factory=ResourceSlots)
    max_concurrent_sessions: int = 0
    max_containers_per_session: int = 1
    idle_timeout: int = 0
    max_session_lifetime: int = 0
    max_pending_session_count: int | None = None
    allowed_vfolder_hosts: frozenset[str] = frozenset()
    max_vfolder_count: int = 0
    max_vfolder_size: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a keypair policy needs a name, not {self.name!r}")
        object.__setattr__(
            self,
            "total_resource_slots",
            as_slots(self.total_resource_slots, f"policy {self.name!r} total_resource_slots"),
        )
        for attr in (
            "max_concurrent_sessions",
            "max_containers_per_session",
            "idle_timeout",
            "max_session_lifetime",
            "max_vfolder_count",
            "max_vfolder_size",
        ):
            _count(getattr(self, attr), f"policy {self.name!r} {attr}")
        if self.max_pending_session_count is not None:
            _count(self.max_pending_session_count, f"policy {self.name!r} max_pending_session_count")
        hosts = self.allowed_vfolder_hosts
        if isinstance(hosts, str):  # frozenset("local") would be {"l", "o", "c", "a"}
            raise TypeError(
                f"policy {self.name!r} allowed_vfolder_hosts must be a collection of host names, not a string"
            )
        object.__setattr__(self, "allowed_vfolder_hosts", frozenset(_hosts(hosts)))

    def limit(self, slot: str) -> Decimal:
        """The policy's limit on ``slot``: :data:`UNLIMITED` when the policy does not name it."""
        return self.total_resource_slots.get(slot, UNLIMITED)


def _hosts(hosts: Iterable[str]) -> Iterable[str]:
    for host in hosts:
        if not isinstance(host, str) or not host:
            raise TypeError(f"a vfolder host must be a non-empty string, not {host!r}")
        yield host


@dataclass(frozen=True)
class Cap:
    """The total that all sessions of one group or one domain together may hold (F2).

    A slot missing from ``total_resource_slots`` is uncapped, like in a keypair policy.
    """

    kind: CapKind
    name: str
    total_resource_slots: ResourceSlots = field(default_factory=ResourceSlots)

    def __post_init__(self) -> None:
        if self.kind not in ("group", "domain"):
            raise ValueError(f"a cap's kind is 'group' or 'domain', not {self.kind!r}")
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a {self.kind} cap needs a name, not {self.name!r}")
        object.__setattr__(
            self,
            "total_resource_slots",
            as_slots(self.total_resource_slots, f"{self.kind} {self.name!r} total_resource_slots"),
        )

    def limit(self, slot: str) -> Decimal:
        """The cap on ``slot``: :data:`UNLIMITED` when the cap does not name it."""
        return self.total_resource_slots.get(slot, UNLIMITED)
