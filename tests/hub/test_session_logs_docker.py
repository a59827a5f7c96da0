"""A Docker session's output, end to end: a real hub (Docker backend, real proxy) with the manager
as its service, the session image on the real engine, and Backend.AI's real client.

What the container writes is in ``GET /session/{id}/logs`` while it runs and after it ended (its
container gone), ``backend.ai session logs`` prints it, only its owner and administrators read
it, and a session whose server dies while starting shows why and its last lines on the spawn
page (JupyterHub's progress events).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing import wait_for
from testing.docker import IMAGE
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

pytestmark = pytest.mark.docker

S = m.SessionStatus


@pytest.fixture
def pdb(tmp_path):
    def setup(db: Any) -> None:
        add_students(db, image=IMAGE, labels={"ai.backend.service-ports": "jupyter:http:8888"})
        admin.create_domain(db, "lab")
        admin.create_user(db, "admin@example.com", PASSWORD, role="superadmin", username="admin")
        admin.create_user(db, "dana@example.com", PASSWORD, role="admin")  # admin of alice's domain
        admin.create_user(db, "lena@example.com", PASSWORD, role="admin", domain="lab")  # of another
        admin.create_user(db, "alice@example.com", PASSWORD, policy="student")
        admin.create_user(db, "bob@example.com", PASSWORD, policy="student")

    with ProductDB(tmp_path) as pdb:
        pdb.setup(setup)
        yield pdb


@pytest.fixture
def backendai(make_hub, pdb) -> HubWithManager:
    extra = 'c.DockerSessionSpawner.agent_capacity = {"cpu": 2, "mem": "4g"}\n'
    return HubWithManager(start_hub_with_manager(make_hub, pdb, spawner="backendai-docker", extra=extra), pdb)


def test_output_is_kept_shown_and_guarded(backendai: HubWithManager, pdb: ProductDB) -> None:
    created = backendai.call("POST", "/session", "alice", {"image": IMAGE, "name": "talk", "preset": "small"})
    assert created.status_code == 201, created.text
    sid = created.json()["sessionId"]
    backendai.wait_status("alice", "talk", {"RUNNING"}, timeout=120)
    cid = pdb.session("alice", "talk").container_id
    # The server's own start-up lines are there while it runs.
    wait_logs(backendai, "alice", "talk", "Jupyter Server")
    # A line the session writes to its output (as a process in its terminal could: its stdout).
    marker = f"hello from the session {uuid.uuid4().hex}"
    done = subprocess.run(
        ["docker", "exec", cid, "sh", "-c", f"echo '{marker}' > /proc/1/fd/1"], capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    live = wait_logs(backendai, "alice", "talk", marker)
    assert live["result"]["status"] == "RUNNING" and live["result"]["dropped_bytes"] == 0
    # The engine's own copy is bounded too (json-file, two files of at most log_keep_bytes).
    engine_log = subprocess.run(
        ["docker", "container", "inspect", "-f", "{{json .HostConfig.LogConfig}}", cid],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(engine_log.stdout) == {
        "Type": "json-file",
        "Config": {"max-file": "2", "max-size": str(10 * 1024**2)},
    }

    # Backend.AI's client prints it (by name and by id).
    for ref in ("talk", sid):
        printed = client_logs(backendai, "alice", ref)
        assert printed.returncode == 0, printed.stdout + printed.stderr
        assert marker in printed.stdout, printed.stdout

    # Others: not found (by id, by name), forbidden when naming the owner; administrators read it.
    assert backendai.call("GET", f"/session/{sid}/logs", "bob").status_code == 404
    assert backendai.call("GET", "/session/talk/logs", "bob").status_code == 404
    assert backendai.call("GET", "/session/talk/logs?owner_access_key=alice", "bob").status_code == 403
    assert backendai.call("GET", f"/session/{sid}/logs", "lena").status_code == 404  # another domain's admin
    refused = client_logs(backendai, "bob", sid)
    assert refused.returncode != 0 and marker not in refused.stdout
    for who in ("admin", "dana"):
        assert marker in backendai.call("GET", f"/session/{sid}/logs", who).json()["result"]["logs"]
    assert marker in backendai.call("GET", "/session/talk/logs?owner_access_key=alice", "dana").text

    # The status history has a place of its own (Backend.AI's path).
    history = backendai.call("GET", f"/session/{sid}/status-history", "alice").json()
    assert set(history["result"]) >= {"PENDING", "SCHEDULED", "PREPARING", "RUNNING"}
    assert [i["status"] for i in history["items"]][-1] == "RUNNING"

    # Ended: the container is gone, its output is still there, with the server's last words.
    terminate(backendai, "alice", sid)
    gone = subprocess.run(["docker", "inspect", cid], capture_output=True, timeout=30)
    assert gone.returncode != 0
    assert_output_kept(backendai, "alice", sid, marker)
    printed = client_logs(backendai, "alice", sid)
    assert printed.returncode == 0 and marker in printed.stdout, printed.stdout + printed.stderr


def test_a_session_that_dies_while_starting_shows_why_on_the_spawn_page(
    backendai: HubWithManager, pdb: ProductDB
) -> None:
    # A Python that cannot start: the server exits at once, saying why on its stderr.
    failed = failed_start(backendai.hub, "alice", "broken", timeout=120)
    message = failed["message"]
    ended = wait_status(pdb, "alice", "broken", S.ERROR)
    assert ended.status_info == "could not start: " + message.split(". The end of its output:")[0].removeprefix(
        "Spawn failed: "
    )
    assert "PYTHONHOME = '/nowhere'" in kept_logs(backendai, "alice", ended.id, "ERROR")
    # The hub cleans up after the failed spawn: the container is removed.
    name = f"backendai-session-{ended.id}"
    wait_for(
        lambda: subprocess.run(["docker", "container", "inspect", name], capture_output=True, timeout=30).returncode,
        30, f"{name} is still there",
    )  # fmt: skip
