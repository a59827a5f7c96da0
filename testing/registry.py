"""A real registry for the image tests: Debian's ``docker-registry``, images pushed to it, a slow link.

* :func:`running_registry` serves Docker Distribution on an address of the test's choosing
  (loopback for the hub's engine; the swarm's bridge for its nodes); the ``image_registry``
  fixture is one for the whole run (a plugin that tests/conftest.py loads).
* :func:`push_session_variant` builds, offline, an image ``FROM`` the session image with one
  new layer of random bytes (so that a pull has something to download and report) and a label,
  pushes it, and removes it from the local engine again.
* :class:`SlowLink` is a TCP relay that hands the registry's answers on at a bounded rate, so
  that a pull lasts long enough for its progress to be seen (a loopback pull of a few MiB is
  over before the first progress write).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing import answers, missing, wait_for
from testing.docker import IMAGE as SESSION_IMAGE
from testing.docker import docker_problem
from testing.hub import free_port
from testing.sessions import PREFIX, ProductDB, keypair_call, start_hub_with_manager


def unavailable(reason: str) -> None:
    missing(reason, "docker")


def docker(*args: str, stdin: bytes | None = None, timeout: float = 300, host: str | None = None) -> str:
    cmd = ["docker", *(["-H", host] if host else []), *args]
    result = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)}: {result.stderr.decode(errors='replace')}"
    return result.stdout.decode(errors="replace")


def image_exists(ref: str, host: str | None = None) -> bool:
    cmd = ["docker", *(["-H", host] if host else []), "image", "inspect", ref]
    return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0


@contextlib.contextmanager
def running_registry(directory: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Docker Distribution listening on ``host``:<free port>, storing under ``directory``; yields host:port.

    Several may serve one ``directory`` (on different addresses): what is pushed to one, the
    others serve.
    """
    binary = shutil.which("docker-registry")
    if binary is None:
        unavailable("docker-registry is not installed (apt-get install -y docker-registry)")
    if problem := docker_problem():
        unavailable(problem)
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    config = directory / f"registry-{host}-{port}.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {host}:{port}\n"
    )
    log_path = directory / f"registry-{host}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        up = wait_for(
            lambda: "exited" if process.poll() is not None else answers(f"http://{host}:{port}/v2/"),
            20, lambda: f"docker-registry did not start:\n{log_path.read_text()}", interval=0.2,
        )  # fmt: skip
        if up == "exited":
            pytest.fail(f"docker-registry did not start:\n{log_path.read_text()}")
        yield f"{host}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass(frozen=True)
class Registry:
    """A registry on loopback (``address``, where the host's engine pushes) and its storage."""

    address: str
    directory: Path

    def also_on(self, host: str) -> contextlib.AbstractContextManager[str]:
        """The same registry served on another address too (for engines that cannot reach loopback)."""
        return running_registry(self.directory, host)


@pytest.fixture(scope="session")
def image_registry(tmp_path_factory) -> Iterator[Registry]:
    """One registry for the test run: the session image's layers are pushed to it once (a minute
    and a half of compressing on two cores), and every variant after that adds only its layer."""
    directory = tmp_path_factory.mktemp("image-registry")
    with running_registry(directory) as address:
        yield Registry(address, directory)


def push_session_variant(registry: str, repo: str, directory: Path, *, size_mib: int = 12) -> str:
    """Build ``registry/repo`` FROM the session image plus ``size_mib`` MiB of random bytes, push
    it, and remove it (and its new layer) from the host's engine; returns the pushed reference."""
    context = directory / f"build-{uuid.uuid4().hex[:8]}"
    context.mkdir(parents=True)
    (context / "blob").write_bytes(os.urandom(size_mib * 1024 * 1024))
    (context / "Dockerfile").write_text(
        f"FROM {SESSION_IMAGE}\nCOPY blob /opt/pulled-blob\nLABEL ai.backend.test.pulled={repo}\n"
    )
    local = f"jba-test-pulled-{uuid.uuid4().hex[:10]}:1"
    remote = f"{registry}/{repo}"
    try:
        docker("build", "-q", "-t", local, str(context))
        docker("tag", local, remote)
        docker("push", remote)
    finally:
        subprocess.run(["docker", "rmi", "-f", remote, local], capture_output=True, timeout=120)
        shutil.rmtree(context, ignore_errors=True)
    return remote


class SlowLink:
    """A TCP relay on ``listen_host``:<port> to ``target``, passing answers on at ``rate`` bytes/s
    per connection (requests go through unslowed)."""

    def __init__(self, target: str, *, rate: int, listen_host: str = "127.0.0.1"):
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.rate = rate
        self.server = socket.create_server((listen_host, 0))
        self.address = f"{listen_host}:{self.server.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> SlowLink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.server.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.rate), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, rate: int | None) -> None:
        chunk = 16 * 1024
        try:
            while not self._stop.is_set():
                data = src.recv(chunk)
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            # Both directions end; each pump closes the socket it reads (the other may still write).
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            src.close()


def add_registry(pdb: ProductDB, address: str) -> None:
    """The registry, as an administrator adds it, allowed to the default domain."""

    def run(db):
        admin.add_registry(db, address, f"http://{address}")
        domain = db.get(m.Domain, "default")
        domain.allowed_docker_registries = [*(domain.allowed_docker_registries or []), address]

    pdb.setup(run)


def manager_docker_hub(make_hub, pdb: ProductDB, extra: str = ""):
    """A hub on the Docker backend with the manager service; the engine's agent registers at start."""
    return start_hub_with_manager(make_hub, pdb, spawner="backendai-docker", extra=f"""
c.DockerSessionSpawner.agent_capacity = {{"cpu": 2, "mem": "4g"}}
c.DockerSessionSpawner.agent_heartbeat_interval = 2
c.DockerSessionSpawner.image_poll_interval = 0.5
from jupyter_backendai.hub.first_run import register_agent_at_start as _register
_register(c, "docker")
{extra}
""")  # fmt: skip


def admin_call(hub, pdb, method: str, path: str, body=None) -> requests.Response:
    """A request to the manager behind ``hub`` as the superadmin ``root``."""
    return keypair_call(hub.url + PREFIX, *pdb.keys("root"), method, path, body)


def images_by_ref(hub, pdb) -> dict[str, dict]:
    r = admin_call(hub, pdb, "GET", "/admin/images")
    assert r.status_code == 200, r.text
    return {i["reference"]: i for i in r.json()["images"]}


def docker_agent(pdb) -> str:
    def registered() -> str | None:
        with pdb() as db:
            return db.scalar(select(m.Agent.id).where(m.Agent.version == "docker"))

    return wait_for(registered, 30, "the Docker agent did not register", interval=0.3)
