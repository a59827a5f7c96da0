"""Sessions on the local backend, end to end: a real hub and proxy, real single-user servers.

The Docker-only checks (cgroup limits, uid 1000) are in ``test_sessions_docker.py``; what a
root hub's local sessions may reach (accounts of their own) is in ``test_local_isolation.py``.
"""

from __future__ import annotations

import os
import time

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing.sessions import (
    MIN_LABELS,
    ProductDB,
    add_students,
    contents,
    hub_config,
    progress_until,
    server_model,
    spawn,
    spawn_running,
    stop,
    wait_gone,
    wait_ready,
    wait_status,
)

S = m.SessionStatus


@pytest.fixture
def pdb(tmp_path):
    def setup(db):
        add_students(
            db,
            sessions=2,
            shared_memory=None,
            image="python-local:3",
            labels={**MIN_LABELS, "ai.backend.resource.min.cpu": "1"},
        )
        admin.create_preset(db, "big", {"cpu": 2, "mem": "1g"})

    with ProductDB(tmp_path) as pdb:
        pdb.setup(setup)
        yield pdb


def local_hub(make_hub, pdb, capacity='{"cpu": 2, "mem": "4g"}', extra=""):
    return make_hub(hub_config(pdb, "backendai-local", f"c.LocalSessionSpawner.agent_capacity = {capacity}\n{extra}"))


def test_spawn_with_preset_and_folder_keeps_the_data(make_hub, pdb):
    pdb.user("alice@example.com", policy="student")
    pdb.folder("alice", "data")
    pdb.folder("alice", ".local")
    hub = local_hub(make_hub, pdb)

    session = spawn_running(hub, pdb, "alice", "one", preset="small", folders=["data"])
    assert session.occupied_slots == {"cpu": 1, "mem": 512 * 1024**2}
    assert [h.status for h in session.history] == [S.PENDING, S.SCHEDULED, S.PREPARING, S.RUNNING]
    assert session.agent_id and session.mounts == [
        {"folder": "data", "id": session.mounts[0]["id"], "permission": "wd"}
    ]

    # The chosen folder and the automounted dot-folder are in the session's home.
    listing = contents(hub, "alice", "one", "").json()
    assert "data" in {c["name"] for c in listing["content"]}
    home = pdb.sessions_root / "alice" / str(session.id)
    if os.geteuid() == 0:  # mounts of the session's own namespace, empty directories outside it
        assert (home / ".local").is_dir() and not any((home / "data").iterdir())
    else:
        assert (home / ".local").is_symlink() and (home / "data").is_symlink()
    put = contents(
        hub, "alice", "one", "data/hello.txt", "PUT", json={"type": "file", "format": "text", "content": "hi"}
    )
    assert put.status_code in (200, 201), put.text
    assert contents(hub, "alice", "one", "id_container").status_code == 200  # F22

    assert stop(hub, "alice", "one").status_code in (202, 204)
    wait_gone(hub, "alice", "one")
    ended = wait_status(pdb, "alice", "one", S.TERMINATED)
    assert ended.history[-1].reason == "terminated by the user" and ended.terminated_at is not None
    # The file outlives the session, in the folder's storage.
    stored = list(pdb.storage_root.rglob("hello.txt"))
    assert len(stored) == 1 and stored[0].read_text() == "hi"


def test_refusals_and_raise_to_minimum(make_hub, pdb):
    pdb.user("bob@example.com", policy="student")
    hub = local_hub(make_hub, pdb)

    over = spawn(hub, "bob", "toobig", cpu="4", mem="1g")
    assert over.status_code == 403, over.text
    assert "cpu 4 exceeds the keypair policy 'student' limit of 2 (0 in use)" in over.json()["message"]
    assert spawn(hub, "bob", "nofolder", preset="small", folders=["nope"]).status_code == 404
    bad = spawn(hub, "bob", "badimage", preset="small", image="nope:1")
    assert bad.status_code == 400 and "unknown image 'nope:1'" in bad.json()["message"]
    bad = spawn(hub, "bob", "badslot", cpu="-1", mem="1g")
    assert bad.status_code == 400 and "cpu: '-1' is negative" in bad.json()["message"]
    bad = spawn(hub, "bob", "badgroup", preset="small", scaling_group="gpu")
    assert bad.status_code == 400 and "you may not use the resource group 'gpu'" in bad.json()["message"]

    # Below the image minimum (cpu 1, mem 256m): raised to it.
    tiny = spawn_running(hub, pdb, "bob", "tiny", cpu="0.5", mem="128m")
    assert tiny.occupied_slots == {"cpu": 1, "mem": 256 * 1024**2}
    assert "raised to the image's minimum" in tiny.history[0].reason

    # Concurrent sessions are capped by the policy (2): a third is refused while two hold.
    assert spawn(hub, "bob", "second", preset="small").status_code in (201, 202)
    wait_ready(hub, "bob", "second")
    third = spawn(hub, "bob", "third", preset="small")
    assert third.status_code == 403 and "max concurrent sessions 2 reached" in third.json()["message"]
    for name in ("tiny", "second"):
        stop(hub, "bob", name)


