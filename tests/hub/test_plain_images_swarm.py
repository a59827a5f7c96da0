"""Plain images as Swarm sessions, on the real swarm of three engines through a real hub and proxy.

The image of nothing but a static busybox (tests/hub/test_plain_images_docker.py: no C library, no
Python, no ``/etc/passwd``, no ``/home``, an entry point that fails) is loaded into every node.
Its session's service gets the product's runtime from ``runtime_dir`` (on the nodes' shared file
system, as a site puts it beside ``storage_root``), the ``work`` entry as swarm configs over
``/etc/passwd`` and ``/etc/group``, and a home made on the shared storage, owned by uid 1000.
"""

from __future__ import annotations

import json
import subprocess

import pytest

import testing.swarm
from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.hub.runtime_args import MOUNT
from jupyter_backendai.hub.swarm_args import HOMES_DIR
from testing import missing
from testing.docker import (
    RUNTIME_DIR,
    busybox_image,
    check_busybox_session,
    plain_image_problem,
    refused_without_runtime,
)
from testing.kernel import run_in_terminal
from testing.sessions import ProductDB, add_students, assert_lab_answers, spawn_running, stop, wait_gone, wait_status
from testing.swarm import IMAGE, Swarm, task_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]

S = m.SessionStatus


@pytest.fixture(scope="module")
def plain_image(swarm: Swarm) -> str:
    if problem := plain_image_problem():
        missing(problem, "docker")
    image = busybox_image()
    saved = subprocess.run(["docker", "save", image], capture_output=True, timeout=120, check=True).stdout
    for node in swarm.nodes:
        done = subprocess.run(
            ["docker", "-H", node.sock, "load", "-q"], input=saved, capture_output=True, timeout=120
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    return image


@pytest.fixture
def pdb(tmp_path):
    with ProductDB(tmp_path) as pdb:
        pdb.setup(add_students)
        yield pdb


def swarm_hub(make_hub, pdb, swarm: Swarm, extra: str = ""):
    runtime = f"""
c.SwarmSessionSpawner.runtime_dir = {RUNTIME_DIR!r}
c.SwarmSessionSpawner.runtime_image = {IMAGE!r}
c.SwarmSessionSpawner.storage_probe_image = {IMAGE!r}
"""
    return testing.swarm.swarm_hub(make_hub, pdb, swarm, runtime + extra)


def labelled(swarm: Swarm, kind: str, session_id) -> list[str]:
    out = swarm.manager.docker(kind, "ls", "-q", "--filter", f"label=ai.backend.session-id={session_id}")
    return out.stdout.split()


# The first run on a machine builds the runtime (copying the session image's environment) on top.
@pytest.mark.timeout(1200)
def test_a_busybox_image_runs_as_a_swarm_session(make_hub, pdb, swarm, plain_image):
    pdb.setup(lambda db: admin.upsert_image(db, plain_image, labels={}, installed=True))
    pdb.user("alice@example.com", policy="student")
    pdb.folder("alice", "data")
    hub = swarm_hub(make_hub, pdb, swarm)
    session = spawn_running(
        hub, pdb, "alice", "plain", timeout=900, image=plain_image, preset="small", folders=["data"]
    )
    assert task_node(swarm, session.id) == session.agent_id

    assert_lab_answers(hub, "alice", "plain")
    check_busybox_session(hub, "alice", "plain", "hello from busybox on a node")
    shown = run_in_terminal(hub, "alice", "plain", 'echo "$(id -un):$((6 * 7))"', "work:42")
    assert "work:42" in shown, shown

    # The manager's view: the runtime's server replaces the image's entry point, the account files are configs.
    spec = json.loads(swarm.manager.docker("service", "inspect", f"backendai-session-{session.id}").stdout)[0]
    container = spec["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["Command"] == [f"{MOUNT}/opt/venv/bin/jupyterhub-singleuser"]
    assert sorted(c["File"]["Name"] for c in container["Configs"]) == ["/etc/group", "/etc/passwd"]
    mounts = {mt["Target"]: (mt.get("Source"), mt.get("ReadOnly", False)) for mt in container["Mounts"]}
    assert mounts[MOUNT][1] is True
    home = pdb.storage_root / HOMES_DIR / str(session.id)
    assert mounts["/home/work"] == (str(home), False) and home.stat().st_uid == 1000
    assert len(labelled(swarm, "config", session.id)) == 2

    stop(hub, "alice", "plain")
    wait_gone(hub, "alice", "plain")
    wait_status(pdb, "alice", "plain", S.TERMINATED)
    (stored,) = list(pdb.storage_root.rglob("from-kernel.txt"))
    assert stored.read_text() == "hello from busybox on a node\n" and stored.stat().st_uid == 1000
    # Nothing of the session is left: its service, configs and home.
    assert labelled(swarm, "config", session.id) == [] and labelled(swarm, "service", session.id) == []
    assert not home.exists()


def test_never_supplying_the_runtime_refuses_a_plain_image_on_swarm(make_hub, pdb, swarm, plain_image):
    pdb.setup(lambda db: admin.upsert_image(db, plain_image, labels={}, installed=True))
    pdb.user("carol@example.com", policy="student")
    hub = swarm_hub(make_hub, pdb, swarm, 'c.SwarmSessionSpawner.supply_runtime = "never"')
    session = refused_without_runtime(hub, pdb, "carol", plain_image)
    assert labelled(swarm, "service", session.id) == []
