"""The Docker engine for tests: is it there, the session image, hubs on it, plain images."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile

from jupyter_backendai.db import models as m
from jupyter_backendai.hub.runtime_args import MOUNT, elf_facts
from testing.kernel import run_code, start_kernel
from testing.sessions import hub_config, spawn, wait_status

IMAGE = os.environ.get("BACKENDAI_TEST_SESSION_IMAGE", "jupyter-backendai-session:local")


def docker_problem() -> str | None:
    if not shutil.which("docker"):
        return "no docker client"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        return "no Docker engine answers"
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30).returncode != 0:
        return f"the session image {IMAGE} is not built (images/session/build-offline.sh)"
    return None


def docker_hub(make_hub, pdb, extra=""):
    return make_hub(
        hub_config(pdb, "backendai-docker", 'c.DockerSessionSpawner.agent_capacity = {"cpu": 2, "mem": "4g"}\n' + extra)
    )


#: Outside the test's temporary tree: the runtime takes a minute to build and is the same for every run.
RUNTIME_DIR = os.environ.get("BACKENDAI_TEST_RUNTIME_DIR", "/var/tmp/jupyter-backendai-runtime")


BUSYBOX_IMAGE = "jupyter-backendai-test-plain:busybox"


def plain_image_problem() -> str | None:
    """What :func:`docker_problem` says, or what the plain images' tests need beyond it."""
    if problem := docker_problem():
        return problem
    if not shutil.which("patchelf"):
        return "patchelf is not installed (Debian package patchelf)"
    if not static_busybox():
        return "no static busybox (Debian package busybox-static)"
    return None


def build_offline(tag: str, dockerfile: str, timeout: float = 600) -> None:
    """Build ``tag`` from ``dockerfile`` (no context) with the legacy builder and no network."""
    done = subprocess.run(
        ["docker", "build", "--network", "none", "-q", "-t", tag, "-"],
        input=dockerfile.encode(),
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    assert done.returncode == 0, done.stderr


def static_busybox() -> str | None:
    path = shutil.which("busybox")
    if path is None:
        return None
    with open(path, "rb") as f:
        facts = elf_facts(f)
    return path if facts is not None and facts.interpreter is None else None


def busybox_image() -> str:
    """An image of nothing but a static busybox (imported once; two megabytes)."""
    if subprocess.run(["docker", "image", "inspect", BUSYBOX_IMAGE], capture_output=True, timeout=30).returncode == 0:
        return BUSYBOX_IMAGE
    busybox = static_busybox()
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d, mode in (("bin", 0o755), ("tmp", 0o1777)):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        tar.add(busybox, "bin/busybox")
        for applet in applets:
            if applet != "busybox":
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
    # An entry point of its own and a PYTHONHOME: the session must run neither into the one nor by the other.
    done = subprocess.run(
        ["docker", "import",
         "-c", 'ENTRYPOINT ["/bin/sh", "-c", "echo the image entry point ran; exit 3"]',
         "-c", "ENV PYTHONHOME=/nonexistent", "-c", "ENV PATH=/bin",
         "-", BUSYBOX_IMAGE],
        input=buf.getvalue(), capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return BUSYBOX_IMAGE


def check_busybox_session(hub, user: str, server: str, note: str) -> None:
    """What a kernel in a session of :func:`busybox_image` sees: the runtime's Python, uid 1000
    named work (the image's own ``id`` knows it) in its home, no Python or C library of the image's
    own, the preset's 512 MiB and the runtime read-only; it writes ``note`` into the folder data."""
    kernel = start_kernel(hub, user, server)
    out = run_code(
        hub,
        user,
        server,
        kernel,
        "import os, sys, pwd, subprocess\n"
        f"open('/home/work/data/from-kernel.txt', 'w').write({note + chr(10)!r})\n"
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
    assert lines[3] == "work", out  # the image's own `id` knows the user (an /etc/passwd entry)
    assert lines[4] == str(512 * 1024**2), out  # the preset's memory limit holds
    assert lines[5] == "ro 30", out  # EROFS: the runtime is mounted read-only
    assert lines[6] == "1000 True", out  # the home is the user's


def refused_without_runtime(hub, pdb, user: str, image: str) -> m.Session:
    """A session of the plain ``image`` on a hub that never supplies the runtime: it ends in ERROR, saying why."""
    r = spawn(hub, user, "never", image=image, preset="small")
    assert r.status_code in (201, 202, 400, 500), r.text
    session = wait_status(pdb, user, "never", m.SessionStatus.ERROR, timeout=120)
    reason = session.history[-1].reason if session.history else ""
    assert "no jupyterhub-singleuser" in (reason or "") and "supply_runtime 'never'" in reason, reason
    return session
