"""A session's kept output in the database: appended by the hub, read by the manager.

The hub and the manager share only the database (the manager may run elsewhere, a swarm's or
a cluster's nodes have no common state directory), so the output lives here, as chunks of at
most :data:`CHUNK_BYTES` (small writes are merged into the newest chunk, so that a chatty
session adds a row per 64 KiB, not per line) and a summary row with what is kept and what was
dropped. The bound is ``core.logs.plan_trim``'s; rows go with the session (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session as DB

from ..core.logs import cap, plan_trim, render
from . import models as m
from .types import utcnow

#: The size a chunk grows to before the next one starts.
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class KeptLog:
    text: str
    kept_bytes: int
    dropped_bytes: int
    updated_at: dt.datetime | None


def reset(db: DB, session_id: uuid.UUID) -> None:
    """Forget what was kept: the hub reads the session's whole output again (after its restart)."""
    db.execute(delete(m.SessionLogChunk).where(m.SessionLogChunk.session_id == session_id))
    log = db.get(m.SessionLog, session_id)
    if log is None:
        db.add(m.SessionLog(session_id=session_id, kept_bytes=0, dropped_bytes=0, updated_at=utcnow()))
    else:
        log.kept_bytes = log.dropped_bytes = 0
        log.updated_at = utcnow()


def append(db: DB, session_id: uuid.UUID, data: bytes, keep: int, dropped: int = 0) -> None:
    """Add output (``dropped`` bytes before it were never stored) and trim to ``keep`` bytes."""
    log = db.get(m.SessionLog, session_id)
    if log is None:
        log = m.SessionLog(session_id=session_id, kept_bytes=0, dropped_bytes=0)
        db.add(log)
    data, cut = cap(data, keep)
    log.dropped_bytes += dropped + cut
    log.updated_at = utcnow()
    if data:
        newest = db.scalars(
            select(m.SessionLogChunk)
            .where(m.SessionLogChunk.session_id == session_id)
            .order_by(m.SessionLogChunk.id.desc())
            .limit(1)
        ).first()
        if newest is not None and len(newest.data) + len(data) <= CHUNK_BYTES:
            newest.data = newest.data + data
        else:
            for start in range(0, len(data), CHUNK_BYTES):
                db.add(m.SessionLogChunk(session_id=session_id, data=data[start : start + CHUNK_BYTES]))
        log.kept_bytes += len(data)
    if log.kept_bytes > keep:
        _trim(db, log, keep)


def _trim(db: DB, log: m.SessionLog, keep: int) -> None:
    db.flush()
    c = m.SessionLogChunk
    rows = db.execute(select(c.id, func.length(c.data)).where(c.session_id == log.session_id).order_by(c.id)).all()
    whole, head = plan_trim([size for _, size in rows], keep)
    gone = [row_id for row_id, _ in rows[:whole]]
    if gone:
        db.execute(delete(c).where(c.id.in_(gone)))
    removed = sum(size for _, size in rows[:whole])
    if head:
        chunk = db.get(c, rows[whole][0])
        chunk.data = chunk.data[head:]
        removed += head
    log.kept_bytes -= removed
    log.dropped_bytes += removed


def read(db: DB, session_id: uuid.UUID) -> KeptLog | None:
    """What is kept of a session's output, as text; None when nothing was ever collected."""
    log = db.get(m.SessionLog, session_id)
    if log is None:
        return None
    c = m.SessionLogChunk
    data = b"".join(db.scalars(select(c.data).where(c.session_id == session_id).order_by(c.id)))
    return KeptLog(render(data, log.dropped_bytes), log.kept_bytes, log.dropped_bytes, log.updated_at)
