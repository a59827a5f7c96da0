"""GPU placement per device: which of an agent's GPUs a session's GPU request lands on.

Backend.AI's agent-level slots say *how much* GPU an agent has left; a container is bound to
*particular* devices, so a request must also fit device by device. Two slots matter:

* ``cuda.device`` asks for whole GPUs. A device is either free (nothing on it at all, not even
  shares) or taken; a request of ``N`` takes ``N`` free devices (fractional counts round up).
* ``cuda.shares`` asks for fractional GPUs: each device holds ``shares_capacity`` shares (1
  by default; ``gpu_shares_per_device`` of the spawner), so a share is that fraction of a GPU.
  Every amount handed out is a multiple of a *quantum* (default ``0.01``) so that shares add
  up exactly and never leave unusable slivers; requests are rounded **up** to the quantum.

Everything here is pure: device states are frozen and functions return new mappings (or
``None`` when a request cannot be placed), so the scheduler can try an agent and move on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from .slots import ZERO

__all__ = [
    "DEFAULT_QUANTUM",
    "SHARES",
    "WHOLE",
    "GpuDevice",
    "apply_placement",
    "device_order",
    "place",
    "place_shares",
    "place_whole",
    "round_up",
]

WHOLE = "cuda.device"
SHARES = "cuda.shares"
DEFAULT_QUANTUM = Decimal("0.01")
ONE = Decimal(1)

_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One GPU of an agent as the scheduler sees it.

    ``whole_used`` marks a device handed out whole (``cuda.device``); ``shares_used`` is what
    fractional sessions hold on it. A device taken whole offers no shares, and a device with
    any shares on it cannot be taken whole.
    """

    id: str
    shares_capacity: Decimal = ONE
    shares_used: Decimal = ZERO
    whole_used: bool = False

    def __post_init__(self) -> None:
        # Accept ints and strings for convenience; keep exact Decimals inside.
        for name in ("shares_capacity", "shares_used"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                object.__setattr__(self, name, Decimal(str(value)))

    @property
    def free_shares(self) -> Decimal:
        if self.whole_used:
            return ZERO
        return max(ZERO, self.shares_capacity - self.shares_used)

    @property
    def is_free(self) -> bool:
        """Nothing at all on it, so it can be handed out whole."""
        return not self.whole_used and not self.shares_used


def round_up(amount: Decimal, quantum: Decimal = DEFAULT_QUANTUM) -> Decimal:
    """Round ``amount`` up to a multiple of ``quantum`` (``0.333`` -> ``0.34``)."""
    if quantum <= 0:
        raise ValueError(f"the GPU share quantum must be positive, not {quantum}")
    return (amount / quantum).to_integral_value(rounding=ROUND_CEILING) * quantum


@functools.lru_cache(maxsize=4096)
def _id_key(device_id: str) -> tuple[object, ...]:
    # Natural order ("2" before "10"); re.split keeps text at even and digits at odd
    # positions, so the tuples always compare like with like.
    return tuple(int(part) if i % 2 else part for i, part in enumerate(_DIGITS.split(device_id)))


def device_order(devices: Iterable[GpuDevice]) -> list[GpuDevice]:
    """Devices in id order ("0", "1", ..., "10"), the tie-break of every rule here."""
    return sorted(devices, key=lambda d: _id_key(d.id))


def place_whole(devices: Sequence[GpuDevice], count: Decimal | int) -> dict[str, Decimal] | None:
    """Pick ``count`` whole free devices, lowest ids first; ``None`` when too few are free.

    A fractional count rounds up (a container cannot own 1.5 devices).
    """
    need = int(Decimal(count).to_integral_value(rounding=ROUND_CEILING))
    if need <= 0:
        return {}
    free = [d for d in device_order(devices) if d.is_free]
    if len(free) < need:
        return None
    return {d.id: ONE for d in free[:need]}


def place_shares(
    devices: Sequence[GpuDevice], amount: Decimal | int, quantum: Decimal = DEFAULT_QUANTUM
) -> dict[str, Decimal] | None:
    """Place ``amount`` GPU shares; returns ``{device_id: shares}`` or ``None`` when impossible.

    The request is first rounded up to ``quantum``; it is then ``r``, and every amount below is
    a multiple of ``quantum``. A device offers its free shares rounded *down* to the quantum.

    ``c`` is what one whole device offers (the largest ``shares_capacity``; 1 by default).

    * ``r <= c``: one device, **best fit**: the device with the least free share that still
      holds ``r`` (ties: lowest id). A sub-GPU request never spans devices, because a process
      sees its share as one GPU; so it is ``None`` if no single device has room.
    * ``r > c``: an **even split** over ``k`` devices, for the smallest ``k`` from ``ceil(r / c)``
      up to the number of usable devices for which one exists. Even means the parts differ by at
      most one quantum: ``r`` in quanta is ``n = base * k + extra``, so ``extra`` devices get
      ``base + 1`` quanta and the others ``base`` (1.5 over 2 -> 0.75 + 0.75; 1.01 over 2 ->
      0.51 + 0.50). The larger parts go to the best-fitting devices that hold them, then the
      smaller parts to the best-fitting remaining ones (least free first, ties by id); this
      always succeeds when ``extra`` devices hold the larger part and ``k`` hold the smaller.
    * If no even split exists, an **uneven split** over the fewest devices: most free first
      (ties by id), each taking all it has until the request is covered; ``None`` if all
      usable devices together are too small.

    The returned amounts always sum exactly to ``r``; the mapping is in device id order.
    """
    r = round_up(Decimal(amount), quantum)
    if r <= 0:
        return {}
    units = int(r / quantum)
    ordered = device_order(devices)
    # (free quanta, position in id order, device id); whole-taken devices offer nothing.
    usable = [
        (int((d.free_shares / quantum).to_integral_value(rounding=ROUND_FLOOR)), pos, d.id)
        for pos, d in enumerate(ordered)
        if not d.whole_used
    ]
    usable = [u for u in usable if u[0] > 0]
    usable.sort()  # best fit order: least free first, then id order
    per_device = max((d.shares_capacity for d in ordered), default=ONE)
    if r <= per_device:
        for free, _pos, dev in usable:
            if free >= units:
                return {dev: r}
        return None
    split = _even_split(usable, units, int((r / per_device).to_integral_value(rounding=ROUND_CEILING)))
    if split is None:
        split = _uneven_split(usable, units)
    if split is None:
        return None
    by_pos = sorted(split.items())
    return {dev: q * quantum for (_pos, dev), q in by_pos}


def _even_split(usable: list[tuple[int, int, str]], units: int, k_min: int) -> dict[tuple[int, str], int] | None:
    for k in range(k_min, min(len(usable), units) + 1):
        base, extra = divmod(units, k)
        if sum(1 for u in usable if u[0] >= base + 1) < extra or sum(1 for u in usable if u[0] >= base) < k:
            continue
        chosen: dict[tuple[int, str], int] = {}
        for free, pos, dev in usable:  # larger parts first, best fit
            if len(chosen) == extra:
                break
            if free >= base + 1:
                chosen[pos, dev] = base + 1
        for free, pos, dev in usable:  # then the smaller parts on what is left
            if len(chosen) == k:
                break
            if (pos, dev) not in chosen and free >= base:
                chosen[pos, dev] = base
        return chosen
    return None


def _uneven_split(usable: list[tuple[int, int, str]], units: int) -> dict[tuple[int, str], int] | None:
    if sum(u[0] for u in usable) < units:
        return None
    chosen: dict[tuple[int, str], int] = {}
    left = units
    for free, pos, dev in sorted(usable, key=lambda u: (-u[0], u[1])):
        take = min(free, left)
        chosen[pos, dev] = take
        left -= take
        if not left:
            break
    return chosen


def place(
    devices: Sequence[GpuDevice],
    whole: Decimal | int = ZERO,
    shares: Decimal | int = ZERO,
    quantum: Decimal = DEFAULT_QUANTUM,
) -> dict[str, dict[str, Decimal]] | None:
    """Place whole devices, then shares on the devices left; Backend.AI's allocation shape.

    Returns ``{"cuda.device": {id: 1, ...}, "cuda.shares": {id: amount, ...}}`` (only the slots
    requested), ``{}`` for no GPU request, or ``None`` when either part cannot be placed.
    """
    out: dict[str, dict[str, Decimal]] = {}
    if whole:
        taken = place_whole(devices, whole)
        if taken is None:
            return None
        out[WHOLE] = taken
        if shares:
            devices = apply_placement(devices, out)
    if shares:
        parts = place_shares(devices, shares, quantum)
        if parts is None:
            return None
        out[SHARES] = parts
    return out


def apply_placement(
    devices: Sequence[GpuDevice], placement: Mapping[str, Mapping[str, Decimal]]
) -> tuple[GpuDevice, ...]:
    """The device states after ``placement`` (as returned by :func:`place`); inputs untouched."""
    whole = placement.get(WHOLE, {})
    shares = placement.get(SHARES, {})
    out = []
    for d in devices:
        if d.id in whole:
            d = replace(d, whole_used=True)
        if d.id in shares:
            d = replace(d, shares_used=d.shares_used + shares[d.id])
        out.append(d)
    return tuple(out)
