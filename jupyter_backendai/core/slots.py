"""Resource slots: exact decimal amounts of named resources.

A slot name maps to a :class:`~decimal.Decimal` amount: ``cpu`` in cores, ``mem`` and
``shmem`` in bytes, ``cuda.device`` in whole GPUs, ``cuda.shares`` in fractional GPUs, and
any other name an operator defines. Amounts are exact decimals (never floats) so that
``0.1 + 0.2`` cores is ``0.3`` and a policy limit compares exactly.

*Unlimited* is an amount too (``Decimal('Infinity')``), written ``unlimited`` by people and
``"Infinity"`` in JSON, as Backend.AI does. It can only come from the word ``unlimited``:
``inf``, ``nan``, negative numbers, empty strings and garbage are refused with a
:class:`SlotError` whose message names the slot and the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation

from . import errors

__all__ = [
    "BYTE_SLOTS",
    "UNLIMITED",
    "ZERO",
    "ResourceSlots",
    "SlotError",
    "format_amount",
    "is_byte_slot",
    "parse_amount",
]

UNLIMITED = Decimal("Infinity")
ZERO = Decimal(0)

#: Slots measured in bytes; they accept size suffixes (``4g``, ``512m``, ``1.5GiB``).
BYTE_SLOTS = frozenset({"mem", "shmem", "cuda.mem", "disk"})

_UNLIMITED_WORDS = frozenset({"unlimited", "infinity"})
_SLOT_NAME = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$")
# Backend.AI and docker both read "g" as GiB; an explicit "gb" is the same on purpose:
# nobody sizes container memory in powers of ten, and two meanings would surprise users.
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(?:([kmgtpe])(?:ib|b|i)?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_HUMAN_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]


class SlotError(errors.BadRequest, ValueError):
    """A slot name or amount that cannot be used; the message names both."""


def is_byte_slot(name: str) -> bool:
    """True for slots measured in bytes (``mem``, ``shmem``, ``*.mem``)."""
    return name in BYTE_SLOTS or name.endswith(".mem")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _SLOT_NAME.match(name):
        raise SlotError(f"invalid slot name {name!r}: use lower-case words joined by dots, like 'cuda.shares'")
    return name


def parse_amount(name: str, value: object) -> Decimal:
    """Parse one amount of slot ``name``.

    Accepts ints, Decimals, finite floats and strings (``"2"``, ``"0.5"``, ``"unlimited"``;
    for byte slots also ``"4g"``, ``"512m"``, ``"1.5GiB"``, ``"100k"``). Byte amounts are
    rounded down to whole bytes.
    """
    name = _check_name(name)
    if isinstance(value, bool) or value is None:
        raise SlotError(f"{name}: {value!r} is not an amount")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise SlotError(f"{name}: {value!r} is not a finite amount (write 'unlimited' for no limit)")
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise SlotError(f"{name}: an empty value is not an amount")
        if text.lower() in _UNLIMITED_WORDS:
            return UNLIMITED
        amount = _parse_text(name, text)
    else:
        raise SlotError(f"{name}: {value!r} is not an amount")
    if amount.is_nan() or (amount.is_infinite() and amount < 0):
        raise SlotError(f"{name}: {value!r} is not a valid amount")
    if amount.is_infinite():
        return UNLIMITED
    if amount < 0:
        raise SlotError(f"{name}: {value!r} is negative")
    if is_byte_slot(name):
        amount = amount.to_integral_value(rounding="ROUND_FLOOR")
    return amount + 0  # normalises -0 to 0


def _parse_text(name: str, text: str) -> Decimal:
    if is_byte_slot(name):
        m = _SIZE.match(text)
        if not m:
            raise SlotError(f"{name}: {text!r} is not a size (examples: 4g, 512m, 1.5GiB, 1073741824)")
        number, unit = m.groups()
        return Decimal(number) * (1024 ** _UNITS[(unit or "").lower()])
    if text.startswith("-"):
        raise SlotError(f"{name}: {text!r} is negative")
    if not re.fullmatch(r"[0-9]*\.?[0-9]+", text):
        raise SlotError(f"{name}: {text!r} is not a number")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern above already guards it
        raise SlotError(f"{name}: {text!r} is not a number") from None


def format_amount(name: str, amount: Decimal) -> str:
    """Format an amount for people: ``4 GiB``, ``0.5``, ``unlimited``."""
    if amount.is_infinite():
        return "unlimited"
    if is_byte_slot(name):
        unit = 0
        while unit < len(_HUMAN_UNITS) - 1 and amount >= 1024 ** (unit + 1):
            unit += 1
        value = amount / (1024**unit)
        shown = value.quantize(Decimal("0.01"), rounding="ROUND_DOWN")
        text = f"{_plain(shown)} {_HUMAN_UNITS[unit]}"
        # Never let rounding make two different sizes read the same ("4 GiB exceeds 4 GiB").
        return text if shown == value else f"{text} ({_plain(amount)} B)"
    return _plain(amount)


def _plain(amount: Decimal) -> str:
    text = format(amount.normalize(), "f")
    return text


class ResourceSlots(Mapping[str, Decimal]):
    """An immutable mapping of slot name to amount with slot arithmetic.

    A missing slot is an amount of zero for arithmetic and for :meth:`fits_in`; for limits
    (where a missing slot means "no limit set") use :meth:`within`.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, object] | Iterable[tuple[str, object]] | None = None, **kw: object):
        items = dict(data or {})
        items.update(kw)
        self._data: dict[str, Decimal] = {str(k): parse_amount(str(k), v) for k, v in items.items()}
        self._hash: int | None = None

    # construction -----------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Mapping[str, object] | None) -> ResourceSlots:
        """Build from user input or JSON (``{"cpu": "2", "mem": "4g"}``)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise SlotError(f"resource slots must be a mapping of slot name to amount, not {type(data).__name__}")
        return cls(data)

    @classmethod
    def _raw(cls, data: dict[str, Decimal]) -> ResourceSlots:
        obj = cls.__new__(cls)
        obj._data = data
        obj._hash = None
        return obj

    # mapping protocol -------------------------------------------------------------------
    def __getitem__(self, key: str) -> Decimal:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: Decimal = ZERO) -> Decimal:  # type: ignore[override]
        return self._data.get(key, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            if not isinstance(other, ResourceSlots):
                try:
                    other = ResourceSlots(other)
                except SlotError:
                    return False
            keys = set(self._data) | set(other._data)
            return all(self.get(k) == other.get(k) for k in keys)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset((k, v) for k, v in self._data.items() if v))
        return self._hash

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{k!r}: {_plain(v) if v.is_finite() else 'unlimited'!r}" for k, v in sorted(self._data.items())
        )
        return f"ResourceSlots({{{inner}}})"

    def __bool__(self) -> bool:
        return any(self._data.values())

    # arithmetic -------------------------------------------------------------------------
    def __add__(self, other: Mapping[str, Decimal]) -> ResourceSlots:
        out = dict(self._data)
        for k, v in other.items():
            out[k] = out.get(k, ZERO) + v
        return ResourceSlots._raw(out)

    def __sub__(self, other: Mapping[str, Decimal]) -> ResourceSlots:
        """Subtract; an unlimited amount stays unlimited. Going below zero is an error."""
        out = dict(self._data)
        for k, v in other.items():
            mine = out.get(k, ZERO)
            if mine.is_infinite():
                continue
            if v.is_infinite() or v > mine:
                raise SlotError(f"{k}: cannot take {format_amount(k, v)} from {format_amount(k, mine)}")
            out[k] = mine - v
        return ResourceSlots._raw(out)

    def minus_clamped(self, other: Mapping[str, Decimal]) -> ResourceSlots:
        """Subtract, stopping at zero (for "remaining" figures when usage exceeds a cap)."""
        out = dict(self._data)
        for k, v in other.items():
            mine = out.get(k, ZERO)
            if mine.is_infinite():
                continue
            out[k] = max(ZERO, mine - v)
        return ResourceSlots._raw(out)

    def scale(self, factor: int | Decimal) -> ResourceSlots:
        f = Decimal(factor)
        return ResourceSlots._raw({k: (v if v.is_infinite() else v * f) for k, v in self._data.items()})

    def max(self, other: Mapping[str, Decimal]) -> ResourceSlots:
        """Slot-wise maximum (raising a request to an image's minimum)."""
        out = dict(self._data)
        for k, v in other.items():
            out[k] = max(out.get(k, ZERO), v)
        return ResourceSlots._raw(out)

    def min(self, other: Mapping[str, Decimal]) -> ResourceSlots:
        """Slot-wise minimum over the union of slots, a missing slot counting as unlimited."""
        out: dict[str, Decimal] = {}
        for k in set(self._data) | set(other):
            out[k] = min(self._data.get(k, UNLIMITED), other.get(k, UNLIMITED))
        return ResourceSlots._raw(out)

    # comparison -------------------------------------------------------------------------
    def fits_in(self, capacity: Mapping[str, Decimal]) -> bool:
        """True when every amount is at most the capacity's (a missing capacity is zero)."""
        get = capacity.get
        for k, v in self._data.items():
            if v and v > get(k, ZERO):
                return False
        return True

    def within(self, limits: Mapping[str, Decimal]) -> bool:
        """True when every amount is at most the limit's (a missing limit is no limit)."""
        return not self.exceeding(limits)

    def exceeding(self, limits: Mapping[str, Decimal], *, missing: Decimal = UNLIMITED) -> list[str]:
        """The slots (sorted) whose amount is over ``limits``; a missing limit is ``missing``."""
        return sorted(k for k, v in self._data.items() if v and v > limits.get(k, missing))

    # output -----------------------------------------------------------------------------
    def nonzero(self) -> ResourceSlots:
        return ResourceSlots._raw({k: v for k, v in self._data.items() if v})

    def to_json(self) -> dict[str, str]:
        """Backend.AI's wire form: every amount a string, unlimited as ``"Infinity"``."""
        return {k: ("Infinity" if v.is_infinite() else _plain(v)) for k, v in sorted(self._data.items())}

    def humanize(self) -> dict[str, str]:
        return {k: format_amount(k, v) for k, v in sorted(self._data.items())}

    def __str__(self) -> str:
        return ", ".join(f"{k} {format_amount(k, v)}" for k, v in sorted(self._data.items())) or "nothing"
