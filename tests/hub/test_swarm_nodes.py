"""The Swarm backend's nodes on a real three-engine swarm (testing/swarm.py), through a real hub:
agents before any spawn, the storage probe, SSH at a node's public host, a port free on the node,
usage from the node's engine, and a manager that stops answering.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

import testing.swarm
from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing import wait_for
from testing.hub import free_port
from testing.manager import Manager
from testing.sessions import (
    PASSWORD,
    SSH_OPTIONS,
    ProductDB,
    add_students,
    contents,
    downloaded_key,
    keypair_call,
    spawn,
    stop,
    wait_gone,
    wait_ready,
    wait_status,
)
from testing.swarm import IMAGE, Swarm

pytestmark = [pytest.mark.docker, pytest.mark.slow]

S = m.SessionStatus
START_AT_HUB = """
from jupyter_backendai.hub.first_run import register_agent_at_start as _register_agent_at_start
_register_agent_at_start(c, "swarm")
"""


@pytest.fixture
def pdb(tmp_path):
    with ProductDB(tmp_path) as pdb:
        pdb.setup(lambda db: add_students(db, slots={"cpu": 4, "mem": "4g"}, image=IMAGE))
        pdb.user("root@example.com", role="superadmin", username="root")
        pdb.storage_root.mkdir(parents=True, exist_ok=True)
        yield pdb


@pytest.fixture
def manager(tmp_path, pdb):
    """The manager service on the hub's database (GET /admin/agents, GET /session)."""
    service = Manager(tmp_path, pdb)
    yield service
    service.stop()


def swarm_hub(make_hub, pdb, swarm: Swarm, extra: str = "", base_url: str | None = None):
    extra = f"c.SwarmSessionSpawner.storage_probe_retry = 3\n{extra}"
    return testing.swarm.swarm_hub(make_hub, pdb, swarm, extra, capacity='{"cpu": 1, "mem": "2g"}', base_url=base_url)


def api_agents(manager) -> dict[str, dict]:
    r = manager.call("GET", "/admin/agents?status=all", "root")
    assert r.status_code == 200, r.text
    return {a["id"]: a for a in r.json()["agents"]}


def wait_api_agents(manager, check, timeout: float, what: str) -> dict[str, dict]:
    seen: dict[str, dict] = {}

    def look():
        seen.clear()
        seen.update(api_agents(manager))
        return check(seen)

    try:
        wait_for(look, timeout, what)
    except AssertionError as e:
        summary = {i: (a["status"], a["schedulable"], a["status_info"]) for i, a in seen.items()}
        raise AssertionError(f"{e}; agents: {summary}") from None
    return dict(seen)


def node_ready(swarm: Swarm, node) -> bool:
    out = swarm.manager.docker("node", "inspect", "-f", "{{.Status.State}}", node.node_id, check=False).stdout
    return out.strip() == "ready"


def restart_engine(swarm: Swarm, node, wrap: tuple[str, ...] = ()) -> None:
    """Stop the node's engine gracefully and start it again (under ``wrap``), until the swarm has it ready."""
    node.process.terminate()
    node.process.wait(timeout=60)
    node.start_engine(wrap)
    node.wait_engine()
    wait_for(lambda: node_ready(swarm, node), 60, f"node {node.n} ready again")


def container_on(node, session_id) -> str:
    out = node.docker("ps", "-q", "--no-trunc", "--filter", f"label=ai.backend.session-id={session_id}").stdout.split()
    assert len(out) == 1, out
    return out[0]


def probe_leftovers(swarm: Swarm, pdb) -> list[str]:
    services = swarm.manager.docker("service", "ls", "-q", "--filter", "label=ai.backend.storage-probe").stdout.split()
    markers = pdb.storage_root / ".backendai-probe"
    return services + ([p.name for p in markers.iterdir()] if markers.exists() else [])


