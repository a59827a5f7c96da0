"""Sessions on a real Docker Swarm of three engines (testing/swarm.py), through a real hub.

The hub's engine socket talks to the manager (node 1); every node is an agent, our scheduler
picks one, the session's service is pinned there. The hub listens on the nodes' bridge so
that sessions on the nodes reach its API, as a multi-node site sets ``hub_connect_ip``.
"""

from __future__ import annotations

import time

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing import wait_for
from testing.sessions import (
    ProductDB,
    add_students,
    agents,
    contents,
    hub_config,
    progress_until,
    spawn,
    stop,
    wait_agents,
    wait_gone,
    wait_ready,
    wait_status,
)
from testing.swarm import IMAGE, container_on, node_of, swarm_hub, task_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]

S = m.SessionStatus
LABEL = "ai.backend.resource-group"


@pytest.fixture
def pdb(tmp_path):
    def setup(db):
        add_students(db, slots={"cpu": 4, "mem": "4g"}, image=IMAGE)
        admin.create_scaling_group(db, "gpu")
        admin.allow_scaling_group(db, "gpu", domains=["default"])

    with ProductDB(tmp_path) as pdb:
        pdb.setup(setup)
        yield pdb


def test_nodes_are_agents_and_a_session_runs_pinned_to_the_chosen_node(make_hub, pdb, swarm, tmp_path):
    pdb.user("alice@example.com", policy="student")
    pdb.folder("alice", "data")
    hub = swarm_hub(make_hub, pdb, swarm)
    r = spawn(hub, "alice", "one", preset="small", folders=["data"])
    assert r.status_code in (201, 202), r.text
    # Every node is an agent: alive, in default, at its address.
    found = wait_agents(pdb, lambda a: len(a) == 3)
    assert {a.addr for a in found.values()} == {n.ip for n in swarm.nodes}
    assert all(a.status == m.AgentStatus.ALIVE and a.scaling_group == "default" for a in found.values())
    wait_ready(hub, "alice", "one", timeout=120)
    session = wait_status(pdb, "alice", "one", S.RUNNING)
    assert session.agent_id in found
    assert task_node(swarm, session.id) == session.agent_id  # the swarm obeyed our scheduler
    node = node_of(swarm, session.agent_id)
    cid = container_on(node, session.id)
    for other in swarm.nodes:
        if other is not node:
            assert other.docker("ps", "-q").stdout.strip() == ""
    out = node.docker(
        "exec", cid, "sh", "-c",
        "id -u; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; "
        "cat /sys/fs/cgroup/pids/pids.max; df -B1 /dev/shm | tail -1 | awk '{print $2}'; "
        "grep '^CapEff:' /proc/self/status | awk '{print $2}'; "
        "echo written > /home/work/data/from-swarm.txt && echo wrote",
    ).stdout.split()  # fmt: skip
    assert out[0] == "1000", out
    assert out[1] == str(512 * 1024**2), out
    assert int(out[2]) / int(out[3]) == 1.0, out
    assert out[4] == "4096", out
    assert out[5] == str(64 * 1024**2), out
    assert out[6] == "0000000000000000", out
    assert out[7] == "wrote", out
    (stored,) = list(pdb.storage_root.rglob("from-swarm.txt"))  # on the shared storage
    assert stored.read_text() == "written\n"
    # The hub and the proxy reach the server at the node's address.
    assert contents(hub, "alice", "one", "data").status_code == 200

    stop(hub, "alice", "one")
    wait_gone(hub, "alice", "one")
    assert wait_status(pdb, "alice", "one", S.TERMINATED)
    assert swarm.manager.docker("service", "ls", "-q").stdout.strip() == ""


