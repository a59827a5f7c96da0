"""Plain images as sessions on the real Docker engine, through a real hub and proxy.

Two images made here without any registry:

* **busybox**: Debian's static busybox and its applet links, imported from a tar: no C library,
  no Python, no ``/etc/passwd``, no ``/home``; an ENTRYPOINT that would fail and a PYTHONHOME that
  would mislead any Python. The session runs on the product's runtime (built from the session
  image into a cache shared by test runs, ``BACKENDAI_TEST_RUNTIME_DIR``).
* **no work user**: the session image with its ``work`` user and ``/home/work`` removed. It keeps
  its own server; the container gets a ``work`` entry and a home owned by uid 1000.

The busybox image also goes the way of images from a registry: pushed to the test registry,
found by a rescan, installed (pulled by the engine) and run from there.

Needs the engine, the session image, ``busybox-static`` and ``patchelf`` (``.ci/run``).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from urllib.parse import quote

import pytest
import requests

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.hub.runtime_args import MOUNT
from testing import missing
from testing.docker import RUNTIME_DIR, busybox_image, plain_image_problem
from testing.kernel import kernel_spec, run_code, run_in_terminal, start_kernel
from testing.registry import (
    add_registry,
    admin_call,
    docker,
    docker_agent,
    image_exists,
    images_by_ref,
    manager_docker_hub,
)
from testing.sessions import ProductDB, hub_config, spawn, stop, wait_gone, wait_ready, wait_status

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("BACKENDAI_TEST_SESSION_IMAGE", "jupyter-backendai-session:local")
NO_USER_IMAGE = "jupyter-backendai-test-plain:no-work-user"
S = m.SessionStatus


@pytest.fixture(scope="module", autouse=True)
def plain_image_tools():
    if problem := plain_image_problem():
        missing(problem, "docker")


def no_user_image() -> str:
    """The session image without its work user and home (a build step, no network)."""
    dockerfile = f"FROM {IMAGE}\nUSER root\nRUN userdel work && rm -rf /home/work\nUSER 1000\n"
    done = subprocess.run(
        ["docker", "build", "--network", "none", "-q", "-t", NO_USER_IMAGE, "-"],
        input=dockerfile.encode(),
        capture_output=True,
        timeout=600,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    assert done.returncode == 0, done.stderr
    return NO_USER_IMAGE


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


def install(pdb: ProductDB, image: str) -> None:
    pdb.setup(lambda db: admin.upsert_image(db, image, labels={}, installed=True))


def docker_hub(make_hub, pdb, extra: str = ""):
    return make_hub(
        hub_config(
            pdb,
            "backendai-docker",
            'c.DockerSessionSpawner.agent_capacity = {"cpu": 2, "mem": "4g"}\n'
            f"c.DockerSessionSpawner.runtime_dir = {RUNTIME_DIR!r}\n"
            f"c.DockerSessionSpawner.runtime_image = {IMAGE!r}\n" + extra,
        )
    )


def docker_inspect(container: str, template: str) -> str:
    done = subprocess.run(["docker", "inspect", "-f", template, container], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# The first run on a machine builds the runtime (copying the session image's environment) on top.
@pytest.mark.timeout(1200)
def test_a_busybox_image_runs_as_a_jupyterlab_session(make_hub, pdb):
    image = busybox_image()
    install(pdb, image)
    pdb.user("alice@example.com", policy="student")
    pdb.folder("alice", "data")
    hub = docker_hub(make_hub, pdb)

    r = spawn(hub, "alice", "plain", image=image, preset="small", folders=["data"])
    assert r.status_code in (201, 202), r.text
    # The first session of a plain image waits for the runtime's build (a minute or more on a busy machine).
    wait_ready(hub, "alice", "plain", timeout=900)
    session = wait_status(pdb, "alice", "plain", S.RUNNING)
    cid = session.container_id

    # The lab answers through the proxy.
    status = requests.get(
        f"{hub.url}/user/alice/plain/api/status", headers={"Authorization": f"token {hub.admin_token}"}, timeout=30
    )
    assert status.status_code == 200, status.text
    assert "python3" in kernel_spec(hub, "alice", "plain")["kernelspecs"]

    # A kernel runs on the runtime's Python, as uid 1000 named work, and writes into the folder.
    kernel = start_kernel(hub, "alice", "plain")
    out = run_code(
        hub,
        "alice",
        "plain",
        kernel,
        "import os, sys, pwd, subprocess\n"
        "open('/home/work/data/from-kernel.txt', 'w').write('hello from busybox\\n')\n"
        "print(sys.executable)\n"
        "print(os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name, os.environ['HOME'])\n"
        "print(os.path.exists('/bin/busybox'), os.path.exists('/usr/bin/python3'), os.path.exists('/lib/x86_64-linux-gnu'))\n"
        "print(subprocess.run(['id', '-un'], capture_output=True, text=True).stdout.strip())\n"
        "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip())\n"
        "try:\n    open('/opt/backendai-runtime/x', 'w')\nexcept OSError as e:\n    print('ro', e.errno)\n"
        "print(os.stat('/home/work').st_uid, os.access('/home/work', os.W_OK))\n",
    )
    lines = out.splitlines()
    assert lines[0].startswith(f"{MOUNT}/"), out
    assert lines[1] == "1000 1000 work /home/work", out
    assert lines[2] == "True False False", out  # the image's busybox; no Python or C library of its own
    assert lines[3] == "work", out  # the image's own `id` knows the user (its /etc/passwd has the entry)
    assert lines[4] == str(512 * 1024**2), out  # the preset's memory limit holds
    assert lines[5] == "ro 30", out  # EROFS: the runtime is mounted read-only
    assert lines[6] == "1000 True", out  # the home is the user's

    # A terminal opens the image's own shell (busybox sh; no tmux there), as the user, with the runtime's Python.
    shown = run_in_terminal(hub, "alice", "plain", 'echo "$(id -un):$((6 * 7)):$(command -v python)"', "work:42:")
    assert f"work:42:{MOUNT}/opt/venv/bin/python" in shown, shown

    # The engine's view: the limits and the security settings of every session, and the runtime's mount.
    assert docker_inspect(cid, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.ShmSize}}") == (
        f"{512 * 1024**2} {10**9} {64 * 1024**2}"
    )
    assert docker_inspect(cid, "{{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}} {{.Config.User}}") == (
        '["ALL"] ["no-new-privileges"] 1000:1000'
    )
    assert docker_inspect(cid, "{{json .Config.Entrypoint}}") == f'["{MOUNT}/opt/venv/bin/jupyterhub-singleuser"]'
    mounts = docker_inspect(cid, "{{range .Mounts}}{{.Destination}}={{.RW}} {{end}}").split()
    assert f"{MOUNT}=false" in mounts and "/home/work/data=true" in mounts, mounts

    stop(hub, "alice", "plain")
    wait_gone(hub, "alice", "plain")
    wait_status(pdb, "alice", "plain", S.TERMINATED)
    (stored,) = list(pdb.storage_root.rglob("from-kernel.txt"))
    assert stored.read_text() == "hello from busybox\n"
    assert stored.stat().st_uid == 1000


def test_an_image_without_a_work_user_gets_one(make_hub, pdb):
    image = no_user_image()
    install(pdb, image)
    pdb.user("bob@example.com", policy="student")
    hub = docker_hub(make_hub, pdb)

    r = spawn(hub, "bob", "nouser", image=image, preset="small")
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "bob", "nouser", timeout=240)
    session = wait_status(pdb, "bob", "nouser", S.RUNNING)
    kernel = start_kernel(hub, "bob", "nouser")
    out = run_code(
        hub,
        "bob",
        "nouser",
        kernel,
        "import os, sys, pwd\n"
        "print(sys.executable)\n"
        "print(pwd.getpwuid(os.getuid()).pw_name, pwd.getpwuid(os.getuid()).pw_dir, os.stat('/home/work').st_uid)\n",
    )
    # Its own server and Python (no runtime mounted), with a work entry and a home of uid 1000.
    assert out.splitlines() == ["/opt/venv/bin/python3", "work /home/work 1000"], out
    assert MOUNT not in docker_inspect(session.container_id, "{{range .Mounts}}{{.Destination}} {{end}}")
    stop(hub, "bob", "nouser")
    wait_gone(hub, "bob", "nouser")


def test_never_supplying_the_runtime_refuses_a_plain_image_with_the_reason(make_hub, pdb):
    image = busybox_image()
    install(pdb, image)
    pdb.user("carol@example.com", policy="student")
    hub = docker_hub(make_hub, pdb, 'c.DockerSessionSpawner.supply_runtime = "never"\n')

    r = spawn(hub, "carol", "never", image=image, preset="small")
    assert r.status_code in (201, 202, 400, 500), r.text
    session = wait_status(pdb, "carol", "never", S.ERROR, timeout=120)
    reason = session.history[-1].reason if session.history else ""
    assert "no jupyterhub-singleuser" in (reason or "") and "supply_runtime 'never'" in reason, reason


@pytest.mark.timeout(1200)
def test_a_plain_image_from_the_registry_is_installed_and_runs(make_hub, tmp_path, image_registry):
    pdb = ProductDB(tmp_path)
    try:

        def setup(db):
            admin.create_policy(
                db, "student", total_resource_slots={"cpu": 2, "mem": "2g"}, allowed_vfolder_hosts=["local"]
            )
            admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"})
            _user, keypair = admin.create_user(db, "root@example.com", "S3cret!pw", role="superadmin")
            return keypair.access_key, keypair.secret_key

        pdb.keys = pdb.setup(setup)
        pdb.user("alice@example.com", policy="student")
        ref = f"{image_registry.address}/lab/plain-busybox-{uuid.uuid4().hex[:6]}:1"
        # A rescan lists images with an ai.backend.* label (as Backend.AI's does): the operator's one label.
        dockerfile = f"FROM {busybox_image()}\nLABEL ai.backend.resource.min.mem=128m\n"
        built = subprocess.run(
            ["docker", "build", "--network", "none", "-q", "-t", ref, "-"],
            input=dockerfile.encode(),
            capture_output=True,
            timeout=300,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
        assert built.returncode == 0, built.stderr
        docker("push", ref)
        docker("rmi", ref)  # only in the registry now
        add_registry(pdb, image_registry.address)
        hub = manager_docker_hub(
            make_hub,
            pdb,
            f"c.DockerSessionSpawner.runtime_dir = {RUNTIME_DIR!r}\nc.DockerSessionSpawner.runtime_image = {IMAGE!r}\n",
        )
        agent = docker_agent(pdb)
        call = admin_call
        report = call(hub, pdb, "POST", "/admin/images/rescan").json()
        assert any(i.startswith(ref) for i in report["images"]), report
        answer = call(hub, pdb, "POST", f"/admin/images/{quote(ref, safe='/:')}/install", {})
        assert answer.status_code == 202, answer.text
        deadline = time.monotonic() + 120
        while images_by_ref(hub, pdb)[ref]["installed_agents"] != [agent]:
            assert time.monotonic() < deadline, f"not installed within 120 s\n{hub.log_tail(40)}"
            time.sleep(0.5)
        assert image_exists(ref)

        r = spawn(hub, "alice", "pulled", image=ref, preset="small")
        assert r.status_code in (201, 202), r.text
        wait_ready(hub, "alice", "pulled", timeout=900)
        status = requests.get(
            f"{hub.url}/user/alice/pulled/api/status", headers={"Authorization": f"token {hub.admin_token}"}, timeout=30
        )
        assert status.status_code == 200, status.text
        kernel = start_kernel(hub, "alice", "pulled")
        out = run_code(hub, "alice", "pulled", kernel, "import os, sys\nprint(sys.executable, os.getuid())\n")
        assert out.split() == [f"{MOUNT}/opt/venv/bin/python3", "1000"], out
        stop(hub, "alice", "pulled")
        wait_gone(hub, "alice", "pulled")
    finally:
        pdb.close()
        if image_exists(ref):
            docker("rmi", "-f", ref)