def test_a_node_that_does_not_see_the_storage_is_not_scheduled_on_until_it_does(make_hub, pdb, swarm, manager):
    pdb.user("stan@example.com", policy="student")
    first, second, blind = swarm.nodes
    first.docker("node", "update", "--availability", "drain", first.node_id)
    # The third engine in a mount namespace of its own where an empty tmpfs hides the storage:
    # a node whose shared file system is not mounted at storage_root.
    hide = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o size=1m none "$0" && exec "$@"', str(pdb.storage_root))  # fmt: skip
    restart_engine(swarm, blind, hide)
    try:
        hub = swarm_hub(make_hub, pdb, swarm, START_AT_HUB)
        found = wait_api_agents(
            manager,
            lambda a: len(a) == 3 and a[second.node_id]["schedulable"] and "not see" in (a[blind.node_id]["status_info"] or ""),
            90,  # a node's engine restarted in a namespace of its own may show down for a while under load
            "the blind node refused with its reason, the other worker checked",
        )  # fmt: skip
        assert found[blind.node_id]["status"] == "ALIVE" and not found[blind.node_id]["schedulable"]
        assert "does not see the folder storage" in found[blind.node_id]["status_info"]
        assert found[second.node_id]["status_info"] is None
        assert found[first.node_id]["status_info"] == "node availability drain"

        # One session fills the worker that sees the storage; the next waits rather than go blind.
        assert spawn(hub, "stan", "a", preset="small").status_code in (201, 202)
        wait_ready(hub, "stan", "a", timeout=120)
        assert wait_status(pdb, "stan", "a", S.RUNNING).agent_id == second.node_id
        assert spawn(hub, "stan", "b", preset="small").status_code == 202
        time.sleep(8)  # several scheduling passes and heartbeats
        assert pdb.session("stan", "b").status == S.PENDING
        assert blind.docker("ps", "-q").stdout.strip() == ""

        # The storage mounted (the engine back in the host's mount namespace): a later probe passes
        # and the waiting session starts there.
        restart_engine(swarm, blind)
        wait_ready(hub, "stan", "b", timeout=120)
        assert wait_status(pdb, "stan", "b", S.RUNNING).agent_id == blind.node_id
        # A probe that the engine's restart cut short said "unknown" (a note, not a block); the
        # next probe, on the node as it is now, clears it.
        wait_api_agents(
            manager,
            lambda a: a[blind.node_id]["schedulable"] and a[blind.node_id]["status_info"] is None,
            60,
            "the node that sees the storage again, schedulable with nothing to say",
        )
        assert probe_leftovers(swarm, pdb) == []
        for name in ("a", "b"):
            stop(hub, "stan", name)
        for name in ("a", "b"):
            wait_gone(hub, "stan", name)
        assert "Traceback" not in hub.log_text()
    finally:
        if blind.process is not None and blind.process.args[0] == "unshare":
            restart_engine(swarm, blind)
        first.docker("node", "update", "--availability", "active", first.node_id)


