"""Sessions and agents in the database: status changes, what is held, admission inputs.

What an agent, a keypair, a group or a domain holds is always *derived* from the sessions
that hold resources (never kept as a running total), so that a crash or a vanished container
cannot leave occupancy that no session explains (F47's "recalculate usage" is then a no-op
on the database side: it only has to end sessions whose containers are gone).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Row, Text, and_, cast, func, inspect, or_, select, type_coerce
from sqlalchemy.orm import Session as DB

from ..core import lifecycle
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
    change = m.SessionStatusChange(status=status, reason=reason, at=at)
    state = inspect(session)
    if state.persistent and "history" in state.unloaded:
        # Not loaded: appending would read every earlier change first (one query per session
        # when the scheduler places a thousand); it shows when the history is read.
        change.session_id = session.id
        db.add(change)
    else:
        session.history.append(change)
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


def _slots_text(column) -> Any:
    # As stored: rows with the same amounts group in SQL (a thousand sessions of one preset are
    # one row to parse, not a thousand).
    return cast(column, Text)


def _parsed(text: str | None) -> ResourceSlots:
    value = json.loads(text) if text else None
    return ResourceSlots.parse(value) if value else ResourceSlots()


def reserved(db: DB, **where: Any) -> ResourceSlots:
    """What the sessions matching ``where`` (access_key=, group_id=, domain_name=) hold or await."""
    occupied, requested = _slots_text(m.Session.occupied_slots), _slots_text(m.Session.requested_slots)
    query = (
        select(occupied, requested, func.count()).where(m.Session.status.in_(RESERVING)).group_by(occupied, requested)
    )
    for column, value in where.items():
        query = query.where(getattr(m.Session, column) == value)
    total = ResourceSlots()
    for occupied_text, requested_text, count in db.execute(query):
        slots = _parsed(occupied_text) or _parsed(requested_text)
        total = total + (slots.scale(count) if count > 1 else slots)
    return total


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


def lifetime_end(db: DB, session: m.Session) -> dt.datetime | None:
    """When the hub ends this session for its policy's maximum lifetime (core.lifecycle); None
    when it has no end or does not run."""
    if session.status not in HOLDING:
        return None
    keypair = db.get(m.KeyPair, session.access_key)
    return lifecycle.ends_at(session.started_at, keypair.policy.max_session_lifetime if keypair else 0)


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
    """The capacity of the group's alive, schedulable agents and what is free of it.

    Summed from rows grouped by their amounts: a thousand agents of one shape (or sessions of
    one preset) are one row to read, for every admission.
    """
    agents = and_(
        m.Agent.scaling_group == scaling_group,
        m.Agent.status == m.AgentStatus.ALIVE,
        m.Agent.schedulable.is_(True),
    )
    available = _slots_text(m.Agent.available_slots)
    capacity = ResourceSlots()
    for text, count in db.execute(select(available, func.count()).where(agents).group_by(available)):
        capacity = capacity + _parsed(text).scale(count)
    occupied = _slots_text(m.Session.occupied_slots)
    on_agents = select(m.Agent.id).where(agents)
    used = ResourceSlots()
    rows = db.execute(
        select(occupied, func.count())
        .where(m.Session.status.in_(HOLDING), m.Session.agent_id.in_(on_agents))
        .group_by(occupied)
    )
    for text, count in rows:
        used = used + _parsed(text).scale(count)
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
    schedulable: bool | None = None,
    status_info: str | None = None,
) -> m.Agent:
    """Create or refresh an agent: its capacity and devices, alive as of now (a heartbeat).

    ``schedulable`` ``None`` keeps what the agent has (an administrator's choice); a backend
    that knows better (a drained swarm node) passes it, and ``status_info`` says why.
    """
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
    if schedulable is not None:
        agent.schedulable = schedulable
    agent.status_info = status_info
    agent.status_changed = now
    db.flush()
    return agent


#: Why a session ends when its agent is lost (Backend.AI's reason).
AGENT_LOST = "agent lost"


def lose_agents(db: DB, agent_ids: Iterable[str], reasons: dict[str, str] | None = None) -> list[uuid.UUID]:
    """Mark agents LOST and end the sessions they held ERROR ``agent lost``; returns those sessions.

    The slots are freed with the sessions (occupancy is derived from holding sessions).
    Sessions still queued are left alone: they were not on any agent. ``reasons`` says why an
    agent is lost (its ``status_info``).
    """
    ids = list(agent_ids)
    if not ids:
        return []
    now = utcnow()
    for agent in db.scalars(select(m.Agent).where(m.Agent.id.in_(ids))):
        if agent.status == m.AgentStatus.ALIVE:
            agent.status = m.AgentStatus.LOST
            agent.lost_at = agent.status_changed = now
        if reasons and agent.id in reasons:
            agent.status_info = reasons[agent.id]
    ended = []
    for session in db.scalars(select(m.Session).where(m.Session.agent_id.in_(ids), m.Session.status.in_(HOLDING))):
        set_status(db, session, m.SessionStatus.ERROR, AGENT_LOST, at=now)
        ended.append(session.id)
    db.flush()
    return ended


def new_session_id() -> uuid.UUID:
    return uuid.uuid4()


# --- listing ----------------------------------------------------------------------------------


class CursorError(ValueError):
    """A ``cursor`` that this module did not hand out (or that was altered)."""


def encode_cursor(created_at: dt.datetime, session_id: uuid.UUID) -> str:
    """An opaque position in the newest-first order: just after the session (created_at, id)."""
    raw = json.dumps([created_at.isoformat(), session_id.hex], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, sid = json.loads(raw)
        created_at = dt.datetime.fromisoformat(at)
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=dt.timezone.utc)
        return created_at, uuid.UUID(hex=sid)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise CursorError(
            f"{cursor[:80]!r} is not a cursor of this listing; use next_cursor of a previous page"
        ) from None


@dataclass(frozen=True)
class SessionPage:
    """One page of a session listing: rows (columns of the session and its user), newest first."""

    rows: list[Row]
    usage: dict[uuid.UUID, Row]
    total: int | None
    next_cursor: str | None


#: What a listing reads of each session: no ORM objects (a page of them costs more to build than
#: the queries), and the slots as their stored JSON, which already is Backend.AI's string form.
_S = m.Session
_LIST_COLUMNS = (
    _S.id, _S.name, _S.server_name, _S.session_type, _S.image, _S.status, _S.status_info, _S.scaling_group,
    _S.domain_name, _S.group_id, _S.agent_id, _S.access_key, _S.created_at, _S.started_at, _S.terminated_at,
    type_coerce(_S.occupied_slots, JSON).label("occupied_slots"),
    type_coerce(_S.requested_slots, JSON).label("requested_slots"),
    m.User.email.label("user_email"), m.User.username.label("username"),
)  # fmt: skip
_U = m.SessionUsage
_USAGE_COLUMNS = (
    _U.session_id, _U.at, _U.cpu_percent, _U.cpu_seconds, _U.mem_bytes, _U.io_read_bytes, _U.io_write_bytes,
    _U.gpu_percent, _U.gpu_mem_bytes,
)  # fmt: skip


def list_sessions(
    db: DB,
    *,
    statuses: Sequence[m.SessionStatus] | None,
    user_id: uuid.UUID | None = None,
    domain_name: str | None = None,
    limit: int = 20,
    offset: int = 0,
    cursor: str | None = None,
    count: bool = True,
) -> SessionPage:
    """A page of sessions, newest first (created_at, then id): by ``offset`` or after ``cursor``.

    Three queries whatever the page: the count (when asked), the page, the latest usage sample
    of its sessions. The page's ids are found on the index that holds the filter and the
    order (``ix_sessions_*_list``), so an offset skips index entries, not rows; only the
    page's rows are read. A cursor (``next_cursor`` of the previous page) costs the same on
    page 1 and page 10,000 and does not skip or repeat rows when sessions are added meanwhile.
    """
    where: list[Any] = []
    if statuses is not None:
        where.append(_S.status.in_(list(statuses)))
    if user_id is not None:
        where.append(_S.user_id == user_id)
    if domain_name is not None:
        where.append(_S.domain_name == domain_name)
    total = db.scalar(select(func.count()).select_from(_S).where(*where)) if count else None
    page_where = list(where)
    if cursor is not None:
        at, sid = decode_cursor(cursor)
        # The first term bounds the index range; the second breaks ties of one created_at by id.
        page_where += [_S.created_at <= at, or_(_S.created_at < at, and_(_S.created_at == at, _S.id < sid))]
        offset = 0
    order = (_S.created_at.desc(), _S.id.desc())
    page = select(_S.id).where(*page_where).order_by(*order).offset(offset).limit(limit + 1).subquery()
    rows = db.execute(
        select(*_LIST_COLUMNS).join(page, page.c.id == _S.id).join(m.User, m.User.id == _S.user_id).order_by(*order)
    ).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return SessionPage(rows, latest_usage(db, [r.id for r in rows]), total, next_cursor)


def latest_usage(db: DB, session_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Row]:
    """The newest usage sample of each session (one query)."""
    if not session_ids:
        return {}
    latest = select(func.max(_U.id)).where(_U.session_id.in_(list(session_ids))).group_by(_U.session_id)
    return {row.session_id: row for row in db.execute(select(*_USAGE_COLUMNS).where(_U.id.in_(latest)))}
