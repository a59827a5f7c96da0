"""The scheduler loop: one asyncio task in the hub process places PENDING sessions on agents.

Spawners write their session PENDING and wait here. Each pass, per active resource group,
reads the pending sessions and the agents from the database, asks ``core.scheduling`` for the
decisions (FIFO, LIFO or DRF, concentrated or dispersed, GPU devices), writes the placements
(SCHEDULED, agent, slots, GPU devices), cancels sessions that waited past the group's pending
timeout, and then wakes the spawners waiting for those sessions. A pass runs when a session
is queued or ends (``wake()``), and every ``interval`` seconds anyway.

The database work of a pass runs on a thread of its own, so the hub's event loop stays free and
the pass does not queue behind the sessions' own database work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from ..core.images import normalize_reference
from ..core.scheduling import DEFAULT_MAX_SKIPS, PendingSession, schedule
from ..core.slots import ResourceSlots
from ..db import images as image_db
from ..db import models as m
from ..db import sessions as store
from ..db.types import utcnow
from .passes import PassLoop

log = logging.getLogger("jupyter_backendai.scheduler")

#: Sessions queued before this process started were queued by an earlier hub: nobody waits for them.
PROCESS_STARTED = utcnow()


class Cancelled(Exception):
    """The session left the queue without a place (timeout, cancelled, refused); ``str`` is why."""


@dataclass(frozen=True)
class QueuePosition:
    resource_group: str
    position: int  # 1-based
    length: int
    reason: str = ""


class SessionScheduler(PassLoop):
    """Places queued sessions; one per hub process and database."""

    _instances: dict[str, SessionScheduler] = {}

    def __init__(self, factory: sessionmaker, *, interval: float = 2.0):
        super().__init__()
        self.factory = factory
        self.started_at = PROCESS_STARTED
        self.interval = interval
        self._waiters: dict[uuid.UUID, asyncio.Future] = {}
        self._positions: dict[uuid.UUID, QueuePosition] = {}
        self.passes = 0
        #: Place sessions only on agents that have their image (the backend does not pull at spawn).
        self.require_images = False
        # A thread of its own: on the shared worker threads a pass waited behind the database work
        # of every session already placed (a thousand starting at once), and the queue stood still.
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="scheduler")

    @classmethod
    def for_database(cls, key: str, factory: sessionmaker, *, interval: float = 2.0) -> SessionScheduler:
        scheduler = cls._instances.get(key)
        if scheduler is None:
            scheduler = cls._instances[key] = cls(factory, interval=interval)
        return scheduler

    # --- the loop -------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            await self._next_pass(self.interval)
            try:
                outcomes, positions = await asyncio.get_running_loop().run_in_executor(self._thread, self.run_pass)
            except Exception:  # a broken pass must not stop the queue for good
                log.exception("Scheduling pass failed; retrying in %s s", self.interval)
                continue
            self._positions = positions
            for session_id, outcome in outcomes.items():
                waiter = self._waiters.get(session_id)
                if waiter is not None and not waiter.done():
                    if outcome is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(Cancelled(outcome))

    async def wait(self, session_id: uuid.UUID) -> None:
        """Return once the session is placed (SCHEDULED); raise :class:`Cancelled` otherwise."""
        self.ensure_running()
        future = self._waiters.get(session_id)
        if future is None:
            future = self._waiters[session_id] = asyncio.get_running_loop().create_future()
        self.wake()
        try:
            await future
        finally:
            self._waiters.pop(session_id, None)

    def position(self, session_id: uuid.UUID) -> QueuePosition | None:
        return self._positions.get(session_id)

    # --- one pass (on a worker thread) ------------------------------------------------------

    def run_pass(self) -> tuple[dict[uuid.UUID, str | None], dict[uuid.UUID, QueuePosition]]:
        """Place what fits; returns {session: None (placed) | why it ended} and the queue positions."""
        outcomes: dict[uuid.UUID, str | None] = {}
        positions: dict[uuid.UUID, QueuePosition] = {}
        with self.factory() as db:
            # Sessions already decided (placed or ended) whose spawner waits: tell it. One
            # query for them all: a thousand may wait.
            waiting = list(self._waiters)
            found = set()
            for i in range(0, len(waiting), 500):
                rows = db.execute(
                    select(m.Session.id, m.Session.status, m.Session.status_info).where(
                        m.Session.id.in_(waiting[i : i + 500])
                    )
                )
                for session_id, status, info in rows:
                    found.add(session_id)
                    if status != m.SessionStatus.PENDING:
                        outcomes[session_id] = None if status in m.ACTIVE_SESSION_STATUSES else info or status.value
            for session_id in waiting:
                if session_id not in found:
                    outcomes[session_id] = "the session no longer exists"
            groups = db.scalars(select(m.ScalingGroup).where(m.ScalingGroup.is_active.is_(True))).all()
            for group in groups:
                self._pass_group(db, group, outcomes, positions)
            db.commit()
        self.passes += 1
        return outcomes, positions

    def _pass_group(self, db, group: m.ScalingGroup, outcomes, positions) -> None:
        pending_rows = list(
            db.scalars(
                select(m.Session)
                .where(m.Session.scaling_group == group.name, m.Session.status == m.SessionStatus.PENDING)
                .order_by(m.Session.created_at, m.Session.id)
            )
        )
        if not pending_rows:
            return
        now = utcnow()
        orphans = [r for r in pending_rows if r.created_at < self.started_at and r.id not in self._waiters]
        for row in orphans:
            reason = "the hub restarted while the session waited in the queue"
            store.set_status(db, row, m.SessionStatus.CANCELLED, reason, at=now)
            outcomes[row.id] = reason
        pending_rows = [r for r in pending_rows if r not in orphans]
        if group.pending_timeout:
            limit = dt.timedelta(seconds=group.pending_timeout)
            still = []
            for row in pending_rows:
                if now - row.created_at > limit:
                    reason = (
                        f"waited longer than the pending timeout of {group.pending_timeout} s "
                        f"of resource group '{group.name}'"
                    )
                    store.set_status(db, row, m.SessionStatus.CANCELLED, reason, at=now)
                    outcomes[row.id] = reason
                else:
                    still.append(row)
            pending_rows = still
        if not pending_rows:
            return
        agents = store.agent_states(db, store.alive_agents(db, group.name))
        if self.require_images:
            have = image_db.installed_on(db, [a.id for a in agents])
            agents = [dataclasses.replace(a, images=have[a.id]) for a in agents]
        by_id = {row.id: row for row in pending_rows}
        pending = [
            PendingSession(
                id=row.id,
                access_key=row.access_key,
                requested=row.requested_slots,
                created=i,
                resource_group=group.name,
                passed_over=row.passed_over,
                image=normalize_reference(row.image) if self.require_images else None,
            )
            for i, row in enumerate(pending_rows)
        ]
        opts = group.scheduler_opts or {}
        usage: dict[str, ResourceSlots] = {}
        if group.scheduler == m.SchedulerName.DRF:
            held = db.execute(
                select(m.Session.access_key, m.Session.occupied_slots).where(
                    m.Session.scaling_group == group.name, m.Session.status.in_(store.HOLDING)
                )
            )
            for access_key, occupied in held:
                usage[access_key] = usage.get(access_key, ResourceSlots()) + (occupied or ResourceSlots())
        result = schedule(
            pending,
            agents,
            scheduler=group.scheduler.value,
            selection=opts.get("agent_selection", "concentrated"),
            user_usage=usage,
            max_skips=opts.get("fifo_max_skips", DEFAULT_MAX_SKIPS),
            quantum=Decimal(str(opts.get("gpu_quantum", "0.01"))),
        )
        for placement in result.placements:
            row = by_id[placement.session_id]
            row.agent_id = placement.agent_id
            row.occupied_slots = placement.slots
            row.gpu_placement = {
                slot: {dev: str(amount) for dev, amount in devices.items()}
                for slot, devices in placement.gpus.items()
                if devices
            }
            store.set_status(db, row, m.SessionStatus.SCHEDULED, f"placed on agent {placement.agent_id}", at=now)
            outcomes[row.id] = None
        waiting = [p for p in result.pending]
        for k, left in enumerate(waiting, start=1):
            row = by_id[left.session_id]
            row.passed_over = left.passed_over
            positions[row.id] = QueuePosition(group.name, k, len(waiting), left.reason)
