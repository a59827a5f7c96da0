"""Resource presets: named amounts of resources offered at launch, optionally for one resource group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session as DB

from ...core.slots import ResourceSlots
from .. import models as m
from .lookups import get_preset, get_scaling_group
from .validation import AdminError, Conflict, check_name, parse_slots


def _check_shmem(value: Any) -> int | None:
    if value is None:
        return None
    return int(parse_slots({"shmem": value})["shmem"])


def create_preset(
    db: DB,
    name: str,
    resource_slots: Mapping[str, Any],
    *,
    shared_memory: Any = None,
    scaling_group: str | None = None,
) -> m.ResourcePreset:
    check_name("preset", name)
    if db.get(m.ResourcePreset, name) is not None:
        raise Conflict(f"resource preset {name!r} already exists")
    slots = parse_slots(resource_slots)
    if not slots:
        raise AdminError(f"preset {name!r} needs at least one resource (for example --cpu 1 --mem 1g)")
    if any(v.is_infinite() for v in slots.values()):
        raise AdminError(f"preset {name!r} cannot ask for unlimited resources")
    if scaling_group is not None:
        get_scaling_group(db, scaling_group)
    preset = m.ResourcePreset(
        name=name, resource_slots=slots, shared_memory=_check_shmem(shared_memory), scaling_group_name=scaling_group
    )
    db.add(preset)
    db.flush()
    return preset


def update_preset(
    db: DB,
    name: str,
    *,
    resource_slots: Mapping[str, Any] | None = None,
    shared_memory: Any = None,
    scaling_group: str | None = None,
) -> m.ResourcePreset:
    preset = get_preset(db, name)
    if resource_slots:
        slots = parse_slots(resource_slots)
        if any(v.is_infinite() for v in slots.values()):
            raise AdminError(f"preset {name!r} cannot ask for unlimited resources")
        preset.resource_slots = ResourceSlots({**preset.resource_slots, **slots})
    if shared_memory is not None:
        preset.shared_memory = _check_shmem(shared_memory)
    if scaling_group is not None:
        preset.scaling_group_name = get_scaling_group(db, scaling_group).name if scaling_group else None
    db.flush()
    return preset


def delete_preset(db: DB, name: str) -> None:
    db.delete(get_preset(db, name))
    db.flush()
