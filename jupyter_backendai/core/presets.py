"""Resource presets and Backend.AI's ``POST /resource/check-presets`` answer (F18, F43).

The launcher offers only presets that still fit (F18): :func:`check_presets` computes, from
figures the caller has read, the same JSON document Backend.AI returns, so that clients
written for Backend.AI (and our own lab extension) read it unchanged.

How the figures relate:

* ``*_limits`` are the keypair policy's / group's / domain's ``total_resource_slots``; a slot
  the limit does not name is unlimited and appears as ``"Infinity"`` (as Backend.AI fills
  every known slot type).
* ``*_remaining`` is limit minus using, stopping at zero (usage can exceed a limit that an
  admin lowered after the sessions started).
* ``scaling_groups`` lists, per resource group, what the keypair's sessions hold there
  (``using``) and what its agents have free (``remaining``; a missing slot: nothing free);
  ``scaling_group_remaining`` is the sum over the listed groups.
* A preset is ``allocatable`` when it fits in the smallest of keypair, group and domain
  remaining *and* in the remaining of at least one listed resource group (a session runs in
  one resource group, so free amounts of two groups cannot be added up for it).

Unlike Backend.AI, ``keypair_remaining`` here is the keypair's own remaining, not already
narrowed by the group and domain; the narrowing is applied only when judging presets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .policy import Cap, KeypairPolicy, as_slots
from .slots import UNLIMITED, ZERO, ResourceSlots, parse_amount

__all__ = ["Preset", "ScalingGroupUsage", "check_presets"]


@dataclass(frozen=True)
class Preset:
    """A named resource allocation offered at launch; ``shared_memory`` is in bytes (None: default)."""

    name: str
    resource_slots: ResourceSlots
    shared_memory: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a preset needs a name, not {self.name!r}")
        object.__setattr__(self, "resource_slots", as_slots(self.resource_slots, f"preset {self.name!r}"))
        unlimited = sorted(k for k, v in self.resource_slots.items() if v.is_infinite())
        if unlimited:
            raise ValueError(
                f"preset {self.name!r}: a preset cannot allocate an unlimited amount: {', '.join(unlimited)}"
            )
        if self.shared_memory is not None:
            shmem = parse_amount("shmem", self.shared_memory)
            if shmem.is_infinite():
                raise ValueError(f"preset {self.name!r}: shared memory cannot be unlimited")
            object.__setattr__(self, "shared_memory", int(shmem))


@dataclass(frozen=True)
class ScalingGroupUsage:
    """One resource group in :func:`check_presets`: the keypair's holdings there and what is free."""

    using: ResourceSlots = field(default_factory=ResourceSlots)
    remaining: ResourceSlots = field(default_factory=ResourceSlots)

    def __post_init__(self) -> None:
        object.__setattr__(self, "using", as_slots(self.using, "scaling group using"))
        object.__setattr__(self, "remaining", as_slots(self.remaining, "scaling group remaining"))


def _fill(slots: ResourceSlots, names: Iterable[str], default: Any) -> ResourceSlots:
    return ResourceSlots({name: slots.get(name, default) for name in names})


def check_presets(
    presets: Iterable[Preset],
    *,
    policy: KeypairPolicy,
    keypair_using: Mapping[str, object] | None = None,
    group: Cap | None = None,
    group_using: Mapping[str, object] | None = None,
    domain: Cap | None = None,
    domain_using: Mapping[str, object] | None = None,
    scaling_groups: Mapping[str, ScalingGroupUsage] | None = None,
    scaling_group: str | None = None,
    known_slots: Iterable[str] = (),
) -> dict[str, Any]:
    """Backend.AI's check-presets answer as a JSON-ready dict (see the module docstring).

    ``scaling_groups`` are the resource groups the user may use; ``scaling_group`` narrows the
    answer to one of them (a name not among them is a :class:`ValueError`, as Backend.AI
    answers "unknown scaling group"). With no resource group at all nothing is allocatable.
    ``known_slots`` adds slot types to report even when no input mentions them; every slot
    any input mentions is reported anyway, so all figures list the same slots.
    """
    presets = list(presets)
    keypair_using_s = as_slots(keypair_using, "keypair_using")
    group_using_s = as_slots(group_using, "group_using")
    domain_using_s = as_slots(domain_using, "domain_using")
    groups = dict(scaling_groups or {})
    if scaling_group is not None:
        if scaling_group not in groups:
            raise ValueError(f"unknown resource group {scaling_group!r}")
        groups = {scaling_group: groups[scaling_group]}
    for name, usage in groups.items():
        if not isinstance(usage, ScalingGroupUsage):
            raise TypeError(f"scaling group {name!r}: expected ScalingGroupUsage, not {type(usage).__name__}")

    group_limits_s = group.total_resource_slots if group else ResourceSlots()
    domain_limits_s = domain.total_resource_slots if domain else ResourceSlots()
    names: set[str] = set(known_slots)
    for slots in (
        policy.total_resource_slots,
        keypair_using_s,
        group_limits_s,
        group_using_s,
        domain_limits_s,
        domain_using_s,
        *(p.resource_slots for p in presets),
        *(u.using for u in groups.values()),
        *(u.remaining for u in groups.values()),
    ):
        names.update(slots)
    names_sorted = sorted(names)

    keypair_limits = _fill(policy.total_resource_slots, names_sorted, UNLIMITED)
    keypair_using_f = _fill(keypair_using_s, names_sorted, ZERO)
    keypair_remaining = keypair_limits.minus_clamped(keypair_using_f)
    group_limits = _fill(group_limits_s, names_sorted, UNLIMITED)
    group_using_f = _fill(group_using_s, names_sorted, ZERO)
    group_remaining = group_limits.minus_clamped(group_using_f)
    budget = keypair_remaining.min(group_remaining)
    if domain is not None:
        domain_remaining = _fill(domain_limits_s, names_sorted, UNLIMITED).minus_clamped(
            _fill(domain_using_s, names_sorted, ZERO)
        )
        budget = budget.min(domain_remaining)

    per_group: dict[str, dict[str, dict[str, str]]] = {}
    group_budgets: list[ResourceSlots] = []
    sg_remaining_total = _fill(ResourceSlots(), names_sorted, ZERO)
    for name in sorted(groups):
        usage = groups[name]
        remaining = _fill(usage.remaining, names_sorted, ZERO)
        sg_remaining_total = sg_remaining_total + remaining
        group_budgets.append(budget.min(remaining))
        per_group[name] = {
            "using": _fill(usage.using, names_sorted, ZERO).to_json(),
            "remaining": remaining.to_json(),
        }

    answer_presets = [
        {
            "name": preset.name,
            "resource_slots": preset.resource_slots.to_json(),
            "shared_memory": None if preset.shared_memory is None else str(preset.shared_memory),
            "allocatable": any(preset.resource_slots.fits_in(b) for b in group_budgets),
        }
        for preset in presets
    ]
    return {
        "keypair_limits": keypair_limits.to_json(),
        "keypair_using": keypair_using_f.to_json(),
        "keypair_remaining": keypair_remaining.to_json(),
        "group_limits": group_limits.to_json(),
        "group_using": group_using_f.to_json(),
        "group_remaining": group_remaining.to_json(),
        "scaling_group_remaining": sg_remaining_total.to_json(),
        "scaling_groups": per_group,
        "presets": answer_presets,
    }
