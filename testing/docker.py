"""The Docker engine for tests: is it there, the session image, hubs on it, plain images."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile

from jupyter_backendai.hub.runtime_args import elf_facts
from testing.sessions import hub_config

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
    if not shutil.which("docker"):
        return "no docker client"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        return "no Docker engine answers"
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30).returncode != 0:
        return f"the session image {IMAGE} is not built (images/session/build-offline.sh)"
    if not shutil.which("patchelf"):
        return "patchelf is not installed (Debian package patchelf)"
    if not static_busybox():
        return "no static busybox (Debian package busybox-static)"
    return None


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
