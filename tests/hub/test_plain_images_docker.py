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

import subprocess
import time
import uuid
from urllib.parse import quote

import pytest

import testing.docker
from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.hub.runtime_args import MOUNT
from testing import missing
from testing.docker import (
    IMAGE,
    RUNTIME_DIR,
    build_offline,
    busybox_image,
    check_busybox_session,
    plain_image_problem,
    refused_without_runtime,
)
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
from testing.sessions import (
    ProductDB,
    add_students,
    assert_lab_answers,
    spawn,
    spawn_running,
    stop,
    wait_gone,
    wait_ready,
    wait_status,
)

pytestmark = pytest.mark.docker

NO_USER_IMAGE = "jupyter-backendai-test-plain:no-work-user"
S = m.SessionStatus
#: The hub's settings for sessions of plain images: the product's runtime, built from the session image.
RUNTIME = f"c.DockerSessionSpawner.runtime_dir = {RUNTIME_DIR!r}\nc.DockerSessionSpawner.runtime_image = {IMAGE!r}\n"


@pytest.fixture(scope="module", autouse=True)
def plain_image_tools():
    if problem := plain_image_problem():
        missing(problem, "docker")


def no_user_image() -> str:
    """The session image without its work user and home (a build step, no network)."""
    dockerfile = f"FROM {IMAGE}\nUSER root\nRUN userdel work && rm -rf /home/work\nUSER 1000\n"
    build_offline(NO_USER_IMAGE, dockerfile)
    return NO_USER_IMAGE


@pytest.fixture
def pdb(tmp_path):
    with ProductDB(tmp_path) as pdb:
        pdb.setup(add_students)
        yield pdb


def install(pdb: ProductDB, image: str) -> None:
    pdb.setup(lambda db: admin.upsert_image(db, image, labels={}, installed=True))


def docker_hub(make_hub, pdb, extra: str = ""):
    return testing.docker.docker_hub(make_hub, pdb, RUNTIME + extra)


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
    assert_lab_answers(hub, "alice", "plain")
    assert "python3" in kernel_spec(hub, "alice", "plain")["kernelspecs"]

    # A kernel runs on the runtime's Python, as uid 1000 named work, and writes into the folder.
    # A kernel runs on the runtime's Python, as uid 1000 named work, and writes into the folder.
    check_busybox_session(hub, "alice", "plain", "hello from busybox")

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

    session = spawn_running(hub, pdb, "bob", "nouser", timeout=240, image=image, preset="small")
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

    refused_without_runtime(hub, pdb, "carol", image)


@pytest.mark.timeout(1200)
def test_a_plain_image_from_the_registry_is_installed_and_runs(make_hub, tmp_path, image_registry):
    pdb = ProductDB(tmp_path)
    try:
        pdb.setup(lambda db: add_students(db, sessions=0, shared_memory=None))
        pdb.user("root@example.com", role="superadmin")  # who administers the images
        pdb.user("alice@example.com", policy="student")
        ref = f"{image_registry.address}/lab/plain-busybox-{uuid.uuid4().hex[:6]}:1"
        # A rescan lists images with an ai.backend.* label (as Backend.AI's does): the operator's one label.
        dockerfile = f"FROM {busybox_image()}\nLABEL ai.backend.resource.min.mem=128m\n"
        build_offline(ref, dockerfile, timeout=300)
        docker("push", ref)
        docker("rmi", ref)  # only in the registry now
        add_registry(pdb, image_registry.address)
        hub = manager_docker_hub(make_hub, pdb, RUNTIME)
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
        assert_lab_answers(hub, "alice", "pulled")
        kernel = start_kernel(hub, "alice", "pulled")
        out = run_code(hub, "alice", "pulled", kernel, "import os, sys\nprint(sys.executable, os.getuid())\n")
        assert out.split() == [f"{MOUNT}/opt/venv/bin/python3", "1000"], out
        stop(hub, "alice", "pulled")
        wait_gone(hub, "alice", "pulled")
    finally:
        pdb.close()
        if image_exists(ref):
            docker("rmi", "-f", ref)
