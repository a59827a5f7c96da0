"""Sessions and agents in the database: status changes, what is held, admission inputs.

What an agent, a keypair, a group or a domain holds is always *derived* from the sessions
that hold resources (never kept as a running total), so that a crash or a vanished container
cannot leave occupancy that no session explains (F47's "recalculate usage" is then a no-op
on the database side: it only has to end sessions whose containers are gone).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from ..core.admission import AdmissionRequest, ResourceGroupState
from ..core.gpu import SHARES, WHOLE, GpuDevice
from ..core.policy import Cap, KeypairPolicy
from ..core.scheduling import AgentState
from ..core.slots import ResourceSlots
from . import models as m
from .types import utcnow

HOLDING = tuple(m.ACTIVE_SESSION_STATUSES)
#: Statuses that count against a keypair's, group's and domain's limits: holding or queued.
RESERVING = (*HOLDING, m.SessionStatus.PENDING)


def set_status(
    db: DB, session: m.Session, status: m.SessionStatus, reason: str = "", *, at: dt.datetime | None = None
) -> None:
    """Record a status change with its time and reason (the session's status history)."""
    at = at or utcnow()
    session.status = status
    session.status_info = reason
    session.history.append(m.SessionStatusChange(status=status, reason=reason, at=at))
    if status == m.SessionStatus.SCHEDULED:
        session.scheduled_at = at
    elif status == m.SessionStatus.RUNNING:
        session.started_at = at
        session.last_activity = at
    elif status in m.FINISHED_SESSION_STATUSES:
        session.terminated_at = at


def _sum(rows: Iterable[tuple[ResourceSlots | None, ResourceSlots | None]]) -> ResourceSlots:
    total = ResourceSlots()
    for occupied, requested in rows:
        total = total + (occupied if occupied else requested or ResourceSlots())
    return total


def reserved(db: DB, **where: Any) -> ResourceSlots:
    """What the sessions matching ``where`` (access_key=, group_id=, domain_name=) hold or await."""
    query = select(m.Session.occupied_slots, m.Session.requested_slots).where(m.Session.status.in_(RESERVING))
    for column, value in where.items():
        query = query.where(getattr(m.Session, column) == value)
    return _sum(db.execute(query).all())


def held_by_agents(db: DB, agent_ids: Iterable[str]) -> dict[str, ResourceSlots]:
    out: dict[str, ResourceSlots] = {a: ResourceSlots() for a in agent_ids}
    rows = db.execute(
        select(m.Session.agent_id, m.Session.occupied_slots).where(
            m.Session.status.in_(HOLDING), m.Session.agent_id.in_(list(out))
        )
    )
    for agent_id, occupied in rows:
        out[agent_id] = out[agent_id] + (occupied or ResourceSlots())
    return out


def gpu_used_by_agents(db: DB, agent_ids: Iterable[str]) -> dict[str, dict[str, dict[str, Decimal]]]:
    """Per agent, per device: {"cuda.shares": share used, "cuda.device": 1 when taken whole}."""
    out: dict[str, dict[str, dict[str, Decimal]]] = {a: {} for a in agent_ids}
    rows = db.execute(
        select(m.Session.agent_id, m.Session.gpu_placement).where(
            m.Session.status.in_(HOLDING), m.Session.agent_id.in_(list(out))
        )
    )
    for agent_id, placement in rows:
        for slot, devices in (placement or {}).items():
            for dev, amount in devices.items():
                per = out[agent_id].setdefault(dev, {})
                per[slot] = per.get(slot, Decimal(0)) + Decimal(str(amount))
    return out


def session_counts(db: DB, access_key: str) -> tuple[int, int]:
    """(sessions holding resources, sessions waiting) of a keypair."""
    rows = dict(
        db.execute(
            select(m.Session.status, func.count())
            .where(m.Session.access_key == access_key, m.Session.status.in_(RESERVING))
            .group_by(m.Session.status)
        ).all()
    )
    pending = rows.pop(m.SessionStatus.PENDING, 0)
    return sum(rows.values()), pending


def policy_of(row: m.KeyPairResourcePolicy) -> KeypairPolicy:
    return KeypairPolicy(
        name=row.name,
        total_resource_slots=row.total_resource_slots,
        max_concurrent_sessions=row.max_concurrent_sessions,
        max_containers_per_session=row.max_containers_per_session,
        idle_timeout=row.idle_timeout,
        max_session_lifetime=row.max_session_lifetime,
        max_pending_session_count=row.max_pending_session_count,
        allowed_vfolder_hosts=frozenset(row.allowed_vfolder_hosts or ()),
        max_vfolder_count=row.max_vfolder_count,
        max_vfolder_size=row.max_vfolder_size,
    )


def alive_agents(db: DB, scaling_group: str) -> list[m.Agent]:
    return list(
        db.scalars(
            select(m.Agent)
            .where(m.Agent.scaling_group == scaling_group, m.Agent.status == m.AgentStatus.ALIVE)
            .order_by(m.Agent.id)
        )
    )


def agent_states(db: DB, agents: list[m.Agent]) -> list[AgentState]:
    held = held_by_agents(db, [a.id for a in agents])
    gpus = gpu_used_by_agents(db, [a.id for a in agents])
    states = []
    for a in agents:
        devices = []
        for d in a.devices or []:
            used = gpus[a.id].get(str(d["id"]), {})
            devices.append(
                GpuDevice(
                    id=str(d["id"]),
                    shares_capacity=Decimal(str(d.get("capacity", 1))),
                    shares_used=used.get(SHARES, Decimal(0)),
                    whole_used=bool(used.get(WHOLE)),
                )
            )
        states.append(
            AgentState(
                id=a.id,
                capacity=a.available_slots,
                occupied=held[a.id],
                gpus=tuple(devices),
                schedulable=a.schedulable,
                resource_group=a.scaling_group,
            )
        )
    return states


def resource_group_state(db: DB, scaling_group: str) -> ResourceGroupState:
    agents = [a for a in alive_agents(db, scaling_group) if a.schedulable]
    capacity = ResourceSlots()
    for a in agents:
        capacity = capacity + a.available_slots
    held = held_by_agents(db, [a.id for a in agents])
    used = ResourceSlots()
    for slots in held.values():
        used = used + slots
    return ResourceGroupState(name=scaling_group, free=capacity.minus_clamped(used), capacity=capacity)


def admission_request(
    db: DB,
    keypair: m.KeyPair,
    *,
    requested: ResourceSlots,
    image_min: ResourceSlots,
    group: m.Group | None,
    scaling_group: str,
) -> AdmissionRequest:
    user = keypair.user
    running, pending = session_counts(db, keypair.access_key)
    domain = db.get(m.Domain, user.domain_name)
    return AdmissionRequest(
        policy=policy_of(keypair.policy),
        requested=requested,
        image_min=image_min,
        keypair_using=reserved(db, access_key=keypair.access_key),
        running_sessions=running,
        pending_sessions=pending,
        group=Cap("group", group.name, group.total_resource_slots) if group is not None else None,
        group_using=reserved(db, group_id=group.id) if group is not None else ResourceSlots(),
        domain=Cap("domain", domain.name, domain.total_resource_slots),
        domain_using=reserved(db, domain_name=domain.name),
        resource_group=resource_group_state(db, scaling_group),
    )


def register_agent(
    db: DB,
    agent_id: str,
    *,
    scaling_group: str,
    capacity: ResourceSlots,
    devices: list[dict[str, Any]] | None = None,
    addr: str = "",
    region: str = "local",
    version: str = "",
) -> m.Agent:
    """Create or refresh an agent: its capacity and devices, alive as of now (a heartbeat)."""
    agent = db.get(m.Agent, agent_id)
    now = utcnow()
    if agent is None:
        agent = m.Agent(id=agent_id, first_contact=now, scaling_group=scaling_group)
        db.add(agent)
    if agent.status != m.AgentStatus.ALIVE:
        agent.status = m.AgentStatus.ALIVE
        agent.lost_at = None
    agent.scaling_group = scaling_group
    agent.available_slots = capacity
    agent.devices = devices or []
    agent.addr = addr
    agent.region = region
    agent.version = version
    agent.status_changed = now
    db.flush()
    return agent


def new_session_id() -> uuid.UUID:
    return uuid.uuid4()
