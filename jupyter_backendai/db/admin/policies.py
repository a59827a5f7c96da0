"""Keypair resource policies: the limits a keypair's sessions and folders are held to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from ...core.slots import ResourceSlots
from .. import models as m
from .lookups import get_policy
from .validation import AdminError, Conflict, check_hosts, check_name, check_non_negative, parse_slots

POLICY_FIELDS = (
    "max_concurrent_sessions",
    "max_containers_per_session",
    "idle_timeout",
    "max_session_lifetime",
    "max_pending_session_count",
    "max_vfolder_count",
    "max_vfolder_size",
)


def _apply_policy_fields(policy: m.KeyPairResourcePolicy, fields: Mapping[str, Any]) -> None:
    for key, value in fields.items():
        if key == "total_resource_slots":
            if value is not None:
                policy.total_resource_slots = ResourceSlots(
                    {**(policy.total_resource_slots or {}), **parse_slots(value)}
                )
        elif key == "allowed_vfolder_hosts":
            if value is not None:
                policy.allowed_vfolder_hosts = check_hosts(value)
        elif key in POLICY_FIELDS:
            if value is not None:
                setattr(policy, key, check_non_negative(key.replace("_", " "), value))
        else:
            raise AdminError(f"unknown policy field {key!r}")
    if policy.max_containers_per_session is not None and policy.max_containers_per_session < 1:
        raise AdminError("max containers per session must be at least 1")


def create_policy(db: DB, name: str, **fields: Any) -> m.KeyPairResourcePolicy:
    check_name("policy", name)
    if db.get(m.KeyPairResourcePolicy, name) is not None:
        raise Conflict(f"keypair resource policy {name!r} already exists")
    policy = m.KeyPairResourcePolicy(
        name=name,
        total_resource_slots=ResourceSlots(),
        max_concurrent_sessions=0,
        max_containers_per_session=1,
        idle_timeout=0,
        max_session_lifetime=0,
        max_vfolder_count=0,
        max_vfolder_size=0,
        allowed_vfolder_hosts=["local"],
    )
    _apply_policy_fields(policy, fields)
    db.add(policy)
    db.flush()
    return policy


def update_policy(db: DB, name: str, **fields: Any) -> m.KeyPairResourcePolicy:
    policy = get_policy(db, name)
    _apply_policy_fields(policy, fields)
    db.flush()
    return policy


def delete_policy(db: DB, name: str) -> None:
    policy = get_policy(db, name)
    users = db.scalar(select(func.count()).select_from(m.KeyPair).where(m.KeyPair.resource_policy == name))
    if users:
        raise Conflict(f"keypair resource policy {name!r} is used by {users} keypair(s); assign them another first")
    db.delete(policy)
    db.flush()
