"""Resource groups (scaling groups): their scheduler settings and who may launch into them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from .. import models as m
from .lookups import get_domain, get_group, get_keypair, get_scaling_group
from .validation import DEFAULT, AdminError, Conflict, check_name, check_non_negative, parse_enum

AGENT_SELECTIONS = ("concentrated", "dispersed")


def _scheduler_opts(opts: Mapping[str, Any], *, agent_selection: str | None, fifo_max_skips: int | None) -> dict:
    out = dict(opts)
    if agent_selection is not None:
        if agent_selection not in AGENT_SELECTIONS:
            raise AdminError(
                f"invalid agent selection {agent_selection!r}: choose one of {', '.join(AGENT_SELECTIONS)}"
            )
        out["agent_selection"] = agent_selection
    if fifo_max_skips is not None:
        out["fifo_max_skips"] = check_non_negative("fifo max skips", fifo_max_skips)
    return out


def create_scaling_group(
    db: DB,
    name: str,
    *,
    description: str = "",
    scheduler: str = "fifo",
    pending_timeout: int = 0,
    agent_selection: str | None = None,
    fifo_max_skips: int | None = None,
    driver: str = "docker",
    is_active: bool = True,
) -> m.ScalingGroup:
    check_name("resource group", name)
    if db.get(m.ScalingGroup, name) is not None:
        raise Conflict(f"resource group {name!r} already exists")
    sgroup = m.ScalingGroup(
        name=name,
        description=description,
        scheduler=parse_enum(m.SchedulerName, "scheduler", scheduler),
        pending_timeout=check_non_negative("pending timeout", pending_timeout),
        scheduler_opts=_scheduler_opts(
            {}, agent_selection=agent_selection or "concentrated", fifo_max_skips=fifo_max_skips
        ),
        driver=driver,
        is_active=is_active,
    )
    db.add(sgroup)
    db.flush()
    return sgroup


def update_scaling_group(
    db: DB,
    name: str,
    *,
    description: str | None = None,
    scheduler: str | None = None,
    pending_timeout: int | None = None,
    agent_selection: str | None = None,
    fifo_max_skips: int | None = None,
    is_active: bool | None = None,
) -> m.ScalingGroup:
    sgroup = get_scaling_group(db, name)
    if description is not None:
        sgroup.description = description
    if scheduler is not None:
        sgroup.scheduler = parse_enum(m.SchedulerName, "scheduler", scheduler)
    if pending_timeout is not None:
        sgroup.pending_timeout = check_non_negative("pending timeout", pending_timeout)
    if is_active is not None:
        sgroup.is_active = is_active
    sgroup.scheduler_opts = _scheduler_opts(
        sgroup.scheduler_opts or {}, agent_selection=agent_selection, fifo_max_skips=fifo_max_skips
    )
    db.flush()
    return sgroup


def allow_scaling_group(
    db: DB,
    name: str,
    *,
    domains: Iterable[str] = (),
    groups: Iterable[tuple[str, str]] = (),
    keypairs: Iterable[str] = (),
    revoke: bool = False,
) -> m.ScalingGroup:
    """Give (or with ``revoke`` take back) domains, groups (name, domain) and keypairs access."""
    sgroup = get_scaling_group(db, name)
    targets = [
        (sgroup.domains, [get_domain(db, d) for d in domains]),
        (sgroup.groups, [get_group(db, g, d) for g, d in groups]),
        (sgroup.keypairs, [get_keypair(db, k) for k in keypairs]),
    ]
    for current, rows in targets:
        for row in rows:
            if revoke and row in current:
                current.remove(row)
            elif not revoke and row not in current:
                current.append(row)
    db.flush()
    return sgroup


def delete_scaling_group(db: DB, name: str) -> None:
    """Delete a resource group no agent, session or preset refers to; ``default`` stays.

    Sessions keep the name of the group they ran in, so a group that was used is deactivated
    (``is_active`` false) rather than deleted.
    """
    sgroup = get_scaling_group(db, name)
    if name == DEFAULT:
        raise Conflict(f"the resource group {DEFAULT!r} cannot be deleted; deactivate it instead")
    for model, column, what in (
        (m.Agent, m.Agent.scaling_group, "agent(s)"),
        (m.Session, m.Session.scaling_group, "session(s), past or present,"),
        (m.ResourcePreset, m.ResourcePreset.scaling_group_name, "resource preset(s)"),
    ):
        count = int(db.scalar(select(func.count()).select_from(model).where(column == name)) or 0)
        if count:
            raise Conflict(f"resource group {name!r} has {count} {what} in it; deactivate it instead")
    db.delete(sgroup)
    db.flush()
