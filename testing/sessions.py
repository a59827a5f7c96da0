"""Helpers for the session tests: a product database with users, and spawning through the hub's API."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from jupyter_backendai.cli import upgrade_with_defaults
from jupyter_backendai.db import admin, connect, sshkeys
from jupyter_backendai.db import folders as folder_db
from jupyter_backendai.db import models as m
from jupyter_backendai.db.encryption import ENV_KEY, ENV_KEY_FILE
from jupyter_backendai.hub import TEMPLATES
from testing import answers, wait_for
from testing.client import CLI, require_client
from testing.db import use_fresh_db_key
from testing.hub import Hub, free_port

PASSWORD = "S3cret!pw"
# Where the proxy routes the manager (as jupyterhub_config.py names the service), and what the
# manager needs of the hub's API to start and stop sessions for its users.
PREFIX = "/services/backendai"
SERVICE_SCOPES = ["admin:users", "admin:servers", "list:users", "read:users", "access:servers"]


class ProductDB:
    """The product's database for a test, with shortcuts to set it up and read it back."""

    def __init__(self, directory: Path, url: str | None = None):
        """On a SQLite file in ``directory``, or on the empty database at ``url`` (PostgreSQL)."""
        if not (os.environ.get(ENV_KEY) or os.environ.get(ENV_KEY_FILE)):
            use_fresh_db_key()  # a benchmark outside pytest: one key for its run, hubs included
        self.url = url or f"sqlite:///{directory / 'backendai.sqlite'}"
        upgrade_with_defaults(self.url)
        self.factory = connect(self.url)
        self.storage_root = directory / "storage"
        self.sessions_root = session_homes_dir()

    def __call__(self):
        return self.factory()

    def setup(self, fn):
        with self.factory() as db:
            result = fn(db)
            db.commit()
            return result

    def user(self, email: str, policy: str = "default", **kw) -> str:
        return self.setup(lambda db: admin.create_user(db, email, PASSWORD, policy=policy, **kw)[0].username)

    def folder(self, username: str, name: str) -> str:
        return self.setup(lambda db: str(folder_db.create_folder(db, admin.get_user(db, username), name).id))

    def keys(self, username: str) -> tuple[str, str]:
        """The user's active keypair: access key and secret key."""

        def read(db: Any) -> tuple[str, str]:
            kp = next(k for k in admin.get_user(db, username).keypairs if k.is_active)
            return kp.access_key, kp.secret_key

        return self.setup(read)

    def sessions(self, username: str) -> list[m.Session]:
        with self.factory() as db:
            user = admin.get_user(db, username)
            rows = db.scalars(
                select(m.Session).where(m.Session.user_id == user.id).order_by(m.Session.created_at)
            ).all()
            for row in rows:
                _ = [h.status for h in row.history]  # load before the session closes
            return list(rows)

    def session(self, username: str, name: str) -> m.Session:
        matching = [s for s in self.sessions(username) if s.server_name == name]
        assert matching, f"no session {name!r} of {username}"
        return matching[-1]

    def close(self):
        self.factory.kw["bind"].dispose()
        shutil.rmtree(self.sessions_root, ignore_errors=True)

    def __enter__(self) -> ProductDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The labels of an image whose sessions need half a CPU and 256 MiB at the least.
MIN_LABELS = {"ai.backend.resource.min.cpu": "0.5", "ai.backend.resource.min.mem": "256m"}


def add_students(
    db: Any,
    *,
    slots: dict[str, Any] | None = None,
    sessions: int = 3,
    shared_memory: str | None = "64m",
    image: str | None = None,
    labels: dict[str, str] = MIN_LABELS,
) -> None:
    """What the session tests start from: the keypair policy "student" (``slots``, 2 CPU and 2 GiB
    unless given; ``sessions`` at once) and the preset "small" (1 CPU, 512 MiB, ``shared_memory``),
    with ``image`` installed (its ``labels``) where given."""
    admin.create_policy(
        db, "student", total_resource_slots=slots or {"cpu": 2, "mem": "2g"}, max_concurrent_sessions=sessions
    )
    admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"}, shared_memory=shared_memory)
    if image is not None:
        admin.upsert_image(db, image, labels=labels, installed=True)


