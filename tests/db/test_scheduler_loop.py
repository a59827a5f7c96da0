"""The hub's scheduler pass against the database (no hub): placements, timeouts, orphans."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import sessionmaker

from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as store
from jupyter_backendai.db.types import utcnow
from jupyter_backendai.hub.scheduler import SessionScheduler


def queued(db, user, kp, name, cpu, *, at=None):
    s = m.Session(
        name=name, user_id=user.id, access_key=kp.access_key, domain_name="default", scaling_group="default",
        image="i", requested_slots=ResourceSlots(cpu=cpu, mem="1g"), created_at=at or utcnow(),
    )  # fmt: skip
    db.add(s)
    store.set_status(db, s, m.SessionStatus.PENDING, "queued")
    return s


def test_pass_places_times_out_and_cancels_orphans(db):
    user, kp = admin.create_user(db, "q@example.com", "S3cret!pw")
    store.register_agent(db, "a1", scaling_group="default", capacity=ResourceSlots(cpu=2, mem="8g"))
    old = queued(db, user, kp, "from-before-restart", 1, at=utcnow() - dt.timedelta(minutes=5))
    db.commit()
    scheduler = SessionScheduler(sessionmaker(db.get_bind(), expire_on_commit=False))
    scheduler.started_at = utcnow()  # this "hub process" starts now: the older session is an orphan
    first = queued(db, user, kp, "first", 1)
    second = queued(db, user, kp, "second", 1)
    third = queued(db, user, kp, "third", 1)
    db.commit()

    outcomes, positions = scheduler.run_pass()
    db.expire_all()
    assert db.get(m.Session, old.id).status == m.SessionStatus.CANCELLED
    assert db.get(m.Session, old.id).status_info == "the hub restarted while the session waited in the queue"
    assert [db.get(m.Session, s.id).status for s in (first, second, third)] == [
        m.SessionStatus.SCHEDULED,
        m.SessionStatus.SCHEDULED,
        m.SessionStatus.PENDING,
    ]
    assert db.get(m.Session, first.id).agent_id == "a1"
    assert positions[third.id].position == 1 and positions[third.id].length == 1
    assert outcomes[first.id] is None and outcomes[old.id].startswith("the hub restarted")

    # The held slots count: nothing more fits until a session ends.
    scheduler.run_pass()
    db.expire_all()
    assert db.get(m.Session, third.id).status == m.SessionStatus.PENDING
    store.set_status(db, db.get(m.Session, first.id), m.SessionStatus.TERMINATED, "done")
    db.commit()
    scheduler.run_pass()
    db.expire_all()
    assert db.get(m.Session, third.id).status == m.SessionStatus.SCHEDULED

    # A pending timeout cancels what waited too long.
    admin.update_scaling_group(db, "default", pending_timeout=60)
    late = queued(db, user, kp, "late", 4, at=utcnow() - dt.timedelta(minutes=2))
    late.created_at = utcnow() - dt.timedelta(minutes=2)
    db.commit()
    scheduler.started_at = utcnow() - dt.timedelta(hours=1)  # not an orphan: queued by this hub
    outcomes, _ = scheduler.run_pass()
    db.expire_all()
    assert db.get(m.Session, late.id).status == m.SessionStatus.CANCELLED
    assert "pending timeout of 60 s of resource group 'default'" in outcomes[late.id]
