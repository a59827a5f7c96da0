"""Admission: may this session start now, must it wait in the queue, or can it never start?

One pure function, :func:`admit`, takes everything the decision depends on in one
:class:`AdmissionRequest` (read from the database by the caller) and returns a
:class:`Decision`. It does no I/O, so the hub, the API and the scheduler all give the same
answer, and the answer can be tested exactly.

The outcome is one of three:

* **admitted** - the session may start now (``decision.admitted``);
* **queue** - nothing is wrong with the request, but the resource group has not enough free
  right now; the caller keeps it pending (``decision.queue``, code ``resource_group_busy``);
* **refused** - waiting would not help by itself: the request is malformed, or it goes over a
  keypair policy, a group or domain cap, or more than the resource group holds in total
  (``decision.refused``). Limits count what is already held, so a user may get under a
  limit again by ending sessions, but the queue will not do that for them.

Amounts: ``requested`` and the image minimum are *per container*; a session of
``containers`` containers holds ``containers`` times that, and every limit is checked
against that total (as Backend.AI sums its kernels' slots into the session's).

Missing and zero slots: a slot the request leaves out (or sets to 0) is filled from the
image's minimum, as the console does (F41); the result must still hold some ``cpu`` and
``mem``, since a container without either cannot run. A request of nothing at all is
refused rather than silently turned into the image minimum, since it is almost always a
client bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .policy import Cap, KeypairPolicy, as_slots
from .slots import UNLIMITED, ZERO, ResourceSlots, format_amount

__all__ = ["AdmissionRequest", "Code", "Decision", "ResourceGroupState", "admit", "REQUIRED_SLOTS"]

#: Slots every container must have a positive amount of (after raising to the image minimum).
REQUIRED_SLOTS = ("cpu", "mem")


class Code:
    """Machine codes of :attr:`Decision.code`; one per way a request can fail."""

    EMPTY_REQUEST = "empty_request"
    UNLIMITED_REQUEST = "unlimited_request"
    INVALID_CONTAINERS = "invalid_containers"
    MISSING_SLOT = "missing_slot"
    CONTAINERS_PER_SESSION = "containers_per_session"
    CONCURRENT_SESSIONS = "concurrent_sessions"
    KEYPAIR_LIMIT = "keypair_limit"
    GROUP_LIMIT = "group_limit"
    DOMAIN_LIMIT = "domain_limit"
    RESOURCE_GROUP_CAPACITY = "resource_group_capacity"
    PENDING_SESSIONS = "pending_sessions"
    #: not a refusal: the caller queues the session.
    RESOURCE_GROUP_BUSY = "resource_group_busy"


@dataclass(frozen=True)
class ResourceGroupState:
    """A resource (scaling) group as admission sees it.

    ``free`` is what its agents have unallocated now (a missing slot: none free).
    ``capacity`` is everything its agents hold in total; when given, a request larger than
    it is refused instead of queued forever. ``None`` means unknown (only ``free`` is used).
    """

    name: str
    free: ResourceSlots = field(default_factory=ResourceSlots)
    capacity: ResourceSlots | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "free", as_slots(self.free, f"resource group {self.name!r} free"))
        if self.capacity is not None:
            object.__setattr__(self, "capacity", as_slots(self.capacity, f"resource group {self.name!r} capacity"))


@dataclass(frozen=True)
class AdmissionRequest:
    """Everything :func:`admit` decides on. Plain mappings are accepted for slot fields.

    ``keypair_using`` / ``running_sessions`` / ``pending_sessions`` describe what the
    requesting keypair already holds; ``group_using`` / ``domain_using`` what all sessions of
    the group / domain hold (the requester's included). A ``None`` cap or resource group
    means "not capped" / "not checked".
    """

    policy: KeypairPolicy
    requested: ResourceSlots
    containers: int = 1
    image_min: ResourceSlots = field(default_factory=ResourceSlots)
    keypair_using: ResourceSlots = field(default_factory=ResourceSlots)
    running_sessions: int = 0
    pending_sessions: int = 0
    group: Cap | None = None
    group_using: ResourceSlots = field(default_factory=ResourceSlots)
    domain: Cap | None = None
    domain_using: ResourceSlots = field(default_factory=ResourceSlots)
    resource_group: ResourceGroupState | None = None

    def __post_init__(self) -> None:
        for attr in ("requested", "image_min", "keypair_using", "group_using", "domain_using"):
            object.__setattr__(self, attr, as_slots(getattr(self, attr), attr))
        for attr in ("running_sessions", "pending_sessions"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{attr} must be a whole number of at least 0, not {value!r}")
        if self.group is not None and self.group.kind != "group":
            raise ValueError(f"group must be a 'group' cap, not a {self.group.kind!r} cap")
        if self.domain is not None and self.domain.kind != "domain":
            raise ValueError(f"domain must be a 'domain' cap, not a {self.domain.kind!r} cap")


@dataclass(frozen=True)
class Decision:
    """The answer of :func:`admit`.

    ``slots`` are the final per-container slots (the request raised to the image minimum);
    ``total`` is ``slots`` times the number of containers. ``raised`` names the slots that
    were raised or filled in, and ``note`` says so for people. ``code``/``reason`` are
    ``None`` when admitted; otherwise ``code`` is one of :class:`Code` and ``reason`` names
    the limit and the numbers. ``queue`` is true only for "not enough free right now".
    """

    admitted: bool
    slots: ResourceSlots
    total: ResourceSlots
    raised: list[str] = field(default_factory=list)
    note: str | None = None
    code: str | None = None
    reason: str | None = None
    queue: bool = False

    @property
    def refused(self) -> bool:
        """True when waiting in the queue would not help."""
        return not self.admitted and not self.queue


def _fmt(slot: str, amount: Decimal) -> str:
    return format_amount(slot, amount)


def _over_limit(total: ResourceSlots, using: ResourceSlots, limits: ResourceSlots, holder: str) -> str | None:
    """The reason ``using + total`` goes over ``limits`` (missing limit = none), or None."""
    over = [
        slot
        for slot, amount in sorted(total.items())
        if amount and using.get(slot) + amount > limits.get(slot, UNLIMITED)
    ]
    if not over:
        return None
    return "; ".join(
        f"{slot} {_fmt(slot, total[slot])} exceeds {holder} limit of {_fmt(slot, limits[slot])} "
        f"({_fmt(slot, using.get(slot))} in use)"
        for slot in over
    )


def admit(request: AdmissionRequest) -> Decision:
    """Decide whether ``request`` may start now, must queue, or is refused (see the module doc).

    Checks run in this order and the first failure decides: the request's own shape
    (empty, unlimited, containers < 1, no cpu/mem), containers per session, concurrent
    sessions, the keypair policy, the group cap, the domain cap, the resource group's total
    capacity, and last the resource group's free amounts (queue), where a keypair already at
    its ``max_pending_session_count`` is refused instead of queued.
    """
    policy = request.policy
    requested = request.requested
    containers = request.containers
    per_container = requested.max(request.image_min)
    raised = sorted(slot for slot, amount in per_container.items() if amount > requested.get(slot))
    note = None
    if raised:
        note = "raised to the image's minimum: " + ", ".join(f"{s} {_fmt(s, per_container[s])}" for s in raised)

    def refuse(code: str, reason: str, *, queue: bool = False, as_requested: bool = False) -> Decision:
        # A malformed request is reported as it came, not raised to the image minimum.
        slots = requested if as_requested else per_container
        n = containers if isinstance(containers, int) and not isinstance(containers, bool) and containers > 0 else 1
        return Decision(
            admitted=False,
            slots=slots,
            total=slots.scale(n),
            raised=[] if as_requested else list(raised),
            note=None if as_requested else note,
            code=code,
            reason=reason,
            queue=queue,
        )

    # -- the request itself -------------------------------------------------------------
    if not requested:
        return refuse(Code.EMPTY_REQUEST, "the request asks for no resources at all", as_requested=True)
    unlimited = sorted(slot for slot, amount in requested.items() if amount.is_infinite())
    if unlimited:
        return refuse(
            Code.UNLIMITED_REQUEST,
            "a request cannot ask for an unlimited amount: " + ", ".join(unlimited),
            as_requested=True,
        )
    if isinstance(containers, bool) or not isinstance(containers, int) or containers < 1:
        return refuse(Code.INVALID_CONTAINERS, f"a session needs at least 1 container, not {containers!r}")
    missing = [slot for slot in REQUIRED_SLOTS if not per_container.get(slot)]
    if missing:
        names = " and ".join(missing)
        return refuse(
            Code.MISSING_SLOT,
            f"the request needs {names}: {'they are' if len(missing) > 1 else 'it is'} missing "
            "and the image sets no minimum",
        )

    # -- counts -----------------------------------------------------------------------------
    if policy.max_containers_per_session and containers > policy.max_containers_per_session:
        return refuse(
            Code.CONTAINERS_PER_SESSION,
            f"containers per session {containers} exceeds the keypair policy '{policy.name}' limit of "
            f"{policy.max_containers_per_session}",
        )
    sessions = request.running_sessions + request.pending_sessions
    if policy.max_concurrent_sessions and sessions >= policy.max_concurrent_sessions:
        return refuse(
            Code.CONCURRENT_SESSIONS,
            f"max concurrent sessions {policy.max_concurrent_sessions} reached for keypair policy '{policy.name}'",
        )

    # -- limits on what is held -------------------------------------------------------------
    total = per_container.scale(containers)
    reason = _over_limit(
        total, request.keypair_using, policy.total_resource_slots, f"the keypair policy '{policy.name}'"
    )
    if reason:
        return refuse(Code.KEYPAIR_LIMIT, reason)
    if request.group is not None:
        reason = _over_limit(
            total, request.group_using, request.group.total_resource_slots, f"the group '{request.group.name}'"
        )
        if reason:
            return refuse(Code.GROUP_LIMIT, reason)
    if request.domain is not None:
        reason = _over_limit(
            total, request.domain_using, request.domain.total_resource_slots, f"the domain '{request.domain.name}'"
        )
        if reason:
            return refuse(Code.DOMAIN_LIMIT, reason)

    # -- the resource group -----------------------------------------------------------------
    rg = request.resource_group
    if rg is not None:
        if rg.capacity is not None:
            too_big = total.exceeding(rg.capacity, missing=ZERO)
            if too_big:
                return refuse(
                    Code.RESOURCE_GROUP_CAPACITY,
                    "; ".join(
                        f"{s} {_fmt(s, total[s])} exceeds the resource group '{rg.name}' capacity of "
                        f"{_fmt(s, rg.capacity.get(s))}"
                        for s in too_big
                    ),
                )
        short = total.exceeding(rg.free, missing=ZERO)
        if short:
            busy = f"the resource group '{rg.name}' has " + "; ".join(
                f"{s} {_fmt(s, rg.free.get(s))} free, the request needs {_fmt(s, total[s])}" for s in short
            )
            limit = policy.max_pending_session_count
            if limit is not None and request.pending_sessions >= limit:
                return refuse(
                    Code.PENDING_SESSIONS,
                    f"max pending sessions {limit} reached for keypair policy '{policy.name}' ({busy})",
                )
            return refuse(Code.RESOURCE_GROUP_BUSY, busy, queue=True)

    return Decision(admitted=True, slots=per_container, total=total, raised=raised, note=note)
