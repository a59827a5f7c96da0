"""A Swarm session's output, end to end: a real hub (``backendai-swarm``, real proxy) with the
manager as its service, on the real swarm of three engines (testing/swarm.py).

What the session's container writes, on whichever node runs it, is in ``GET /session/{id}/logs``
while it runs (the manager's ``docker service logs``) and after it ended (its service gone),
with the server's last lines; ``backend.ai session logs`` prints it; another user does not read
it; a session whose server dies while starting shows why and its last lines on the spawn page.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing.sessions import (
    PASSWORD,
    HubWithManager,
    ProductDB,
    client_logs,
    spawn,
    start_hub_with_manager,
    wait_logs,
    wait_status,
)
from testing.swarm import BRIDGE_IP, IMAGE, Swarm, container_on, node_of, task_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]

S = m.SessionStatus


@pytest.fixture
def pdb(tmp_path):
    pdb = ProductDB(tmp_path)

    def setup(db: Any) -> None:
        admin.create_policy(db, "student", total_resource_slots={"cpu": 2, "mem": "2g"}, max_concurrent_sessions=3)
        admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"}, shared_memory="64m")
        admin.upsert_image(
            db,
            IMAGE,
            labels={"ai.backend.resource.min.cpu": "0.5", "ai.backend.resource.min.mem": "256m"},
            installed=True,
        )
        admin.create_user(db, "admin@example.com", PASSWORD, role="superadmin", username="admin")
        admin.create_user(db, "alice@example.com", PASSWORD, policy="student")
        admin.create_user(db, "bob@example.com", PASSWORD, policy="student")

    pdb.setup(setup)
    yield pdb
    pdb.close()


@pytest.fixture
def backendai(make_hub, pdb, swarm: Swarm) -> HubWithManager:
    extra = f"""
c.SwarmSessionSpawner.client_kwargs = {{"base_url": {swarm.manager.sock!r}}}
c.SwarmSessionSpawner.agent_capacity = {{"cpu": 2, "mem": "2g"}}
c.SwarmSessionSpawner.agent_heartbeat_interval = 2
c.Spawner.poll_interval = 2
# Sessions on the nodes reach the hub's API on the nodes' bridge.
c.JupyterHub.hub_ip = {BRIDGE_IP!r}
"""
    return HubWithManager(start_hub_with_manager(make_hub, pdb, spawner="backendai-swarm", extra=extra), pdb)


def services(swarm: Swarm) -> str:
    return swarm.manager.docker("service", "ls", "--format", "{{.Name}}").stdout


def test_output_on_a_node_is_kept_after_the_service_is_gone(backendai: HubWithManager, pdb: ProductDB, swarm) -> None:
    created = backendai.call("POST", "/session", "alice", {"image": IMAGE, "name": "talk", "preset": "small"})
    assert created.status_code == 201, created.text
    sid = created.json()["sessionId"]
    backendai.wait_status("alice", "talk", {"RUNNING"}, timeout=150)
    row = pdb.session("alice", "talk")
    assert task_node(swarm, row.id) == row.agent_id
    node = node_of(swarm, row.agent_id)
    cid = container_on(node, row.id)
    wait_logs(backendai, "alice", "talk", "Jupyter Server", timeout=30)
    # A line the session writes to its output on its node (as a process in its terminal could).
    marker = f"hello from the swarm session {uuid.uuid4().hex}"
    done = node.docker("exec", cid, "sh", "-c", f"echo '{marker}' > /proc/1/fd/1", check=False)
    assert done.returncode == 0, done.stderr
    live = wait_logs(backendai, "alice", "talk", marker)
    assert live["result"]["status"] == "RUNNING"
    printed = client_logs(backendai, "alice", sid)
    assert printed.returncode == 0 and marker in printed.stdout, printed.stdout + printed.stderr
    assert backendai.call("GET", f"/session/{sid}/logs", "bob").status_code == 404
    assert marker in backendai.call("GET", f"/session/{sid}/logs", "admin").json()["result"]["logs"]

    # Ended: the service is gone, its output is still there, with the server's last words.
    deleted = backendai.call("DELETE", f"/session/{sid}", "alice")
    assert deleted.status_code == 200 and deleted.json()["status"] == "TERMINATED", deleted.text
    assert f"backendai-session-{row.id}" not in services(swarm)
    after = backendai.call("GET", f"/session/{sid}/logs", "alice").json()["result"]
    assert after["status"] == "TERMINATED"
    assert marker in after["logs"] and "Jupyter Server" in after["logs"]
    assert "Shutting down" in after["logs"], after["logs"][-2000:]
    assert after["logs"].count(marker) == 1  # read again whole at the end, not appended twice


def test_a_swarm_session_that_dies_while_starting_shows_why_on_the_spawn_page(
    backendai: HubWithManager, pdb: ProductDB, swarm
) -> None:
    hub = backendai.hub
    # A Python that cannot start: the server exits at once, saying why on its stderr.
    r = spawn(hub, "alice", "broken", preset="small", environ={"PYTHONHOME": "/nowhere"})
    assert r.status_code in (201, 202, 500), r.text
    progress = hub.api("GET", "/users/alice/servers/broken/progress", stream=True, timeout=150)
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 150
    for line in progress.iter_lines():
        if line.startswith(b"data:"):
            events.append(json.loads(line[5:]))
            if events[-1].get("failed") or events[-1].get("ready") or time.monotonic() > deadline:
                break
    progress.close()
    failed = events[-1]
    assert failed.get("failed"), events
    message = failed["message"]
    assert "the session's container exited with status 1 before its server listened" in message, message
    assert "Fatal Python error: init_fs_encoding" in message and "sys.prefix = '/nowhere'" in message, message
    assert "<pre" in failed["html_message"] and "sys.prefix = &#x27;/nowhere&#x27;" in failed["html_message"]

    ended = wait_status(pdb, "alice", "broken", S.ERROR)
    assert ended.status_info.startswith("could not start: the session's container exited with status 1")
    kept = backendai.call("GET", f"/session/{ended.id}/logs", "alice").json()["result"]
    assert "PYTHONHOME = '/nowhere'" in kept["logs"] and kept["status"] == "ERROR"
    # The hub cleans up after the failed spawn: the service is removed.
    deadline = time.monotonic() + 30
    while f"backendai-session-{ended.id}" in services(swarm) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert f"backendai-session-{ended.id}" not in services(swarm)
