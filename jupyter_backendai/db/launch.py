"""Launch rules that the hub's spawner and the manager share, so that both answer alike.

* :func:`lock_admission` makes admission and the limit checks one serialized step per domain:
  a session's limits (its keypair's policy, its group's and its domain's caps) count what the
  sessions of one domain hold, so two launches in one domain must not both read "room for one
  more" and both go ahead.
* :func:`check_presets_for` is the one answer to "which presets fit": Backend.AI's
  ``check-presets`` document from the keypair policy, the group and domain caps and the
  resource groups' free amounts. The manager's ``POST /resource/check-presets`` (what the lab's
  start dialog reads) and the hub's spawn form both call it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session as DB

from ..core.policy import Cap
from ..core.presets import Preset, ScalingGroupUsage, check_presets
from . import models as m
from . import sessions as store

__all__ = ["check_presets_for", "lock_admission"]


def lock_admission(db: DB, domain_name: str) -> None:
    """Hold the domain's admission lock until ``db``'s transaction ends (commit or rollback).

    On PostgreSQL (and other servers) a row lock on the domain (``SELECT ... FOR UPDATE``):
    admissions in other domains go on in parallel. SQLite has no row locks: the transaction
    becomes a write transaction at once (``BEGIN IMMEDIATE``), which serializes every
    admission on the database; they are short. Call it before reading what the domain's
    sessions hold; the domain's row is read again under the lock, so its caps are current.
    """
    if db.get_bind().dialect.name == "sqlite":
        connection = db.connection()
        # pysqlite opens a transaction only before a write; reads so far ran outside one.
        if not connection.connection.dbapi_connection.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        db.execute(select(m.Domain).where(m.Domain.name == domain_name).execution_options(populate_existing=True))
        return
    db.execute(
        select(m.Domain).where(m.Domain.name == domain_name).with_for_update().execution_options(populate_existing=True)
    )


def check_presets_for(
    db: DB,
    keypair: m.KeyPair,
    group: m.Group | None,
    scaling_groups: list[str],
    scaling_group: str | None = None,
) -> dict[str, Any]:
    """Backend.AI's check-presets answer for ``keypair`` launching in ``group``.

    ``scaling_groups`` are the resource groups open to the launch; ``scaling_group`` narrows
    the answer to one of them (a :class:`ValueError` when it is not among them). Presets bound
    to a resource group are listed only where that group is in view. A preset is
    ``allocatable`` when it fits the keypair's policy, the group's and the domain's caps
    (minus what their sessions hold or await) and the free amounts of a resource group.
    """
    user = keypair.user
    usage = {
        name: ScalingGroupUsage(
            using=store.reserved(db, access_key=keypair.access_key, scaling_group=name),
            remaining=store.resource_group_state(db, name).free,
        )
        for name in scaling_groups
    }
    visible = {scaling_group} if scaling_group else set(scaling_groups)
    rows = db.scalars(
        select(m.ResourcePreset)
        .where(or_(m.ResourcePreset.scaling_group_name.is_(None), m.ResourcePreset.scaling_group_name.in_(visible)))
        .order_by(m.ResourcePreset.name)
    ).all()
    domain = db.get(m.Domain, user.domain_name)
    return check_presets(
        [Preset(p.name, p.resource_slots, p.shared_memory) for p in rows],
        policy=store.policy_of(keypair.policy),
        keypair_using=store.reserved(db, access_key=keypair.access_key),
        group=Cap("group", group.name, group.total_resource_slots) if group is not None else None,
        group_using=store.reserved(db, group_id=group.id) if group is not None else None,
        domain=Cap("domain", domain.name, domain.total_resource_slots),
        domain_using=store.reserved(db, domain_name=domain.name),
        scaling_groups=usage,
        scaling_group=scaling_group,
    )
