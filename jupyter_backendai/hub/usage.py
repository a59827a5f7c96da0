"""A running session's usage and idleness: samples every ``usage_interval``, the policy's ends.

Once a session runs, a monitor task samples its usage (the backend's :meth:`sample_usage`: CPU,
memory, I/O, and GPU where nvidia-smi runs) into ``session_usage``, records the server's last
activity, and stops the session when its keypair's policy says so (``core.lifecycle``: the idle
timeout, counted from when the server first answers, or the maximum lifetime, looked at again
right at its end).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

from traitlets import Float
from traitlets.config import LoggingConfigurable

from ..core import lifecycle
from ..core.nvidia import NvidiaSmiError, session_gpu_usage
from ..db import models as m
from ..db import sessions as store
from ..db.types import utcnow


class SessionUsageMixin(LoggingConfigurable):
    """Usage samples and the idle and lifetime ends of every session spawner; a base of
    ``SessionSpawnerMixin``."""

    usage_interval = Float(
        30.0,
        config=True,
        help="Seconds between usage samples of a running session; its idle timeout is checked as often.",
    )

    _monitor_task: asyncio.Task | None = None
    _seen_ready = False
    #: The lifetime's end as read when the session was marked running, for the monitor's first look.
    _lifetime_read: tuple[dt.datetime | None] | None = None
    #: Why the monitor stopped the session (the idle timeout, the lifetime), for stop() to record.
    _end_reason: str | None = None
    #: The session's GPU placement, as _prepare read it (None: read it from the database).
    _gpu_placement: dict | None = None

    def start_monitor(self, lifetime_read: tuple[dt.datetime | None] | None = None) -> None:
        """Start watching the session unless a monitor runs already (``lifetime_read``: its end, read)."""
        if lifetime_read is not None:
            self._lifetime_read = lifetime_read
        if self._monitor_task is None or self._monitor_task.done():
            self._seen_ready = False
            self._monitor_task = asyncio.ensure_future(self._monitor())

    def resume_monitor(self) -> None:
        """Watch a session that survived a hub restart, unless it was watched here already."""
        if self._monitor_task is None:
            self.start_monitor()

    def stop_monitor(self) -> None:
        task, self._monitor_task = self._monitor_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _monitor(self) -> None:
        """Sample usage every ``usage_interval`` s; stop the session once the policy's idle timeout
        or maximum lifetime says so (core.lifecycle), looking again right at the lifetime's end."""
        read, self._lifetime_read = self._lifetime_read, None
        try:
            end = read[0] if read is not None else await self.run_db(session_lifetime_end, self.session_id)
        except Exception:
            self.log.exception("Reading the lifetime of session %s failed", self.session_id)
            end = None  # the first sample reads it again
        while self.session_id:
            # At most a second late at the end; never a busy loop while the server is not ready.
            floor = min(1.0, self.usage_interval)
            await asyncio.sleep(max(floor, lifecycle.next_check_in(utcnow(), end, self.usage_interval)))
            session_id = self.session_id
            if session_id is None:
                return
            if self.pending or not self.ready:
                continue  # idleness counts from when the server answers, not from its start
            try:
                sample = await self.sample_usage()
                activity = getattr(getattr(self, "orm_spawner", None), "last_activity", None)
                if not self._seen_ready:
                    self._seen_ready = True
                    activity = utcnow()
                ending, end = await self.run_db(record_usage, session_id, sample, activity)
            except Exception:
                self.log.exception("Usage sampling of session %s failed", session_id)
                continue
            if ending is not None:
                self.log.info("Session %s ends after %d s (%s)", session_id, ending.seconds, ending.reason)
                self._end_reason = ending.reason
                asyncio.ensure_future(self.user.stop(self.name))
                return

    async def sample_usage(self) -> dict[str, Any]:
        """Backends return cpu_seconds, cpu_percent, mem_bytes, io_read_bytes, io_write_bytes."""
        return {}

    async def session_pids(self) -> list[int]:
        """Host pids of the session's processes (to tell its share of a shared GPU's memory)."""
        return []

    async def sample_gpu(self) -> dict[str, Any]:
        """The GPU fields of a usage sample (``gpu_percent``, ``gpu_mem_bytes``) where nvidia-smi runs."""
        from . import nvidia

        session_id = self.session_id
        if session_id is None:
            return {}
        if self._gpu_placement is None:  # after a hub restart _prepare did not run here
            self._gpu_placement = await self.run_db(lambda db: dict(db.get(m.Session, session_id).gpu_placement or {}))
        placement = self._gpu_placement
        if not any(placement.values()):
            return {}
        try:
            gpus, apps = await asyncio.to_thread(nvidia.snapshot, bool(placement.get("cuda.shares")))
        except NvidiaSmiError as e:
            self.log.warning("GPU usage of session %s: %s", session_id, e)
            return {}
        if gpus is None:
            return {}
        pids = await self.session_pids() if placement.get("cuda.shares") else []
        return session_gpu_usage(placement, gpus, apps, pids)


def session_lifetime_end(db, session_id: uuid.UUID | None) -> dt.datetime | None:
    """When the session's lifetime ends (None: no session, or no maximum lifetime)."""
    session = db.get(m.Session, session_id) if session_id else None
    return store.lifetime_end(db, session) if session is not None else None


def record_usage(
    db, session_id: uuid.UUID, sample: dict[str, Any], activity
) -> tuple[lifecycle.Ending | None, dt.datetime | None]:
    """Store a usage sample; return why the session must end now (or None), and when its lifetime ends."""
    session = db.get(m.Session, session_id)
    if session is None or session.status != m.SessionStatus.RUNNING:
        return None, None
    now = utcnow()
    if sample:
        db.add(m.SessionUsage(session_id=session_id, at=now, **sample))
    if activity is not None:
        if activity.tzinfo is None:
            activity = activity.replace(tzinfo=dt.timezone.utc)
        if session.last_activity is None or activity > session.last_activity:
            session.last_activity = activity
    keypair = db.get(m.KeyPair, session.access_key)
    idle_timeout = keypair.policy.idle_timeout if keypair is not None else 0
    lifetime = keypair.policy.max_session_lifetime if keypair is not None else 0
    ending = lifecycle.check(
        now=now,
        started_at=session.started_at,
        last_activity=session.last_activity,
        idle_timeout=idle_timeout,
        max_session_lifetime=lifetime,
    )
    return ending, lifecycle.ends_at(session.started_at, lifetime)


def usage_sample(spawner, cpu_seconds: float, mem_bytes: int, io_read: int, io_write: int) -> dict[str, Any]:
    """A usage row's fields; CPU % is over the time since the spawner's previous sample."""
    now = time.monotonic()
    last = getattr(spawner, "_last_cpu", None)
    percent = 0.0
    if last is not None and now > last[0]:
        percent = max(0.0, (cpu_seconds - last[1]) / (now - last[0]) * 100)
    spawner._last_cpu = (now, cpu_seconds)
    return {
        "cpu_seconds": cpu_seconds,
        "cpu_percent": round(percent, 2),
        "mem_bytes": mem_bytes,
        "io_read_bytes": io_read,
        "io_write_bytes": io_write,
    }
