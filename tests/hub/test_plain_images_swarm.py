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
import requests

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.hub.runtime_args import MOUNT
from jupyter_backendai.hub.swarm_args import HOMES_DIR
from testing import missing
from testing.docker import RUNTIME_DIR, busybox_image, plain_image_problem
from testing.kernel import run_code, run_in_terminal, start_kernel
from testing.sessions import ProductDB, hub_config, spawn, stop, wait_gone, wait_ready, wait_status
from testing.swarm import BRIDGE_IP, IMAGE, Swarm, task_node

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
    pdb = ProductDB(tmp_path)

    def setup(db):
        admin.create_policy(
            db, "student", total_resource_slots={"cpu": 2, "mem": "2g"}, max_concurrent_sessions=3,
            allowed_vfolder_hosts=["local"],
        )  # fmt: skip
        admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"}, shared_memory="64m")

    pdb.setup(setup)
    yield pdb
    pdb.close()


def swarm_hub(make_hub, pdb, swarm: Swarm, extra: str = ""):
    return make_hub(
        hub_config(
            pdb,
            "backendai-swarm",
            f"""
c.SwarmSessionSpawner.client_kwargs = {{"base_url": {swarm.manager.sock!r}}}
c.SwarmSessionSpawner.agent_capacity = {{"cpu": 2, "mem": "2g"}}
c.SwarmSessionSpawner.agent_heartbeat_interval = 2
c.SwarmSessionSpawner.runtime_dir = {RUNTIME_DIR!r}
c.SwarmSessionSpawner.runtime_image = {IMAGE!r}
c.SwarmSessionSpawner.storage_probe_image = {IMAGE!r}
c.Spawner.poll_interval = 2
c.JupyterHub.hub_ip = {BRIDGE_IP!r}
{extra}
""",
        )
    )


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
    r = spawn(hub, "alice", "plain", image=plain_image, preset="small", folders=["data"])
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "alice", "plain", timeout=900)
    session = wait_status(pdb, "alice", "plain", S.RUNNING)
    assert task_node(swarm, session.id) == session.agent_id

    status = requests.get(
        f"{hub.url}/user/alice/plain/api/status", headers={"Authorization": f"token {hub.admin_token}"}, timeout=30
    )
    assert status.status_code == 200, status.text
    kernel = start_kernel(hub, "alice", "plain")
    out = run_code(
        hub,
        "alice",
        "plain",
        kernel,
        "import os, sys, pwd, subprocess\n"
        "open('/home/work/data/from-kernel.txt', 'w').write('hello from busybox on a node\\n')\n"
        "print(sys.executable)\n"
        "print(os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name, os.environ['HOME'])\n"
        "print(os.path.exists('/bin/busybox'), os.path.exists('/usr/bin/python3'))\n"
        "print(subprocess.run(['id', '-un'], capture_output=True, text=True).stdout.strip())\n"
        "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip())\n"
        "try:\n    open('/opt/backendai-runtime/x', 'w')\nexcept OSError as e:\n    print('ro', e.errno)\n"
        "print(os.stat('/home/work').st_uid, os.access('/home/work', os.W_OK))\n",
    )
    lines = out.splitlines()
    assert lines[0].startswith(f"{MOUNT}/"), out
    assert lines[1] == "1000 1000 work /home/work", out
    assert lines[2] == "True False", out  # the image's busybox, no Python of its own
    assert lines[3] == "work", out  # the image's own `id` reads the config over /etc/passwd
    assert lines[4] == str(512 * 1024**2), out
    assert lines[5] == "ro 30", out  # EROFS: the runtime is mounted read-only
    assert lines[6] == "1000 True", out  # the home is the user's
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
    r = spawn(hub, "carol", "never", image=plain_image, preset="small")
    assert r.status_code in (201, 202, 400, 500), r.text
    session = wait_status(pdb, "carol", "never", S.ERROR, timeout=120)
    reason = session.history[-1].reason if session.history else ""
    assert "no jupyterhub-singleuser" in (reason or "") and "supply_runtime 'never'" in reason, reason
    assert labelled(swarm, "service", session.id) == []
