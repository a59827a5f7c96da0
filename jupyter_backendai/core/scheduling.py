"""One scheduling pass: which pending sessions start now, and on which agent.

The pass is a pure function (no I/O, inputs never mutated) so that the live scheduler, the
"why is my session still pending?" answer and the tests all run the very same code.

Three parts meet in :func:`schedule`:

* a **scheduler** (:data:`SCHEDULERS`: ``fifo``, ``lifo``, ``drf``) decides which pending
  session is considered next;
* an **agent selection** (``concentrated`` or ``dispersed``) picks the agent among those with
  room;
* :mod:`.gpu` places GPU requests on the chosen agent's devices.

Speed matters (a pass over ten thousand pending sessions must take well under a second), so
the pass converts every amount once into an integer count of the slot's smallest unit and
keeps per-agent free amounts in plain lists; the public API stays in :class:`ResourceSlots`.
Free room only shrinks during a pass (nothing is released), which makes two shortcuts exact:
a request shape that found no agent stays refused for the rest of the pass, and an agent
that cannot hold even the smallest pending request is never looked at again.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from . import gpu as gpu_mod
from .gpu import DEFAULT_QUANTUM, SHARES, WHOLE, GpuDevice
from .slots import ResourceSlots, format_amount

__all__ = [
    "DEFAULT_MAX_SKIPS",
    "SCHEDULERS",
    "SELECTIONS",
    "AgentState",
    "LeftPending",
    "PendingSession",
    "Placement",
    "ScheduleResult",
    "Scheduler",
    "SchedulerContext",
    "drf",
    "fifo",
    "get_scheduler",
    "lifo",
    "schedule",
]

#: How many later sessions may start ahead of FIFO's blocked head before the queue waits.
DEFAULT_MAX_SKIPS = 10
SELECTIONS = ("concentrated", "dispersed")


# --- public data -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingSession:
    """A session waiting for room.

    ``created`` orders the queue (a timestamp or a sequence number; ties keep input order).
    ``passed_over`` is how many later sessions have already started ahead of it in earlier
    passes; the caller stores :attr:`LeftPending.passed_over` and hands it back next pass, so
    FIFO's bounded skip holds across passes and a big session cannot starve.
    """

    id: str
    access_key: str
    requested: ResourceSlots
    created: float = 0
    resource_group: str | None = None
    passed_over: int = 0
    #: The image it runs, when it may only go to agents that have it (images are not pulled).
    image: str | None = None


@dataclass(frozen=True, slots=True)
class AgentState:
    """An agent as the scheduler sees it.

    ``capacity`` and ``occupied`` are agent-level slots (``cuda.shares`` there is the sum over
    devices); ``gpus`` are the per-device states that GPU requests must also fit. A session
    with a ``resource_group`` only goes to agents of that group, and one with an ``image`` only
    to agents whose ``images`` hold it (``None``: the agent does not say; any image goes there).
    """

    id: str
    capacity: ResourceSlots
    occupied: ResourceSlots = field(default_factory=ResourceSlots)
    gpus: Sequence[GpuDevice] = ()
    schedulable: bool = True
    resource_group: str | None = None
    images: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    """Start ``session_id`` on ``agent_id``.

    ``slots`` is what it occupies (its request with ``cuda.shares`` rounded up to the
    quantum); ``gpus`` is Backend.AI's allocation map ``{slot: {device_id: amount}}``.
    """

    session_id: str
    agent_id: str
    slots: ResourceSlots
    gpus: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeftPending:
    """A session that stays pending, why (for people), and its updated skip count."""

    session_id: str
    reason: str
    passed_over: int


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """The outcome of one pass.

    ``placements`` are in decision order; ``pending`` in input order. ``decisions`` counts the
    sessions the scheduler actually considered (FIFO may stop before the end of its queue).
    """

    placements: tuple[Placement, ...]
    pending: tuple[LeftPending, ...]
    decisions: int


# --- schedulers ----------------------------------------------------------------------------


class SchedulerContext(Protocol):
    """What a scheduler may ask the pass while it runs."""

    max_skips: int | None

    def dominant_share(self, access_key: str) -> float: ...

    def can_ever_fit(self, index: int) -> bool: ...


#: A scheduler is a generator: it yields the index of the next session to consider and is sent
#: back whether it was placed. It returns a reason for the sessions it never yielded, if any.
Scheduler = Callable[[Sequence[PendingSession], SchedulerContext], Generator[int, bool, "str | None"]]


def _by_age(sessions: Sequence[PendingSession]) -> list[int]:
    return sorted(range(len(sessions)), key=lambda i: sessions[i].created)


def fifo(sessions: Sequence[PendingSession], ctx: SchedulerContext) -> Generator[int, bool, str | None]:
    """Oldest first, with a bounded skip past a blocked head of line.

    The first session that finds no room (and could fit on an empty agent, so it is worth
    waiting for) becomes the *head*. Later sessions may still start, each one passing it over;
    once the head has been passed over ``max_skips`` times in total (counting earlier passes
    via :attr:`PendingSession.passed_over`), the queue stops and waits for it, so it starts as
    soon as room appears instead of starving. ``max_skips=None`` never stops (pure first fit);
    ``0`` is strict FIFO. Sessions that never fit any agent do not block the queue.
    """
    head: int | None = None
    passes = 0
    limit = ctx.max_skips
    for i in _by_age(sessions):
        if head is not None and limit is not None and passes >= limit:
            return (
                f"waiting behind the head of the queue, session {sessions[head].id} "
                f"(passed over {passes} times, the limit is {limit})"
            )
        placed = yield i
        if placed:
            if head is not None:
                passes += 1
        elif head is None and ctx.can_ever_fit(i):
            head = i
            passes = sessions[i].passed_over
    return None


def lifo(sessions: Sequence[PendingSession], ctx: SchedulerContext) -> Generator[int, bool, str | None]:
    """Newest first (ties keep input order); every session is considered once."""
    order = _by_age(sessions)
    order.sort(key=lambda i: sessions[i].created, reverse=True)  # stable: ties keep input order
    for i in order:  # noqa: UP028 - `yield from` a list cannot take the placed flag we are sent
        yield i
    return None


def drf(sessions: Sequence[PendingSession], ctx: SchedulerContext) -> Generator[int, bool, str | None]:
    """Dominant Resource Fairness (Ghodsi et al., NSDI 2011).

    The user with the lowest dominant share goes next (ties: the older next session, then input
    order), with their oldest pending session; the share is re-read after every placement. A
    session that finds no room stays pending and its user's next session is considered, still
    at the same share, so every session is considered exactly once.
    """
    queues: dict[str, deque[int]] = {}
    for i in _by_age(sessions):
        queues.setdefault(sessions[i].access_key, deque()).append(i)
    heap = [(ctx.dominant_share(user), sessions[q[0]].created, q[0], user) for user, q in queues.items()]
    heapq.heapify(heap)
    while heap:
        share, _created, i, user = heapq.heappop(heap)
        queue = queues[user]
        queue.popleft()
        placed = yield i
        if queue:
            j = queue[0]
            heapq.heappush(heap, (ctx.dominant_share(user) if placed else share, sessions[j].created, j, user))
    return None


SCHEDULERS: dict[str, Scheduler] = {"fifo": fifo, "lifo": lifo, "drf": drf}


def get_scheduler(name: str) -> Scheduler:
    """The scheduler called ``name``; a ValueError names the choices otherwise."""
    try:
        return SCHEDULERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown scheduler {name!r}: choose one of {', '.join(sorted(SCHEDULERS))}") from None


# --- the pass ------------------------------------------------------------------------------


def schedule(
    pending: Iterable[PendingSession],
    agents: Iterable[AgentState],
    *,
    scheduler: str | Scheduler = "fifo",
    selection: str = "concentrated",
    user_usage: Mapping[str, Mapping[str, Decimal]] | None = None,
    total_capacity: Mapping[str, Decimal] | None = None,
    max_skips: int | None = DEFAULT_MAX_SKIPS,
    quantum: Decimal = DEFAULT_QUANTUM,
) -> ScheduleResult:
    """Run one scheduling pass and say where each session starts or why it waits.

    * ``selection``: among agents that have room (agent slots and GPU devices), ``concentrated``
      takes the *fullest* one and ``dispersed`` the *emptiest*. Fullness compares the agents'
      free amounts (absolute, as Backend.AI does) lexicographically in slot priority order:
      accelerator slots (``*.device``, ``*.shares``) first, then ``cpu``, then ``mem``, then the
      others by name; less free is fuller; ties go to the lower agent id. A session that asks
      for no accelerator tries agents without accelerators first (in either mode) and ignores
      accelerator slots in the comparison, so GPU agents keep their CPU and memory for GPU work.
      Concentrated is thus best fit: it keeps large holes for large sessions.
    * ``user_usage``: per access key, what the user's running sessions already hold (DRF counts
      it in the dominant share). Agents' ``occupied`` already includes those sessions.
    * ``total_capacity``: DRF's denominator; by default the summed capacity of the schedulable
      agents given (a pass normally covers one resource group). Unlimited or zero slots are
      left out of the share.
    * ``max_skips``: see :func:`fifo`. ``quantum``: see :mod:`.gpu`.
    """
    sched = get_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
    if selection not in SELECTIONS:
        raise ValueError(f"unknown agent selection {selection!r}: choose one of {', '.join(SELECTIONS)}")
    if quantum <= 0:
        raise ValueError(f"the GPU share quantum must be positive, not {quantum}")
    if max_skips is not None and max_skips < 0:
        raise ValueError(f"max_skips must be zero or more, not {max_skips}")
    run = _Pass(list(pending), list(agents), selection == "dispersed", user_usage, total_capacity, max_skips, quantum)
    return run.run(sched)


# Why a request found no agent (kept per request shape while the pass runs).
_ROOM, _TOGETHER, _DEVICES, _NEVER = range(4)


def _slot_priority(name: str) -> tuple[int, str]:
    if name.endswith((".device", ".shares")):
        return (0, name)
    return ({"cpu": 1, "mem": 2}.get(name, 3), name)


def _decimals(amount: Decimal) -> int:
    """Digits after the point that ``amount`` really needs (``1.50`` needs 1): equal values agree."""
    if not amount.is_finite():
        return 0
    _sign, coeff, exponent = amount.as_tuple()
    if not any(coeff):
        return 0
    exponent = exponent + len(coeff) - len("".join(map(str, coeff)).rstrip("0"))  # type: ignore[operator]
    return -exponent if exponent < 0 else 0


def _to_units(amount: Decimal, digits: int) -> int | float:
    """``amount`` as an exact integer count of ``10**-digits`` (unlimited stays infinite)."""
    if not amount.is_finite():
        return math.inf
    _sign, coeff_digits, exponent = amount.as_tuple()
    coeff = int("".join(map(str, coeff_digits))) if coeff_digits else 0
    shift = exponent + digits  # type: ignore[operator]
    return coeff * 10**shift if shift >= 0 else coeff // 10**-shift


class _Session:
    __slots__ = ("index", "src", "need", "slots", "whole", "shares", "pool", "rank", "accel")

    def __init__(self, index: int, src: PendingSession, slots: ResourceSlots, need: tuple, pool: _Pool) -> None:
        self.index = index
        self.src = src
        self.slots = slots  # the request with shares rounded up to the quantum
        self.need = need  # ((slot index, units), ...) of the non-zero slots, in priority order
        self.whole = slots.get(WHOLE)
        self.shares = slots.get(SHARES)
        self.pool = pool
        self.rank = 0  # position in age order, for passed-over counts
        self.accel = 0  # 1 when it asks for an accelerator slot: which selection order it uses


class _Pool:
    """The agents one kind of session may use (all of them, or one resource group's, or those
    of one resource group that have one image)."""

    __slots__ = ("name", "image", "agents", "orders", "alive", "max_free", "dirty", "refused", "never", "min_need")

    def __init__(self, name: str | None, agents: list[int], image: str | None = None) -> None:
        self.name = name
        self.image = image
        self.agents = agents
        # Sorted selection keys of the live agents, best first: [for plain sessions, for accelerator ones].
        self.orders: tuple[list[tuple], list[tuple]] = ([], [])
        self.alive: set[int] = set()
        self.max_free: list[int | float] = []
        self.dirty: set[int] = set()
        self.refused: dict[tuple, int] = {}  # request shape -> why it found no agent
        self.never: dict[tuple, bool] = {}
        self.min_need: list[int | float] = []


class _Pass:
    """The mutable working state of one :func:`schedule` call (never shared, never returned)."""

    def __init__(
        self,
        pending: list[PendingSession],
        agents: list[AgentState],
        dispersed: bool,
        user_usage: Mapping[str, Mapping[str, Decimal]] | None,
        total_capacity: Mapping[str, Decimal] | None,
        max_skips: int | None,
        quantum: Decimal,
    ) -> None:
        self.pending = pending
        self.agents = [a for a in agents if a.schedulable]
        self.dispersed = dispersed
        self.max_skips = max_skips
        self.quantum = quantum
        user_usage = user_usage or {}

        # Mappings are read once into pairs (iterating a Mapping ABC is slow); equal requests
        # (sessions mostly come from a few presets) are prepared once.
        def pairs(slots: Mapping[str, Decimal]) -> tuple[tuple[str, Decimal], ...]:
            return tuple([(k, slots[k]) for k in slots])

        req_keys = [pairs(s.requested) for s in pending]
        # Per distinct request: the request with shares rounded up to the quantum (the same
        # object when rounding changes nothing) and its pairs.
        rounded: dict[tuple, tuple[ResourceSlots | None, tuple[tuple[str, Decimal], ...]]] = {}
        for key in req_keys:
            if key not in rounded:
                shares = dict(key).get(SHARES)
                up = gpu_mod.round_up(shares, quantum) if shares else shares
                if up != shares:
                    req = ResourceSlots({**dict(key), SHARES: up})
                    rounded[key] = (req, pairs(req))
                else:
                    rounded[key] = (None, key)
        cap_pairs = [pairs(a.capacity) for a in self.agents]
        occ_pairs = [pairs(a.occupied) for a in self.agents]
        usage_pairs = {u: pairs(v) for u, v in user_usage.items()}
        total_pairs = pairs(total_capacity) if total_capacity else None

        # One integer scale per slot, fine enough for every amount seen.
        digits: dict[str, int] = {}
        seen: dict[Decimal, int] = {}
        req_pairs = [r[1] for r in rounded.values()]
        for plist in (*req_pairs, *cap_pairs, *occ_pairs, *usage_pairs.values(), total_pairs or ()):
            for k, v in plist:
                d = seen.get(v)
                if d is None:
                    d = seen[v] = _decimals(v)
                if d >= digits.get(k, 0):
                    digits[k] = d
        self.names = sorted(digits, key=_slot_priority)
        self.index = index = {n: i for i, n in enumerate(self.names)}
        self.scale = scale = [digits[n] for n in self.names]
        width = len(self.names)
        cache: dict[tuple[int, Decimal], int | float] = {}

        def units(plist: Iterable[tuple[str, Decimal]]) -> list[int | float]:
            out: list[int | float] = [0] * width
            for k, v in plist:
                i = index[k]
                key = (i, v)
                u = cache.get(key)
                if u is None:
                    u = cache[key] = _to_units(v, scale[i])
                out[i] = u
            return out

        # Agents: free amounts (capacity - occupied), devices, selection keys.
        self.capacity = [units(c) for c in cap_pairs]
        self.free: list[list[int | float]] = []
        for cap, occ_list in zip(self.capacity, occ_pairs, strict=True):
            occ = units(occ_list)
            self.free.append(
                [c - o if o != math.inf else (c if c == math.inf else 0) for c, o in zip(cap, occ, strict=True)]
            )
        self.devices: list[tuple[GpuDevice, ...]] = [tuple(gpu_mod.device_order(a.gpus)) for a in self.agents]
        self.n_accel = sum(1 for n in self.names if _slot_priority(n)[0] == 0)  # they come first
        self.has_accel = [any(c > 0 for c in cap[: self.n_accel]) for cap in self.capacity]
        self.entries = [self._entries(ai) for ai in range(len(self.agents))]
        self.pools_of: list[list[_Pool]] = [[] for _ in self.agents]
        self.pools: dict[tuple[str | None, str | None], _Pool] = {}

        # Sessions.
        needs: dict[tuple, tuple] = {}
        for key, (_req, plist) in rounded.items():
            row = units(plist)
            needs[key] = tuple((j, u) for j, u in enumerate(row) if u)
        self.sessions: list[_Session] = []
        for i, (src, key) in enumerate(zip(pending, req_keys, strict=True)):
            need = needs[key]
            req = rounded[key][0]
            pool = self._pool(src.resource_group, src.image)
            session = _Session(i, src, src.requested if req is None else req, need, pool)
            session.accel = int(bool(need) and need[0][0] < self.n_accel)
            self.sessions.append(session)
        for rank, i in enumerate(sorted(range(len(pending)), key=lambda i: pending[i].created)):
            self.sessions[i].rank = rank
        for pool in self.pools.values():
            self._fill_pool(pool)

        # DRF: usage and the denominator.
        total = units(total_pairs) if total_pairs else [sum(col) for col in zip(*self.capacity, strict=True)]
        if not total:
            total = [0] * width
        self.drf_slots = [i for i in range(width) if 0 < total[i] < math.inf]
        self.total = total
        self.usage: dict[str, list[int | float]] = {u: units(v) for u, v in usage_pairs.items()}
        self.shares: dict[str, float] = {}

        self.kind: dict[int, int] = {}  # session index -> why it found no agent
        self.empty_gpu_fits: dict[tuple[int, Decimal, Decimal], bool] = {}
        self.placements: list[Placement] = []
        self.placed: set[int] = set()
        self.decisions = 0

    # selection order ---------------------------------------------------------------------
    def _entries(self, ai: int) -> tuple[tuple, tuple]:
        """Selection keys (smaller is chosen first) for plain and for accelerator sessions."""
        free = self.free[ai]
        if self.dispersed:
            free = [-f for f in free]
        tail = (self.agents[ai].id, ai)
        return ((self.has_accel[ai], *free[self.n_accel :], *tail), (*free, *tail))

    def _pool(self, name: str | None, image: str | None = None) -> _Pool:
        pool = self.pools.get((name, image))
        if pool is None:
            members = [
                ai
                for ai, a in enumerate(self.agents)
                if (name is None or a.resource_group == name)
                and (image is None or a.images is None or image in a.images)
            ]
            pool = self.pools[(name, image)] = _Pool(name, members, image)
        return pool

    def _fill_pool(self, pool: _Pool) -> None:
        width = len(self.names)
        # The smallest amount of each slot that every session of this pool needs: an agent
        # with less free than that can take none of them.
        min_need: list[int | float] = [math.inf] * width
        for s in self.sessions:
            if s.pool is pool:
                row = dict(s.need)
                for j in range(width):
                    v = row.get(j, 0)
                    if v < min_need[j]:
                        min_need[j] = v
        pool.min_need = [0 if v == math.inf else v for v in min_need]
        pool.max_free = [max((self.free[ai][j] for ai in pool.agents), default=0) for j in range(width)]
        for ai in pool.agents:
            self.pools_of[ai].append(pool)
            if self._useful(pool, ai):
                pool.alive.add(ai)
                for order, entry in zip(pool.orders, self.entries[ai], strict=True):
                    order.append(entry)
        for order in pool.orders:
            order.sort()

    def _useful(self, pool: _Pool, ai: int) -> bool:
        free = self.free[ai]
        return all(not m or f >= m for f, m in zip(free, pool.min_need, strict=True))

    # scheduler context ---------------------------------------------------------------------
    def dominant_share(self, access_key: str) -> float:
        share = self.shares.get(access_key)
        if share is None:
            usage = self.usage.get(access_key)
            share = max((usage[j] / self.total[j] for j in self.drf_slots), default=0.0) if usage else 0.0
            self.shares[access_key] = share
        return share

    def can_ever_fit(self, index: int) -> bool:
        s = self.sessions[index]
        pool = s.pool
        fits = pool.never.get(s.need)
        if fits is None:
            fits = pool.never[s.need] = any(self._fits_empty(ai, s) for ai in pool.agents)
        return fits

    def _fits_empty(self, ai: int, s: _Session) -> bool:
        cap = self.capacity[ai]
        if any(cap[j] < a for j, a in s.need):
            return False
        if not (s.whole or s.shares):
            return True
        key = (ai, s.whole, s.shares)
        fits = self.empty_gpu_fits.get(key)
        if fits is None:
            empty = [GpuDevice(d.id, d.shares_capacity) for d in self.devices[ai]]
            fits = self.empty_gpu_fits[key] = gpu_mod.place(empty, s.whole, s.shares, self.quantum) is not None
        return fits

    # placing ---------------------------------------------------------------------------------
    def attempt(self, index: int) -> bool:
        if index in self.placed or index in self.kind:
            raise ValueError(f"the scheduler considered session {self.pending[index].id} twice in one pass")
        self.decisions += 1
        s = self.sessions[index]
        pool = s.pool
        need = s.need
        kind = pool.refused.get(need)
        if kind is not None:
            self.kind[index] = kind
            return False
        if pool.dirty:
            self._refresh(pool)
        max_free = pool.max_free
        for j, a in need:
            if a > max_free[j]:
                pool.refused[need] = self.kind[index] = _ROOM
                return False
        free = self.free
        wants_gpu = bool(s.whole or s.shares)
        kind = _TOGETHER
        for entry in pool.orders[s.accel]:
            ai = entry[-1]
            f = free[ai]
            for j, a in need:
                if f[j] < a:
                    break
            else:
                alloc: dict[str, dict[str, Decimal]] = {}
                if wants_gpu:
                    got = gpu_mod.place(self.devices[ai], s.whole, s.shares, self.quantum)
                    if got is None:
                        kind = _DEVICES
                        continue
                    alloc = got
                self._commit(ai, s, alloc)
                return True
        pool.refused[need] = self.kind[index] = kind
        return False

    def _commit(self, ai: int, s: _Session, alloc: dict[str, dict[str, Decimal]]) -> None:
        free = self.free[ai]
        pools = self.pools_of[ai]
        for pool in pools:
            max_free = pool.max_free
            for j, _a in s.need:
                if free[j] >= max_free[j]:
                    pool.dirty.add(j)
        for j, a in s.need:
            free[j] -= a
        old = self.entries[ai]
        new = self.entries[ai] = self._entries(ai)
        for pool in pools:
            if ai in pool.alive:
                useful = self._useful(pool, ai)
                for order, old_entry, new_entry in zip(pool.orders, old, new, strict=True):
                    del order[bisect.bisect_left(order, old_entry)]
                    if useful:
                        bisect.insort(order, new_entry)
                if not useful:
                    pool.alive.discard(ai)
        if alloc:
            self.devices[ai] = gpu_mod.apply_placement(self.devices[ai], alloc)
        self.placed.add(s.index)
        self.placements.append(Placement(s.src.id, self.agents[ai].id, s.slots, alloc))
        user = s.src.access_key
        usage = self.usage.get(user)
        if usage is None:
            usage = self.usage[user] = [0] * len(self.names)
        share = self.dominant_share(user)
        total = self.total
        for j, a in s.need:
            usage[j] += a
            if total[j] and total[j] != math.inf:
                ratio = usage[j] / total[j]
                if ratio > share:
                    share = ratio
        self.shares[user] = share

    def _refresh(self, pool: _Pool) -> None:
        free = self.free
        for j in pool.dirty:
            pool.max_free[j] = max((free[ai][j] for ai in pool.agents), default=0)
        pool.dirty.clear()

    # running -----------------------------------------------------------------------------------
    def run(self, sched: Scheduler) -> ScheduleResult:
        gen = sched(self.pending, self)
        stop_reason: str | None = None
        try:
            index = next(gen)
            while True:
                index = gen.send(self.attempt(index))
        except StopIteration as done:
            stop_reason = done.value
        return ScheduleResult(tuple(self.placements), self._left_pending(stop_reason), self.decisions)

    def _left_pending(self, stop_reason: str | None) -> tuple[LeftPending, ...]:
        placed_ranks = sorted(self.sessions[i].rank for i in self.placed)
        reasons: dict[tuple[int, tuple, int], str] = {}
        out = []
        for s in self.sessions:
            if s.index in self.placed:
                continue
            later = len(placed_ranks) - bisect.bisect_right(placed_ranks, s.rank)
            kind = self.kind.get(s.index)
            if kind is None:
                reason = stop_reason or "not considered in this pass"
            else:
                key = (id(s.pool), s.need, kind)
                reason = reasons.get(key) or reasons.setdefault(key, self._reason(s, kind))
            out.append(LeftPending(s.src.id, reason, s.src.passed_over + later))
        return tuple(out)

    # explaining --------------------------------------------------------------------------------
    def _amount(self, j: int, units: int | float) -> str:
        name = self.names[j]
        value = Decimal(units).scaleb(-self.scale[j]) if units != math.inf else Decimal("Infinity")
        return f"{name} {format_amount(name, value)}"

    def _reason(self, s: _Session, kind: int) -> str:
        pool = s.pool
        where = "" if pool.name is None else f" in resource group {pool.name!r}"
        if not pool.agents:
            if pool.image is not None and any(pool.name in (None, a.resource_group) for a in self.agents):
                return f"no schedulable agent{where} has the image {pool.image!r} (images are not pulled onto agents)"
            return f"no schedulable agent{where}"
        if pool.image is not None:
            where += f" that has the image {pool.image!r}"
        if not self.can_ever_fit(s.index):
            return self._never_reason(s, where)
        self._refresh(pool)
        short = [(j, a) for j, a in s.need if a > pool.max_free[j]]
        if short:
            needs = ", ".join(self._amount(j, a) for j, a in short)
            has = ", ".join(self._amount(j, max(pool.max_free[j], 0)) for j, _a in short)
            return f"no agent{where} has room: needs {needs}, the largest free is {has}"
        together = ", ".join(self._amount(j, a) for j, a in s.need)
        if kind == _DEVICES:
            return f"no agent{where} with room has GPU devices free to place {together}"
        return f"no single agent{where} has room for {together} together"

    def _never_reason(self, s: _Session, where: str) -> str:
        biggest = [max(self.capacity[ai][j] for ai in s.pool.agents) for j in range(len(self.names))]
        short = [(j, a) for j, a in s.need if a > biggest[j]]
        if short:
            needs = ", ".join(self._amount(j, a) for j, a in short)
            has = ", ".join(self._amount(j, biggest[j]) for j, _a in short)
            return f"larger than any agent{where}: needs {needs}, the largest agent has {has}"
        together = ", ".join(self._amount(j, a) for j, a in s.need)
        return f"no agent{where} could ever hold {together} (not even when empty)"


def backend_schedulable(marked: set[str], agent_id: str, blocked: bool, known: bool) -> bool | None:
    """The schedulable flag a node sync writes for an agent of a backend with many nodes.

    ``False`` while the backend blocks the agent (a cordoned or drained node), remembering in
    ``marked`` that it was the backend; ``True`` once a block the backend set is lifted, or for an
    agent not ``known`` yet; otherwise ``None``: the administrator's own choice stands.
    """
    if blocked:
        marked.add(agent_id)
        return False
    if agent_id in marked or not known:
        marked.discard(agent_id)
        return True
    return None