def test_fifo_queue_cancel_and_pending_timeout(make_hub, pdb):
    for who in ("u1", "u2", "u3"):
        pdb.user(f"{who}@example.com")
    hub = local_hub(make_hub, pdb, capacity='{"cpu": 1, "mem": "4g"}')

    assert spawn(hub, "u1", "a", preset="small").status_code in (201, 202)
    wait_ready(hub, "u1", "a")
    assert spawn(hub, "u2", "b", preset="small").status_code == 202
    time.sleep(1)
    assert spawn(hub, "u3", "c", preset="small").status_code == 202
    assert wait_status(pdb, "u2", "b", S.PENDING) and wait_status(pdb, "u3", "c", S.PENDING)
    seen = progress_until(hub, "u3", "c", b"position")
    assert b"Waiting for resources in default: position 2 of 2" in seen, seen

    # u3 gives up; u1 ends; u2 (first in line) gets the place.
    stop(hub, "u3", "c")
    cancelled = wait_status(pdb, "u3", "c", S.CANCELLED)
    assert cancelled.history[-1].reason == "the spawn was cancelled while it waited in the queue"
    stop(hub, "u1", "a")
    wait_ready(hub, "u2", "b")
    assert wait_status(pdb, "u2", "b", S.RUNNING)

    # With the agent full again, a newcomer times out after the pending timeout.
    pdb.setup(lambda db: admin.update_scaling_group(db, "default", pending_timeout=8))
    pdb.user("u4@example.com")
    assert spawn(hub, "u4", "d", preset="small").status_code == 202
    timed_out = wait_status(pdb, "u4", "d", S.CANCELLED, timeout=30)
    assert "pending timeout of 8 s of resource group 'default'" in timed_out.history[-1].reason
    deadline = time.monotonic() + 20
    while server_model(hub, "u4", "d") and time.monotonic() < deadline:
        time.sleep(0.5)
    stop(hub, "u2", "b")


def test_process_killed_from_outside_ends_the_session(make_hub, pdb):
    import os
    import signal

    pdb.user("kim@example.com")
    hub = local_hub(make_hub, pdb, extra="c.JupyterHub.last_activity_interval = 2\nc.Spawner.poll_interval = 1")
    spawn(hub, "kim", "k", preset="small")
    wait_ready(hub, "kim", "k")
    session = wait_status(pdb, "kim", "k", S.RUNNING)
    os.kill(int(session.container_id), signal.SIGKILL)
    ended = wait_status(pdb, "kim", "k", S.TERMINATED, timeout=30)
    assert "backend ended it" in ended.history[-1].reason


def test_lifo_serves_the_newest_first(make_hub, pdb):
    for who in ("l1", "l2", "l3"):
        pdb.user(f"{who}@example.com")
    pdb.setup(lambda db: admin.update_scaling_group(db, "default", scheduler="lifo"))
    hub = local_hub(make_hub, pdb, capacity='{"cpu": 1, "mem": "4g"}')
    spawn(hub, "l1", "a", preset="small")
    wait_ready(hub, "l1", "a")
    assert spawn(hub, "l2", "b", preset="small").status_code == 202
    time.sleep(0.5)
    assert spawn(hub, "l3", "c", preset="small").status_code == 202
    stop(hub, "l1", "a")
    wait_ready(hub, "l3", "c")  # the newest request gets the place
    assert wait_status(pdb, "l2", "b", S.PENDING)
    stop(hub, "l3", "c")
    wait_ready(hub, "l2", "b")
    stop(hub, "l2", "b")