def session_homes_dir() -> Path:
    """A new directory for local sessions' homes, outside pytest's temporary tree.

    A root hub runs local sessions as accounts of their own, which must pass every directory
    above their homes; pytest keeps its tree 0700 (and closes it again whenever a pytest starts).
    """
    path = Path(tempfile.mkdtemp(prefix="backendai-sessions-"))
    path.chmod(0o711)
    return path


def hub_config(pdb: ProductDB, spawner: str, extra: str = "") -> str:
    cls = {
        "backendai-local": "LocalSessionSpawner",
        "backendai-docker": "DockerSessionSpawner",
        "backendai-swarm": "SwarmSessionSpawner",
        "backendai-kubernetes": "KubeSessionSpawner",
    }[spawner]
    return f"""
c.JupyterHub.authenticator_class = "backendai"
c.BackendAIAuthenticator.db_url = {pdb.url!r}
c.JupyterHub.template_paths = [{TEMPLATES!r}]
c.JupyterHub.spawner_class = {spawner!r}
c.JupyterHub.allow_named_servers = True
c.JupyterHub.default_url = "/hub/home"
c.{cls}.db_url = {pdb.url!r}
c.{cls}.storage_root = {str(pdb.storage_root)!r}
c.LocalSessionSpawner.sessions_root = {str(pdb.sessions_root)!r}
c.{cls}.scheduler_interval = 0.5
c.JupyterHub.last_activity_interval = 5
# The API answers 202 for a spawn still queued after 2 s instead of holding the request 10 s.
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 2}}
# As jupyterhub_config.py: users' and sessions' own tokens may call the manager.
from jupyter_backendai.hub.roles import session_roles as _session_roles
c.JupyterHub.load_roles.extend(_session_roles())
{extra}
"""


def manager_hub_config(
    pdb: ProductDB,
    *,
    capacity: dict[str, Any] | None = None,
    endpoint: str | None = None,
    environment: dict[str, str] | None = None,
    lab: bool = False,
    oauth_no_confirm: bool = False,
    extra: str = "",
    spawner: str = "backendai-local",
) -> str:
    """A hub configuration (local backend unless ``spawner`` says) whose managed service ``backendai`` is the manager.

    ``capacity`` is the local agent's (4 CPU, 8 GiB unless given). ``endpoint`` says how sessions
    reach the manager in ``$BACKENDAI_ENDPOINT``: ``"proxy"`` through the hub's proxy (as
    jupyterhub_config.py sets it), ``"direct"`` at the service's own port, ``None`` not at all;
    ``environment`` adds to the sessions' environment. ``lab`` opens sessions at /lab.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "jupyter_backendai.manager",
        f"--ManagerApp.db_url={pdb.url}", f"--ManagerApp.storage_root={pdb.storage_root}",
    ]  # fmt: skip
    service: dict[str, Any] = {
        "name": "backendai",
        "url": f"http://127.0.0.1:{port}",
        "command": command,
        "api_token": secrets.token_hex(32),
    }
    if oauth_no_confirm:
        service["oauth_no_confirm"] = True
    lines = [f"c.LocalSessionSpawner.agent_capacity = {capacity or {'cpu': 4, 'mem': '8g'}!r}"]
    if lab:
        lines.append('c.Spawner.default_url = "/lab"')
    env = []
    if endpoint == "proxy":
        env.append(f'"BACKENDAI_ENDPOINT": c.JupyterHub.bind_url.rstrip("/") + {PREFIX!r}')
    elif endpoint == "direct":
        env.append(f'"BACKENDAI_ENDPOINT": {f"http://127.0.0.1:{port}{PREFIX}"!r}')
    elif endpoint is not None:
        raise ValueError(f"endpoint {endpoint!r}: 'proxy', 'direct' or None")
    if environment:
        env.append(f"**{environment!r}")
    if env:
        lines.append(f"c.Spawner.environment = {{{', '.join(env)}}}")
    lines += [
        f"c.JupyterHub.services.append({service!r})",
        # JupyterHub does not pass its own environment on to services: the key of the database's
        # secrets, as the hub process finds it, goes explicitly, as in jupyterhub_config.py.
        "from jupyter_backendai.db.encryption import key_environment as _key_environment",
        'c.JupyterHub.services[-1]["environment"] = _key_environment()',
        "c.JupyterHub.load_roles.append("
        f'{{"name": "backendai-service", "services": ["backendai"], "scopes": {SERVICE_SCOPES!r}}})',
        extra,
    ]
    return hub_config(pdb, spawner, "\n".join(lines))


def wait_for_manager(hub, timeout: float = 30) -> None:
    """Until the manager answers through the proxy: the hub starts its services and adds their
    routes after it is up itself."""
    wait_for(
        lambda: answers(f"{hub.url}{PREFIX}/"), timeout,
        lambda: f"the manager service did not answer through the proxy:\n{hub.log_tail(80)}", interval=0.3,
    )  # fmt: skip


def start_hub_with_manager(make_hub, pdb: ProductDB, **config: Any):
    """A started hub from :func:`manager_hub_config` (``make_hub`` stops it), once the manager answers."""
    hub = make_hub(manager_hub_config(pdb, **config))
    wait_for_manager(hub)
    return hub


def spawn(hub, user: str, server: str, **options) -> requests.Response:
    """Start a named server as the hub's API would for the user (creating the hub user first)."""
    created = hub.api("POST", f"/users/{user}")
    assert created.status_code in (201, 409), created.text
    return hub.api("POST", f"/users/{user}/servers/{server}", json=options, timeout=60)