def test_ssh_at_the_nodes_public_host_ports_free_on_the_node_and_usage_from_its_engine(
    make_hub, pdb, swarm, manager, tmp_path
):
    pdb.user("sam@example.com", policy="student")
    first, labelled, plain = swarm.nodes
    preferred = free_port("0.0.0.0")
    pdb.setup(lambda db: setattr(admin.get_user(db, "sam"), "preferred_ssh_port", preferred))
    first.docker("node", "update", "--availability", "drain", first.node_id)
    swarm.label(labelled, "ai.backend.public-host", "node2.swarm.test")
    # The preferred port taken on one node (where the session must take another) and on the hub's
    # host (where it must not matter: the other node's session gets it).
    busy_on_node = subprocess.Popen(
        ["ip", "netns", "exec", labelled.netns, "python3", "-c",
         f"import socket,time; s=socket.socket(); s.bind(({labelled.ip!r}, {preferred})); s.listen(); time.sleep(600)"],
    )  # fmt: skip
    busy_here = socket.socket()
    busy_here.bind(("0.0.0.0", preferred))
    busy_here.listen()
    try:
        urls = {n.node_id: n.sock for n in (labelled, plain)}  # the workers' engines, for usage samples
        hub = swarm_hub(
            make_hub, pdb, swarm, f"c.SwarmSessionSpawner.node_docker_urls = {urls!r}\nc.Spawner.usage_interval = 2"
        )
        wait_for(lambda: port_answers(labelled.ip, preferred), 20, "the listener on the node")
        for name in ("x", "y"):
            assert spawn(hub, "sam", name, preset="small").status_code in (201, 202)
        for name in ("x", "y"):
            wait_ready(hub, "sam", name, timeout=120)
        rows = {wait_status(pdb, "sam", n, S.RUNNING).agent_id: wait_status(pdb, "sam", n, S.RUNNING) for n in "xy"}
        assert set(rows) == {labelled.node_id, plain.node_id}  # one per worker (one CPU each)
        on_labelled, on_plain = rows[labelled.node_id], rows[plain.node_id]
        assert on_plain.ssh_port == preferred  # free on its node, though taken on the hub's host
        assert on_labelled.ssh_port != preferred and 10000 <= on_labelled.ssh_port <= 65000
        for row in rows.values():
            assert contents(hub, "sam", row.server_name, "").status_code == 200  # at the node's address

        # The API and the home page show the node's public host name (its label, else its address).
        access, secret = manager.keys("sam")
        for row, host in ((on_labelled, "node2.swarm.test"), (on_plain, plain.ip)):
            detail = keypair_call(manager.url, access, secret, "GET", f"/session/{row.name}").json()
            assert detail["ssh"] == {"host": host, "port": row.ssh_port}, detail
        from testing.hub import login

        browser = requests.Session()
        assert login(hub, "sam", PASSWORD, browser).status_code == 200
        home = browser.get(f"{hub.url}/hub/home", timeout=30).text
        assert f"ssh -i id_container -p {on_labelled.ssh_port} work@node2.swarm.test" in home
        assert f"ssh -i id_container -p {on_plain.ssh_port} work@{plain.ip}" in home

        # The key downloads from the session (a secret of the session, mounted at its path) and the
        # real ssh client logs in at the public name (resolved as the user's DNS would).
        name = on_labelled.server_name
        key = downloaded_key(browser, hub, pdb, "sam", name, tmp_path)
        config = tmp_path / "ssh_config"
        config.write_text(f"Host node2.swarm.test\n  HostName {labelled.ip}\n")
        command = ["ssh", "-F", str(config), "-i", str(key), *SSH_OPTIONS,
                   "-p", str(on_labelled.ssh_port), "work@node2.swarm.test", "id -un; cat /proc/self/cgroup"]  # fmt: skip
        done = wait_for(lambda: ssh_ok(command), 30, "ssh into the session")
        out = done.stdout.split()
        assert out[0] == "work", done.stdout
        assert container_on(labelled, on_labelled.id) in done.stdout  # inside the session's container

        # Usage samples from each worker's engine.
        def sampled():
            with pdb() as db:
                found = {}
                for row in rows.values():
                    usage = db.query(m.SessionUsage).filter_by(session_id=row.id).all()
                    found[row.id] = [u for u in usage if u.mem_bytes > 0 and u.cpu_seconds > 0]
                return found if all(len(v) >= 2 for v in found.values()) else None

        for samples in wait_for(sampled, 40, "two usage samples of each session").values():
            assert all(10 * 1024**2 < u.mem_bytes <= 512 * 1024**2 for u in samples)
            assert samples[-1].cpu_seconds >= samples[0].cpu_seconds

        session_ids = [str(r.id) for r in rows.values()]
        for row in rows.values():
            stop(hub, "sam", row.server_name)
        for row in rows.values():
            wait_gone(hub, "sam", row.server_name)
        secrets = swarm.manager.docker("secret", "ls", "--format", "{{.Name}}").stdout
        assert not [sid for sid in session_ids if sid in secrets]  # the key files' secrets went with them
    finally:
        busy_here.close()
        busy_on_node.kill()
        busy_on_node.wait(timeout=10)
        swarm.label(labelled, "ai.backend.public-host", None)
        first.docker("node", "update", "--availability", "active", first.node_id)


def port_answers(addr: str, port: int) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=1):
            return True
    except OSError:
        return False


def ssh_ok(command: list[str]):
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    return done if done.returncode == 0 else None


