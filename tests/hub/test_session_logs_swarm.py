"""A Swarm session's output, end to end: a real hub (``backendai-swarm``, real proxy) with the
manager as its service, on the real swarm of three engines (testing/swarm.py).

What the session's container writes, on whichever node runs it, is in ``GET /session/{id}/logs``
while it runs (the manager's ``docker service logs``) and after it ended (its service gone),
with the server's last lines; ``backend.ai session logs`` prints it; another user does not read
it; a session whose server dies while starting shows why and its last lines on the spawn page.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing import wait_for
from testing.sessions import (
    PASSWORD,
    HubWithManager,
    ProductDB,
    add_students,
    assert_output_kept,
    client_logs,
    failed_start,
    kept_logs,
    start_hub_with_manager,
    terminate,
    wait_logs,
    wait_status,
)
from testing.swarm import IMAGE, Swarm, container_on, node_of, swarm_settings, task_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]

S = m.SessionStatus


@pytest.fixture
def pdb(tmp_path):
    def setup(db: Any) -> None:
        add_students(db, image=IMAGE)
        admin.create_user(db, "admin@example.com", PASSWORD, role="superadmin", username="admin")
        admin.create_user(db, "alice@example.com", PASSWORD, policy="student")
        admin.create_user(db, "bob@example.com", PASSWORD, policy="student")

    with ProductDB(tmp_path) as pdb:
        pdb.setup(setup)
        yield pdb


@pytest.fixture
def backendai(make_hub, pdb, swarm: Swarm) -> HubWithManager:
    return HubWithManager(
        start_hub_with_manager(make_hub, pdb, spawner="backendai-swarm", extra=swarm_settings(swarm)), pdb
    )


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
    terminate(backendai, "alice", sid)
    assert f"backendai-session-{row.id}" not in services(swarm)
    after = assert_output_kept(backendai, "alice", sid, marker)
    assert after.count(marker) == 1  # read again whole at the end, not appended twice


def test_a_swarm_session_that_dies_while_starting_shows_why_on_the_spawn_page(
    backendai: HubWithManager, pdb: ProductDB, swarm
) -> None:
    # A Python that cannot start: the server exits at once, saying why on its stderr.
    failed_start(backendai.hub, "alice", "broken", timeout=150)
    ended = wait_status(pdb, "alice", "broken", S.ERROR)
    assert ended.status_info.startswith("could not start: the session's container exited with status 1")
    assert "PYTHONHOME = '/nowhere'" in kept_logs(backendai, "alice", ended.id, "ERROR")
    # The hub cleans up after the failed spawn: the service is removed.
    name = f"backendai-session-{ended.id}"
    wait_for(lambda: name not in services(swarm), 30, f"{name} is still there")