def test_a_node_label_moves_a_node_into_another_resource_group(make_hub, pdb, swarm):
    pdb.user("bob@example.com", policy="student")
    gpu_node = swarm.nodes[2]
    swarm.label(gpu_node, LABEL, "gpu")
    try:
        hub = swarm_hub(make_hub, pdb, swarm)
        assert spawn(hub, "bob", "g", preset="small", scaling_group="gpu").status_code in (201, 202)
        found = wait_agents(pdb, lambda a: len(a) == 3)
        assert found[gpu_node.node_id].scaling_group == "gpu"
        assert {a.scaling_group for i, a in found.items() if i != gpu_node.node_id} == {"default"}
        assert spawn(hub, "bob", "d", preset="small").status_code in (201, 202)
        wait_ready(hub, "bob", "g", timeout=120)
        wait_ready(hub, "bob", "d", timeout=120)
        g = wait_status(pdb, "bob", "g", S.RUNNING)
        d = wait_status(pdb, "bob", "d", S.RUNNING)
        assert g.agent_id == gpu_node.node_id and task_node(swarm, g.id) == gpu_node.node_id
        assert d.agent_id != gpu_node.node_id and task_node(swarm, d.id) == d.agent_id

        # Removing the label brings the node back into default within a heartbeat.
        swarm.label(gpu_node, LABEL, None)
        wait_agents(pdb, lambda a: a[gpu_node.node_id].scaling_group == "default", timeout=15)
        for name in ("g", "d"):
            stop(hub, "bob", name)
            wait_gone(hub, "bob", name)
    finally:
        swarm.label(gpu_node, LABEL, None)


def test_full_nodes_queue_and_a_hub_restart_keeps_the_sessions_on_every_node(make_hub, pdb, swarm):
    pdb.user("dave@example.com", policy="student")
    pdb.user("erin@example.com", policy="student")
    # One small session fills a node.
    hub = swarm_hub(
        make_hub, pdb, swarm,
        extra='c.SwarmSessionSpawner.agent_capacity = {"cpu": 1, "mem": "2g"}\nc.JupyterHub.cleanup_servers = False',
    )  # fmt: skip
    for name in ("s1", "s2", "s3"):
        assert spawn(hub, "dave", name, preset="small").status_code in (201, 202)
    for name in ("s1", "s2", "s3"):
        wait_ready(hub, "dave", name, timeout=120)
    rows = {name: wait_status(pdb, "dave", name, S.RUNNING) for name in ("s1", "s2", "s3")}
    assert {r.agent_id for r in rows.values()} == set(swarm.node_ids().values())  # one per node
    for r in rows.values():
        assert task_node(swarm, r.id) == r.agent_id

    hub.restart()
    for name in ("s1", "s2", "s3"):
        assert contents(hub, "dave", name, "").status_code == 200, name
        assert wait_status(pdb, "dave", name, S.RUNNING)

    # Every node is full: the next session waits with its place in the queue ...
    assert spawn(hub, "erin", "e", preset="small").status_code == 202
    assert wait_status(pdb, "erin", "e", S.PENDING)
    seen = progress_until(hub, "erin", "e", b"position")
    assert b"Waiting for resources in default: position 1 of 1" in seen, seen
    # ... and starts on the node that a session leaves.
    stop(hub, "dave", "s2")
    wait_ready(hub, "erin", "e", timeout=120)
    assert wait_status(pdb, "erin", "e", S.RUNNING).agent_id == rows["s2"].agent_id
    for user, name in (("dave", "s1"), ("dave", "s3"), ("erin", "e")):
        stop(hub, user, name)
    for user, name in (("dave", "s1"), ("dave", "s3"), ("erin", "e")):
        wait_gone(hub, user, name)


def test_an_unreachable_manager_refuses_spawns_with_the_reason(make_hub, pdb, tmp_path):
    pdb.user("fred@example.com", policy="student")
    nobody = f"unix://{tmp_path / 'no-manager.sock'}"
    hub = make_hub(
        hub_config(pdb, "backendai-swarm", f'c.SwarmSessionSpawner.client_kwargs = {{"base_url": {nobody!r}}}')
    )
    r = spawn(hub, "fred", "x", preset="small")
    assert r.status_code == 503, r.text
    assert "the swarm manager does not answer" in r.json()["message"]
    assert pdb.sessions("fred") == []  # refused before it was queued
    assert "Traceback" not in hub.log_text()


