"""Several agents of one backend in the database: a lost one ends the sessions it held."""

from __future__ import annotations

from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as store


def held(db, user, kp, name, agent_id, status):
    s = m.Session(
        name=name, user_id=user.id, access_key=kp.access_key, domain_name="default", scaling_group="default",
        image="i", requested_slots=ResourceSlots(cpu=1, mem="1g"), occupied_slots=ResourceSlots(cpu=1, mem="1g"),
        agent_id=agent_id,
    )  # fmt: skip
    db.add(s)
    store.set_status(db, s, status, "x")
    return s


def test_lost_agents_end_their_sessions_with_agent_lost_and_free_their_slots(db):
    user, kp = admin.create_user(db, "n@example.com", "S3cret!pw")
    for node in ("n1", "n2"):
        store.register_agent(
            db, node, scaling_group="default", capacity=ResourceSlots(cpu=2, mem="4g"), version="swarm"
        )
    on_lost = held(db, user, kp, "a", "n1", m.SessionStatus.RUNNING)
    on_alive = held(db, user, kp, "b", "n2", m.SessionStatus.RUNNING)
    done = held(db, user, kp, "c", "n1", m.SessionStatus.TERMINATED)
    db.flush()
    assert store.resource_group_state(db, "default").free == ResourceSlots(cpu=2, mem="6g")

    assert store.lose_agents(db, ["n1"]) == [on_lost.id]
    assert db.get(m.Agent, "n1").status == m.AgentStatus.LOST and db.get(m.Agent, "n1").lost_at is not None
    assert (on_lost.status, on_lost.status_info) == (m.SessionStatus.ERROR, "agent lost")
    assert on_alive.status == m.SessionStatus.RUNNING and done.status_info == "x"
    assert store.resource_group_state(db, "default").free == ResourceSlots(cpu=1, mem="3g")
    # The node comes back: alive again, its drained state set by the backend, not by default.
    store.register_agent(db, "n1", scaling_group="default", capacity=ResourceSlots(cpu=2, mem="4g"), schedulable=False)
    assert db.get(m.Agent, "n1").status == m.AgentStatus.ALIVE and not db.get(m.Agent, "n1").schedulable
    store.register_agent(db, "n1", scaling_group="default", capacity=ResourceSlots(cpu=2, mem="4g"))
    assert not db.get(m.Agent, "n1").schedulable  # None keeps it (an administrator's choice)