def test_drf_serves_the_lowest_dominant_share_first(make_hub, pdb):
    pdb.user("heavy@example.com")
    pdb.user("light@example.com")
    pdb.setup(lambda db: admin.update_scaling_group(db, "default", scheduler="drf"))
    hub = local_hub(make_hub, pdb, capacity='{"cpu": 2, "mem": "4g"}')
    for name in ("h1", "h2"):
        spawn(hub, "heavy", name, preset="small")
        wait_ready(hub, "heavy", name)
    # The group is full. heavy asks first, light second; when a place frees up, light (share 0)
    # goes before heavy (who still holds half the CPUs), although heavy asked first.
    assert spawn(hub, "heavy", "h3", preset="small").status_code == 202
    time.sleep(0.5)
    assert spawn(hub, "light", "l1", preset="small").status_code == 202
    stop(hub, "heavy", "h1")
    wait_ready(hub, "light", "l1")
    assert wait_status(pdb, "heavy", "h3", S.PENDING)
    for user, name in (("heavy", "h2"), ("light", "l1")):
        stop(hub, user, name)
    wait_ready(hub, "heavy", "h3")
    stop(hub, "heavy", "h3")


def test_restart_keeps_running_sessions_and_cancels_waiting_ones(make_hub, pdb):
    pdb.user("rita@example.com")
    pdb.user("ron@example.com")
    hub = local_hub(make_hub, pdb, capacity='{"cpu": 1, "mem": "4g"}', extra="c.JupyterHub.cleanup_servers = False")
    spawn(hub, "rita", "r", preset="small")
    wait_ready(hub, "rita", "r")
    assert spawn(hub, "ron", "w", preset="small").status_code == 202
    assert wait_status(pdb, "ron", "w", S.PENDING)
    hub.restart()
    assert contents(hub, "rita", "r", "").status_code == 200
    assert wait_status(pdb, "rita", "r", S.RUNNING)
    # Stopping the hub cancels the waiting spawn (a hub killed outright leaves it PENDING, and
    # the restarted hub's queue cancels it: "the hub restarted while the session waited").
    waited = wait_status(pdb, "ron", "w", S.CANCELLED, timeout=30)
    assert waited.history[-1].reason in (
        "the spawn was cancelled while it waited in the queue",
        "the hub restarted while the session waited in the queue",
    )
    stop(hub, "rita", "r")
    assert wait_status(pdb, "rita", "r", S.TERMINATED)


def test_idle_session_ends_on_local(make_hub, pdb):
    pdb.setup(lambda db: admin.create_policy(db, "sleepy", total_resource_slots={"cpu": 2}, idle_timeout=4))
    pdb.user("ivy@example.com", policy="sleepy")
    hub = local_hub(make_hub, pdb, extra="c.LocalSessionSpawner.usage_interval = 2")
    spawn(hub, "ivy", "i", preset="small")
    ended = wait_status(pdb, "ivy", "i", S.TERMINATED, timeout=120)
    assert ended.history[-1].reason == "idle-timeout"
    assert S.RUNNING in [h.status for h in ended.history]


def test_group_domain_and_capacity_refusals(make_hub, pdb):
    def setup(db):
        admin.create_domain(db, "lab", total_resource_slots={"cpu": 3})
        admin.create_group(db, "capped", domain="lab", total_resource_slots={"cpu": 1})
        admin.create_group(db, "open", domain="lab")
        admin.allow_scaling_group(db, "default", domains=["lab"])
        admin.create_user(db, "gus@example.com", "S3cret!pw", domain="lab", groups=["capped", "open"])

    pdb.setup(setup)
    hub = local_hub(make_hub, pdb, capacity='{"cpu": 8, "mem": "16g"}')
    group = spawn(hub, "gus", "g1", group="capped", cpu="2", mem="512m")
    assert group.status_code == 403 and "cpu 2 exceeds the group 'capped' limit of 1" in group.json()["message"]
    domain = spawn(hub, "gus", "g2", group="open", cpu="4", mem="512m")
    assert domain.status_code == 403 and "cpu 4 exceeds the domain 'lab' limit of 3" in domain.json()["message"]
    capacity = spawn(hub, "gus", "g3", group="open", cpu="1", mem="64g")
    assert capacity.status_code == 403 and "the resource group 'default' capacity" in capacity.json()["message"]
    assert spawn(hub, "gus", "g4", group="nope", preset="small").status_code == 400