def test_a_node_cut_off_is_lost_and_back_again_without_an_orphan(make_hub, pdb, swarm):
    pdb.user("gina@example.com", policy="student")
    manager = swarm.manager
    manager.docker("node", "update", "--availability", "drain", manager.node_id)
    victim = None
    try:
        hub = swarm_hub(make_hub, pdb, swarm)
        assert spawn(hub, "gina", "a", preset="small").status_code in (201, 202)
        wait_ready(hub, "gina", "a", timeout=120)
        a = wait_status(pdb, "gina", "a", S.RUNNING)
        victim = node_of(swarm, a.agent_id)
        assert victim is not manager

        victim.set_link(False)
        lost = wait_status(pdb, "gina", "a", S.ERROR, timeout=40)
        assert lost.status_info == "agent lost"
        assert agents(pdb)[victim.node_id].status == m.AgentStatus.LOST
        wait_gone(hub, "gina", "a", timeout=30)
        assert f"backendai-session-{a.id}" not in manager.docker("service", "ls", "--format", "{{.Name}}").stdout

        # The link comes back: the node is alive again and its engine removes the ended task.
        victim.set_link(True)
        wait_agents(pdb, lambda found: found[victim.node_id].status == m.AgentStatus.ALIVE, timeout=60)
        wait_for(lambda: victim.docker("ps", "-q").stdout.strip() == "", 60, "the lost session's container removed")
    finally:
        if victim is not None:
            victim.set_link(True)
        manager.docker("node", "update", "--availability", "active", manager.node_id)


# Last in the module: it kills a node's engine (the fixture's teardown cleans up what is left).
def test_a_node_whose_engine_dies_is_lost_and_its_sessions_end_with_agent_lost(make_hub, pdb, swarm):
    pdb.user("carol@example.com", policy="student")
    manager = swarm.manager
    # The manager is drained (unschedulable), as many sites keep it: sessions go to the workers.
    manager.docker("node", "update", "--availability", "drain", manager.node_id)
    hub = swarm_hub(make_hub, pdb, swarm)
    assert spawn(hub, "carol", "a", preset="small").status_code in (201, 202)
    wait_ready(hub, "carol", "a", timeout=120)
    a = wait_status(pdb, "carol", "a", S.RUNNING)
    found = agents(pdb)
    assert not found[manager.node_id].schedulable and a.agent_id != manager.node_id
    victim = node_of(swarm, a.agent_id)

    victim.kill_engine()
    started = time.monotonic()
    lost = wait_status(pdb, "carol", "a", S.ERROR, timeout=40)
    assert lost.status_info == "agent lost"
    assert agents(pdb)[victim.node_id].status == m.AgentStatus.LOST
    wait_gone(hub, "carol", "a", timeout=30)  # the hub noticed it on its next poll
    elapsed = time.monotonic() - started
    # The queue goes on with the other worker.
    assert spawn(hub, "carol", "b", preset="small").status_code in (201, 202)
    wait_ready(hub, "carol", "b", timeout=120)
    b = wait_status(pdb, "carol", "b", S.RUNNING)
    assert b.agent_id not in (victim.node_id, manager.node_id)
    assert elapsed < 40, elapsed

    # The node comes back: alive again, and the ended session's service left no task on it.
    victim.start_engine()
    victim.wait_engine()
    wait_agents(pdb, lambda found: found[victim.node_id].status == m.AgentStatus.ALIVE, timeout=60)
    assert f"backendai-session-{a.id}" not in manager.docker("service", "ls", "--format", "{{.Name}}").stdout
    wait_for(lambda: victim.docker("ps", "-q").stdout.strip() == "", 60, "the lost session's container removed")
    stop(hub, "carol", "b")
    wait_gone(hub, "carol", "b")