def test_the_manager_unreachable_refuses_spawns_and_kills_nothing_running(make_hub, pdb, swarm):
    pdb.user("una@example.com", policy="student")
    # The hub talks to the manager through a relay the test can cut.
    sock = os.path.join(tempfile.mkdtemp(prefix="jbsw-relay-"), "manager.sock")

    def relay() -> subprocess.Popen:
        return subprocess.Popen(
            ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early", f"UNIX-CONNECT:{swarm.manager.root / 'docker.sock'}"],
            start_new_session=True,
        )

    def cut(process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)  # with its children: open connections too
        process.wait(timeout=10)

    process = relay()
    wait_for(lambda: os.path.exists(sock), 10, "the relay's socket")
    try:
        hub = swarm_hub(make_hub, pdb, swarm, base_url=f"unix://{sock}")
        assert spawn(hub, "una", "a", preset="small").status_code in (201, 202)
        wait_ready(hub, "una", "a", timeout=120)
        a = wait_status(pdb, "una", "a", S.RUNNING)

        cut(process)
        r = spawn(hub, "una", "b", preset="small")
        assert r.status_code == 503, r.text
        assert "the swarm manager does not answer" in r.json()["message"]
        time.sleep(8)  # several polls and heartbeats without a manager
        assert pdb.session("una", "a").status == S.RUNNING
        assert contents(hub, "una", "a", "").status_code == 200
        with pdb() as db:
            assert db.get(m.Agent, a.agent_id).status == m.AgentStatus.ALIVE
        assert [s.server_name for s in pdb.sessions("una")] == ["a"]  # b was refused before it queued

        # The manager back: spawns go ahead again; the session that ran on is stopped as usual.
        process = relay()
        wait_for(lambda: spawn(hub, "una", "b", preset="small").status_code in (201, 202), 30, "a spawn accepted")
        wait_ready(hub, "una", "b", timeout=120)
        for name in ("a", "b"):
            stop(hub, "una", name)
        for name in ("a", "b"):
            wait_gone(hub, "una", name)
        assert wait_status(pdb, "una", "a", S.TERMINATED)
        assert "Traceback" not in hub.log_text()
    finally:
        if process.poll() is None:
            cut(process)


# Last in the module: a node leaves the swarm and joins again under a new id.
def test_nodes_show_up_before_any_spawn_and_follow_the_swarm(make_hub, pdb, swarm, manager):
    hub = swarm_hub(make_hub, pdb, swarm, START_AT_HUB)
    ids = {n.node_id for n in swarm.nodes}
    # Within a heartbeat of the hub's start, without any spawn: every node, checked, at its address.
    found = wait_api_agents(
        manager,
        lambda a: set(a) == ids and all(x["status"] == "ALIVE" and x["schedulable"] for x in a.values()),
        20,
        "the three nodes alive and schedulable",
    )
    assert {a["addr"] for a in found.values()} == {n.ip for n in swarm.nodes}
    assert all(a["status_info"] is None and a["version"] == "swarm" for a in found.values())

    second, third = swarm.nodes[1], swarm.nodes[2]
    swarm.manager.docker("node", "update", "--availability", "drain", second.node_id)
    wait_api_agents(
        manager,
        lambda a: (
            not a[second.node_id]["schedulable"] and a[second.node_id]["status_info"] == "node availability drain"
        ),
        10,
        "the drained node unschedulable",
    )
    swarm.manager.docker("node", "update", "--availability", "active", second.node_id)
    wait_api_agents(manager, lambda a: a[second.node_id]["schedulable"], 10, "the node active again")

    # A node that leaves is LOST (down, then gone from the list); one that joins is a new agent.
    third.docker("swarm", "leave")
    wait_api_agents(
        manager,
        lambda a: (
            a[third.node_id]["status"] == "LOST" and (a[third.node_id]["status_info"] or "").startswith("node down")
        ),
        15,
        "the node that left LOST",
    )
    swarm.manager.docker("node", "rm", third.node_id)
    token = swarm.manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
    third.docker("swarm", "join", "--token", token, f"{swarm.manager.ip}:2377", timeout=60)
    old = third.node_id
    third.node_id = third.docker("info", "-f", "{{.Swarm.NodeID}}").stdout.strip()
    assert third.node_id and third.node_id != old
    found = wait_api_agents(
        manager,
        lambda a: third.node_id in a and a[third.node_id]["status"] == "ALIVE" and a[third.node_id]["schedulable"],
        20,
        "the node that joined alive",
    )
    assert found[third.node_id]["addr"] == third.ip and found[old]["status"] == "LOST"
    assert pdb.sessions("root") == []  # all of it without a session
    assert "Traceback" not in hub.log_text()


def test_the_swarm_backend_asked_for_without_a_manager_says_why(pdb, monkeypatch, tmp_path):
    from jupyter_backendai.hub import first_run

    monkeypatch.delenv("DOCKER_HOST", raising=False)  # the host's own engine: not in a swarm
    with pytest.raises(RuntimeError, match="the Swarm backend was asked for but the Docker engine is not a swarm"):
        first_run.choose(pdb.url, prefer="swarm")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'none.sock'}")
    with pytest.raises(RuntimeError, match="no Docker engine answers"):
        first_run.choose(pdb.url, prefer="swarm")
