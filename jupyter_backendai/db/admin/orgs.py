"""Domains and groups (projects): the defaults every installation starts with, creation, changes, members."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ...core.slots import ResourceSlots
from .. import models as m
from .lookups import get_domain, get_group
from .validation import DEFAULT, AdminError, Conflict, check_hosts, check_name, parse_slots


def ensure_defaults(db: DB) -> list[str]:
    """Create the ``default`` domain, group, policy and resource group when missing.

    Returns what was created, so that a second run reports nothing.
    """
    created = []
    if db.get(m.Domain, DEFAULT) is None:
        db.add(m.Domain(name=DEFAULT, description="The default domain"))
        created.append("domain default")
        db.flush()
    if db.scalar(select(m.Group).where(m.Group.name == DEFAULT, m.Group.domain_name == DEFAULT)) is None:
        db.add(m.Group(name=DEFAULT, domain_name=DEFAULT, description="The default project"))
        created.append("group default")
    if db.get(m.KeyPairResourcePolicy, DEFAULT) is None:
        db.add(
            m.KeyPairResourcePolicy(
                name=DEFAULT, max_concurrent_sessions=0, max_containers_per_session=1, allowed_vfolder_hosts=["local"]
            )
        )
        created.append("policy default")
    if db.get(m.ScalingGroup, DEFAULT) is None:
        sgroup = m.ScalingGroup(name=DEFAULT, description="The default resource group")
        sgroup.domains.append(db.get(m.Domain, DEFAULT))
        db.add(sgroup)
        created.append("scaling-group default")
    db.flush()
    return created


def new_org_fields(
    *,
    description: str = "",
    total_resource_slots: Mapping[str, Any] | None = None,
    allowed_vfolder_hosts: Iterable[str] | None = None,
    allowed_docker_registries: Iterable[str] | None = None,
    is_active: bool = True,
) -> dict[str, Any]:
    """The checked columns a new domain or group (project) starts with: its caps, storage hosts,
    registries, description and whether it launches anything."""
    return {
        "description": description,
        "is_active": _check_active(is_active),
        "total_resource_slots": parse_slots(total_resource_slots),
        "allowed_vfolder_hosts": check_hosts(allowed_vfolder_hosts),
        "allowed_docker_registries": sorted(set(allowed_docker_registries or [])),
    }


def create_domain(db: DB, name: str, **fields: Any) -> m.Domain:
    """A new domain; ``fields`` are those of :func:`new_org_fields`."""
    check_name("domain", name)
    if db.get(m.Domain, name) is not None:
        raise Conflict(f"domain {name!r} already exists")
    domain = m.Domain(name=name, **new_org_fields(**fields))
    db.add(domain)
    db.flush()
    return domain


def create_group(db: DB, name: str, *, domain: str = DEFAULT, **fields: Any) -> m.Group:
    """A new group (project) of a domain; ``fields`` are those of :func:`new_org_fields`."""
    check_name("group", name)
    get_domain(db, domain)
    if db.scalar(select(m.Group).where(m.Group.name == name, m.Group.domain_name == domain)) is not None:
        raise Conflict(f"group {name!r} already exists in domain {domain!r}")
    group = m.Group(name=name, domain_name=domain, **new_org_fields(**fields))
    db.add(group)
    db.flush()
    return group


ORG_FIELDS = ("description", "total_resource_slots", "allowed_vfolder_hosts", "allowed_docker_registries", "is_active")


def _check_active(value: Any) -> bool:
    """An inactive domain or project launches nothing (:func:`...launch.plan_launch`); its rows stay."""
    if not isinstance(value, bool):
        raise AdminError(f"is_active must be true or false, not {value!r}")
    return value


def merge_caps(current: Mapping[str, Any] | None, given: Mapping[str, Any] | None) -> ResourceSlots:
    """A domain's or group's caps after a change: the slots given replace theirs, the others stay;
    ``unlimited`` lifts a slot's cap (a slot without a cap is unlimited)."""
    merged = {**(current or {}), **parse_slots(given)}
    return ResourceSlots({k: v for k, v in merged.items() if not v.is_infinite()})


def _update_org(org: m.Domain | m.Group, fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - set(ORG_FIELDS))
    if unknown:
        raise AdminError(f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(ORG_FIELDS)}")
    for key, value in fields.items():
        if value is None:
            continue
        if key == "description":
            if not isinstance(value, str):
                raise AdminError(f"description must be text, not {value!r}")
            org.description = value
        elif key == "is_active":
            org.is_active = _check_active(value)
        elif key == "total_resource_slots":
            if not isinstance(value, Mapping):
                raise AdminError(f"total_resource_slots must be a mapping of slot name to amount, not {value!r}")
            org.total_resource_slots = merge_caps(org.total_resource_slots, value)
        elif key == "allowed_vfolder_hosts":
            org.allowed_vfolder_hosts = check_hosts(value)
        else:
            if isinstance(value, str) or not all(isinstance(r, str) for r in value):
                raise AdminError(f"allowed_docker_registries must be a list of registry names, not {value!r}")
            org.allowed_docker_registries = sorted({r.strip() for r in value if r.strip()})


def update_domain(db: DB, name: str, **fields: Any) -> m.Domain:
    """Change a domain: its caps (merged, see :func:`merge_caps`), description, hosts, registries.

    A cap lowered below what the domain's sessions hold ends none of them; new launches are
    refused until those sessions hold less (admission counts what is held and awaited).
    """
    domain = get_domain(db, name)
    _update_org(domain, fields)
    db.flush()
    return domain


def update_group(db: DB, name: str, domain: str = DEFAULT, **fields: Any) -> m.Group:
    """Change a group (project) of a domain, as :func:`update_domain` does."""
    group = get_group(db, name, domain)
    _update_org(group, fields)
    db.flush()
    return group


def add_user_to_group(db: DB, group: m.Group, user: m.User) -> bool:
    """Add a membership; False when it already existed."""
    if user.domain_name != group.domain_name:
        raise AdminError(
            f"user {user.email!r} is in domain {user.domain_name!r}, group {group.name!r} in {group.domain_name!r}"
        )
    if user in group.users:
        return False
    group.users.append(user)
    db.flush()
    return True


def remove_user_from_group(db: DB, group: m.Group, user: m.User) -> bool:
    if user not in group.users:
        return False
    group.users.remove(user)
    db.flush()
    return True