def server_model(hub, user: str, server: str) -> dict | None:
    return hub.api("GET", f"/users/{user}").json().get("servers", {}).get(server)


def wait_ready(hub, user: str, server: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = server_model(hub, user, server)
        if model and model.get("ready"):
            return model
        time.sleep(0.5)
    raise AssertionError(f"{user}/{server} not ready after {timeout} s; last: {model}\n{hub.log_tail(80)}")


def wait_gone(hub, user: str, server: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_model(hub, user, server) is None:
            return
        time.sleep(0.5)
    raise AssertionError(f"{user}/{server} still there after {timeout} s\n{hub.log_tail(60)}")


def wait_status(pdb: ProductDB, user: str, server: str, status: m.SessionStatus, timeout: float = 60) -> m.Session:
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        try:
            row = pdb.session(user, server)
        except AssertionError:
            row = None
        if row is not None and row.status == status:
            return row
        time.sleep(0.3)
    raise AssertionError(f"session {user}/{server} is {row.status if row else None}, not {status}")


def stop(hub, user: str, server: str) -> requests.Response:
    return hub.api("DELETE", f"/users/{user}/servers/{server}", timeout=60)


def spawn_running(hub, pdb: ProductDB, user: str, server: str, timeout: float = 90, **options) -> m.Session:
    """Start a named server (``options`` as :func:`spawn`'s), wait until it is ready; its session, RUNNING."""
    r = spawn(hub, user, server, **options)
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, user, server, timeout=timeout)
    return wait_status(pdb, user, server, m.SessionStatus.RUNNING)


def stop_ended(hub, pdb: ProductDB, user: str, server: str, timeout: float = 60) -> m.Session:
    """Stop a named server, wait until the hub forgets it; its session, TERMINATED."""
    stop(hub, user, server)
    wait_gone(hub, user, server, timeout=timeout)
    return wait_status(pdb, user, server, m.SessionStatus.TERMINATED)


def progress_until(hub, user: str, server: str, *marks: bytes, timeout: float = 10) -> bytes:
    """The server's progress stream as JupyterHub sends it, read until it holds one of ``marks``."""
    progress = hub.api("GET", f"/users/{user}/servers/{server}/progress", stream=True, timeout=timeout)
    seen = b""
    try:
        for chunk in progress.iter_content(chunk_size=None):
            seen += chunk
            if any(mark in seen for mark in marks):
                break
    finally:
        progress.close()
    return seen


def progress_events(hub, user: str, server: str, timeout: float) -> list[dict[str, Any]]:
    """The server's progress events up to the first that says it is ready or failed (or ``timeout``)."""
    progress = hub.api("GET", f"/users/{user}/servers/{server}/progress", stream=True, timeout=timeout)
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        for line in progress.iter_lines():
            if line.startswith(b"data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("failed") or events[-1].get("ready") or time.monotonic() > deadline:
                    break
    finally:
        progress.close()
    return events


def assert_lab_answers(hub, user: str, server: str) -> None:
    """The session's Jupyter server answers through the proxy."""
    status = requests.get(
        f"{hub.url}/user/{user}/{server}/api/status", headers={"Authorization": f"token {hub.admin_token}"}, timeout=30
    )
    assert status.status_code == 200, status.text


def contents(hub, user: str, server: str, path: str, method: str = "GET", **kw) -> requests.Response:
    """The session's Jupyter contents API through the proxy, with the hub's admin token."""
    url = f"{hub.url}/user/{user}/{server}/api/contents/{path}"
    return requests.request(method, url, headers={"Authorization": f"token {hub.admin_token}"}, timeout=30, **kw)


def keypair_call(
    base: str, access_key: str, secret_key: str, method: str, path: str, json_body: Any = None, timeout: float = 120
) -> requests.Response:
    """A request to the manager at ``base`` + ``path`` signed with a keypair, as Backend.AI's client signs it
    (the signature covers the path as the manager sees it, prefix included, and the Host)."""
    from jupyter_backendai.core import signing

    request = requests.Request(method, base.rstrip("/") + path, json=json_body).prepare()
    host = request.url.split("://", 1)[1].split("/", 1)[0]
    request.headers.update(
        signing.headers(
            access_key, secret_key, method, request.path_url, host,
            content_type=request.headers.get("Content-Type") or "application/json",
        )
    )  # fmt: skip
    with requests.Session() as s:
        return s.send(request, timeout=timeout)


class HubWithManager:
    """A hub whose ``backendai`` service is the manager; ``call`` signs like Backend.AI's client."""

    def __init__(self, hub: Hub, pdb: ProductDB):
        self.hub = hub
        self.pdb = pdb

    def keys(self, username: str) -> tuple[str, str]:
        return self.pdb.keys(username)

    def call(self, method: str, path: str, who: str, json_body: Any = None, timeout: float = 120) -> requests.Response:
        """A keypair-signed request through the proxy (the signature covers the prefixed path)."""
        access, secret = self.keys(who)
        return keypair_call(self.hub.url + PREFIX, access, secret, method, path, json_body, timeout)

    def wait_status(self, who: str, name: str, wanted: set[str], timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            r = self.call("GET", f"/session/{name}", who)
            last = r.json()
            if r.status_code == 200 and last["status"] in wanted:
                return last
            time.sleep(0.5)
        raise AssertionError(f"session {name} of {who} not in {wanted}: {last}\n{self.hub.log_tail(60)}")


def agents(pdb: ProductDB) -> dict[str, m.Agent]:
    """The agents in the database, by id."""
    with pdb() as db:
        return {a.id: a for a in db.scalars(select(m.Agent))}


def wait_agents(pdb: ProductDB, check: Any, timeout: float = 30) -> dict[str, m.Agent]:
    """The agents, once ``check(agents)`` is true."""
    return wait_for(
        lambda: (lambda found: found if check(found) else None)(agents(pdb)), timeout,
        lambda: "agents not as expected: " + str(
            {a.id: (a.status, a.scaling_group, a.schedulable, a.available_slots) for a in agents(pdb).values()}
        ),
        interval=0.3,
    )  # fmt: skip


#: What the tests' ssh and sftp clients are told besides the key: no host key to check or keep, no prompts.
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]  # fmt: skip


def downloaded_key(browser: requests.Session, hub, pdb: ProductDB, user: str, server: str, directory: Path) -> Path:
    """The session's ``id_container`` as its owner (logged in with ``browser``) downloads it: the
    user's key in the database, saved (mode 0600) in ``directory``."""
    download = browser.get(f"{hub.url}/user/{user}/{server}/files/id_container?download=1", timeout=60)
    assert download.status_code == 200 and "OPENSSH PRIVATE KEY" in download.text, download.text[:300]
    assert download.text == pdb.setup(lambda db: sshkeys.get_or_create(db, admin.get_user(db, user)).private_key)
    key = directory / "id_container"
    key.write_text(download.text)
    key.chmod(0o600)
    return key


def session_process_env(session_id: str, timeout: float = 30) -> dict[str, str]:
    """The environment of the session's server process (the local backend runs it on this host)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in psutil.process_iter():
            try:
                env = proc.environ()
            except (psutil.Error, OSError):
                continue
            if env.get("BACKENDAI_SESSION_ID") == session_id:
                return env
        time.sleep(0.5)
    raise AssertionError(f"no process of session {session_id}")


def client_logs(backendai: HubWithManager, who: str, session: str) -> subprocess.CompletedProcess:
    """``backend.ai session logs`` as ``who``, against the manager behind the hub's proxy."""
    require_client()
    access, secret = backendai.keys(who)
    env = {
        **os.environ,
        "BACKEND_ENDPOINT": backendai.hub.url + PREFIX,
        "BACKEND_ACCESS_KEY": access,
        "BACKEND_SECRET_KEY": secret,
        "BACKEND_ENDPOINT_TYPE": "api",
    }
    return subprocess.run([str(CLI), "session", "logs", session], capture_output=True, text=True, env=env, timeout=60)


def wait_logs(backendai: HubWithManager, who: str, ref: str, wanted: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = backendai.call("GET", f"/session/{ref}/logs", who)
        assert r.status_code == 200, r.text
        answer = r.json()
        if wanted in answer["result"]["logs"] or time.monotonic() > deadline:
            assert wanted in answer["result"]["logs"], answer
            return answer
        time.sleep(0.3)


def failed_start(hub, user: str, server: str, timeout: float) -> dict[str, Any]:
    """Start a server of the "small" preset whose Python cannot start (its PYTHONHOME is nowhere);
    the progress event that says it failed, why, and the end of its output."""
    r = spawn(hub, user, server, preset="small", environ={"PYTHONHOME": "/nowhere"})
    assert r.status_code in (201, 202, 500), r.text
    events = progress_events(hub, user, server, timeout)
    failed = events[-1]
    assert failed.get("failed"), events
    message = failed["message"]
    assert "the session's container exited with status 1 before its server listened" in message, message
    # The last lines of its output, as Python wrote them.
    assert "Fatal Python error: init_fs_encoding" in message and "sys.prefix = '/nowhere'" in message, message
    assert "<pre" in failed["html_message"] and "sys.prefix = &#x27;/nowhere&#x27;" in failed["html_message"]
    return failed


def kept_logs(backendai: HubWithManager, who: str, session_id: Any, status: str) -> str:
    """The output of a session that ended in ``status``, read as ``who``: all of it, not only its end."""
    kept = backendai.call("GET", f"/session/{session_id}/logs", who).json()["result"]
    assert kept["status"] == status, kept
    return kept["logs"]


def terminate(backendai: HubWithManager, who: str, session_id: str) -> None:
    """End a session through the manager as ``who``."""
    deleted = backendai.call("DELETE", f"/session/{session_id}", who)
    assert deleted.status_code == 200 and deleted.json()["status"] == "TERMINATED", deleted.text


def assert_output_kept(backendai: HubWithManager, who: str, session_id: str, marker: str) -> str:
    """A terminated session's output, still there: ``marker`` and the server's first and last words."""
    logs = kept_logs(backendai, who, session_id, "TERMINATED")
    assert marker in logs and "Jupyter Server" in logs
    assert "Shutting down" in logs, logs[-2000:]
    return logs
