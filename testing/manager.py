"""A live manager service for tests: a real process on a free loopback port, keypair-signed calls."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import requests

from jupyter_backendai.core import signing
from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin, launch
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as store
from jupyter_backendai.db.types import utcnow
from jupyter_backendai.storage import FolderStore
from testing.hub import free_port
from testing.sessions import PASSWORD, ProductDB


def sha256(path: Path) -> str:
    """The file's digest, read a MiB at a time (the transfer tests' files reach hundreds of MiB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def end_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``timeout`` s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


class Manager:
    """The running service; ``call`` signs requests with a user's keypair like Backend.AI's client.

    The tests use the defaults; the benchmarks (benchmarks/_manager.py) start it through the
    keyword options: ``unset_env`` names more variables to drop from the environment (besides
    ``JUPYTERHUB_API_URL``, which would make the manager look for a hub), ``env`` sets some,
    ``cwd`` is its working directory (this process's by default), ``transfer_secret`` signs
    its transfer URLs and ``timeout`` bounds the wait for its first answer.
    """

    def __init__(
        self,
        directory: Path,
        pdb: ProductDB,
        extra_args: list[str] | None = None,
        *,
        unset_env: Iterable[str] = (),
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        transfer_secret: str = "test-transfer-secret",
        timeout: float = 30,
    ):
        self.pdb = pdb
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.log_file = directory / "manager.log"
        args = [
            sys.executable, "-m", "jupyter_backendai.manager",
            f"--ManagerApp.db_url={pdb.url}",
            f"--ManagerApp.storage_root={pdb.storage_root}",
            f"--ManagerApp.port={self.port}",
            "--ManagerApp.ip=127.0.0.1",
            *(extra_args or []),
        ]  # fmt: skip
        environ = {**os.environ, "BACKENDAI_TRANSFER_SECRET": transfer_secret}
        for name in ("JUPYTERHUB_API_URL", *unset_env):
            environ.pop(name, None)
        environ.update(env or {})
        self._log = open(self.log_file, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=environ, cwd=cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.close()
                raise RuntimeError(f"the manager exited:\n{self.log_text()}")
            try:
                if requests.get(self.url + "/", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the manager did not answer within {timeout} s:\n{self.log_text()}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        end_process(self.process)
        self._log.close()

    def keys(self, username: str) -> tuple[str, str]:
        def read(db):
            kp = launch.main_keypair(db, admin.get_user(db, username))
            return kp.access_key, kp.secret_key

        return self.pdb.setup(read)

    def call(
        self,
        method: str,
        path: str,
        who: str | tuple[str, str] | None = None,
        *,
        json_body: Any = None,
        date: dt.datetime | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """A request signed with ``who``'s keypair (a user name, or (access key, secret key))."""
        request = requests.Request(method, self.url + path, headers=headers or {}, **kwargs)
        if json_body is not None:
            request.data = json.dumps(json_body)
        prepared = request.prepare()
        if who is not None:
            access, secret = self.keys(who) if isinstance(who, str) else who
            path_with_query = prepared.path_url
            signed = signing.headers(
                access, secret, method, path_with_query, self.host,
                content_type=prepared.headers.get("Content-Type") or "application/json", date=date,
            )  # fmt: skip
            prepared.headers.update({k: v for k, v in signed.items() if k not in (headers or {})})
        with requests.Session() as s:
            return s.send(prepared, timeout=60)


@pytest.fixture
def manager(tmp_path):
    """A manager on a fresh product database; users: ``admin`` (superadmin), ``alice`` and ``bob``."""
    pdb = ProductDB(tmp_path)
    pdb.user("admin@example.com", role="superadmin", username="admin")
    pdb.user("alice@example.com")
    pdb.user("bob@example.com")
    service = Manager(tmp_path, pdb)
    yield service
    service.stop()
    pdb.close()


__all__ = ["PASSWORD", "Manager", "end_process", "manager"]


S = m.SessionStatus


def add_session(
    db: Any,
    username: str,
    name: str,
    status: S,
    slots: dict[str, Any],
    *,
    started: dt.datetime | None = None,
    ended: dt.datetime | None = None,
    agent: str | None = None,
) -> m.Session:
    """A session row as the spawner and the scheduler would have left it."""
    user = admin.get_user(db, username)
    keypair = next(k for k in user.keypairs if k.is_active)
    session = m.Session(
        name=name,
        server_name=name,
        user_id=user.id,
        access_key=keypair.access_key,
        domain_name=user.domain_name,
        group_id=next(iter(user.groups), None).id if user.groups else None,
        scaling_group="default",
        agent_id=agent,
        image="python-local:3",
        requested_slots=admin.parse_slots(slots),
        occupied_slots=admin.parse_slots(slots) if status != S.PENDING else admin.parse_slots({}),
        created_at=started or utcnow(),
    )
    db.add(session)
    store.set_status(db, session, S.PENDING, "queued", at=started)
    if status != S.PENDING:
        store.set_status(db, session, S.RUNNING, "running", at=started)
    if status in m.FINISHED_SESSION_STATUSES:
        store.set_status(db, session, status, "done", at=ended)
    db.flush()
    return session


def running_session(manager: Manager, username: str) -> str:
    """A RUNNING session of the user on the agent (the row the spawners write)."""

    def setup(db):
        user = admin.get_user(db, username)
        keypair = next(k for k in user.keypairs if k.is_active)
        row = m.Session(
            name=f"{username}-nb",
            user_id=user.id,
            access_key=keypair.access_key,
            domain_name=user.domain_name,
            group_id=user.groups[0].id if user.groups else None,
            scaling_group=admin.DEFAULT,
            agent_id="i-node1",
            image="cr.example.com/lab/python:3.11",
            requested_slots=ResourceSlots.parse({"cpu": 2, "mem": "2g"}),
            occupied_slots=ResourceSlots.parse({"cpu": 2, "mem": "2g"}),
        )
        db.add(row)
        db.flush()
        store.set_status(db, row, m.SessionStatus.RUNNING, "test")
        db.add(m.SessionUsage(session_id=row.id, cpu_percent=37.5, mem_bytes=512 * 1024**2))
        return str(row.id)

    return manager.pdb.setup(setup)


def create_folder(manager: Manager, who: str, name: str, **body: Any) -> dict[str, Any]:
    """A folder on the host ``local`` created through the API as ``who`` (``body`` adds to the request)."""
    r = manager.call("POST", "/folders", who, json_body={"name": name, "host": "local", **body})
    assert r.status_code == 201, r.text
    return r.json()


def folder_directory(manager: Manager, folder_id: str) -> Path:
    """Where the folder's files are on this machine."""
    return FolderStore(manager.pdb.storage_root).path("local", folder_id)
