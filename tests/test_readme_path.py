"""The README's path on its defaults, as a new operator and new users walk it.

The hub is started exactly as README.md's "Run the product" says (``jupyterhub -f
jupyterhub_config.py``, the repository's own file) in a fresh, empty directory: no bootstrap,
no policy edits, the embedded defaults. Only the public port and the manager's port are moved
off 8000/8090 through the variables the README documents, so that the test does not collide
with anything on the machine. Then, in Chromium:

1. the printed ``admin`` logs in, changes the required password, lands on /hub/home, starts a
   session from the spawn form with the default preset, reaches JupyterLab, opens the Sessions
   and the Data & Storage panels, creates a folder and terminates the session;
2. a user made with the operator CLI on the default policy does the same;
3. that user's keypair starts and deletes a session with a signed ``POST /session``.

Any 5xx answer or uncaught exception in the hub's or the manager's log fails the test. It runs
on the default SQLite database and, with ``$BACKENDAI_DB_URL``, on PostgreSQL.

With the Swarm backend, on the tests' three-engine swarm (testing/swarm.py):

as above, but the hub is started as README.md's "Sessions on a Docker Swarm"
block says: its ``export`` lines (``DOCKER_HOST`` at the manager, ``BACKENDAI_BACKEND=swarm``,
``BACKENDAI_HUB_IP`` and ``JUPYTERHUB_BIND_URL`` on an address the nodes route to, here the
swarm's bridge) and ``jupyterhub -f jupyterhub_config.py`` in an empty directory. The printed
admin and a user made with the CLI each go from the spawn form to JupyterLab (on a node) and
back; the user's keypair starts and deletes a session. Any 5xx or uncaught exception in the
hub's or the manager's log fails the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from testing.hub import ARTIFACTS_DIR, REPO_ROOT, free_port, not_installed, screenshot
from testing.sessions import keypair_call
from testing.swarm import BRIDGE_IP, Swarm

# A real hub as the README starts it, through its whole path in Chromium: minutes.
pytestmark = pytest.mark.slow

RUN_TIMEOUT = 180_000  # ms: a session on a 2-core machine, from the form to JupyterLab
NEW_PASSWORD = "Walked-the-README-1"
#: What the hub and the manager log for a server error, and what tornado logs for a crash.
SERVER_ERROR = re.compile(r"\b5\d\d (GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) |Uncaught exception")


def readme_run_commands() -> list[str]:
    """The commands of README.md's "Run the product" block, without comments."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Run the product", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines() if line.split("#", 1)[0].strip()]


class ReadmeHub:
    """``jupyterhub -f <repo>/jupyterhub_config.py`` in an empty directory, as the README runs it."""

    def __init__(self, directory: Path, db_url: str | None):
        self.dir = directory
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = self.dir / "jupyterhub.log"
        proxy = shutil.which("configurable-http-proxy")
        if proxy is None:
            not_installed("configurable-http-proxy (npm install -g configurable-http-proxy)")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKENDAI_", "JUPYTERHUB_"))}
        self.env["PATH"] = os.pathsep.join(
            [str(Path(proxy).parent), str(Path(sys.executable).parent), self.env["PATH"]]
        )
        self.env["JUPYTERHUB_BIND_URL"] = self.url
        self.env["BACKENDAI_MANAGER_PORT"] = str(free_port())
        if db_url:
            self.env["BACKENDAI_DB_URL"] = db_url
        self.db_url = db_url or f"sqlite:///{self.dir / 'jupyter_backendai.sqlite'}"
        self.process: subprocess.Popen | None = None
        #: (log offset, URL prefix) of sessions being terminated from their own lab.
        self.ending: list[tuple[int, str]] = []

    def start(self, timeout: float = 90) -> str:
        """Start the hub; returns the admin password it printed."""
        commands = readme_run_commands()
        assert "jupyterhub -f jupyterhub_config.py" in commands, commands
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(REPO_ROOT / "jupyterhub_config.py")],
                cwd=self.dir, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"the hub exited while starting:\n{self.log()[-4000:]}"
            try:
                if requests.get(f"{self.url}/services/backendai/openapi.json", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"the hub and its manager did not answer:\n{self.log()[-4000:]}"
            time.sleep(0.5)
        found = re.search(r"with the password\s+(\S+)", self.log())
        assert found, f"no admin password printed:\n{self.log()[:3000]}"
        return found.group(1)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def server_errors(self) -> list[str]:
        """5xx answers and crashes in the log, except the proxy's 503 for a session's own URLs once
        that session was being terminated (a lab still open polls a server that is going away)."""
        errors, at = [], 0
        for line in self.log().splitlines(keepends=True):
            ending = [path for offset, path in self.ending if offset <= at]
            at += len(line)
            if not SERVER_ERROR.search(line):
                continue
            if "[ConfigProxy]" in line and " 503 " in line and any(path in line for path in ending):
                continue
            errors.append(line.rstrip())
        return errors

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Rows of a plain SQL query on the product's database (no key needed: nothing secret read)."""
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        finally:
            engine.dispose()

    def session_status(self, username: str, name: str) -> str | None:
        rows = self.query(
            "SELECT s.status FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE u.username = :user AND s.name = :name ORDER BY s.created_at",
            user=username, name=name,
        )  # fmt: skip
        return str(rows[-1][0]) if rows else None

    def wait_session(self, username: str, name: str, wanted: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while (status := self.session_status(username, name)) != wanted:
            assert time.monotonic() < deadline, f"session {name} of {username} is {status}, not {wanted}"
            time.sleep(1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def readme_hub(request, tmp_path):
    """The default SQLite file, or an empty PostgreSQL database named by ``$BACKENDAI_DB_URL``."""
    from testing.db import postgres_database

    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(postgres_database("jba_readme")) if request.param == "postgresql" else None
        hub = ReadmeHub(tmp_path / "fresh", db_url)
        try:
            yield hub
        finally:
            # Kept for a look after a failure: the sessions' logs (before the hub removes them) and
            # the hub's (with the manager's).
            keep = ARTIFACTS_DIR / f"readme-path-{request.param}"
            keep.mkdir(parents=True, exist_ok=True)
            containers = _session_containers(hub)
            for cid in containers:
                logs = subprocess.run(["docker", "logs", cid], capture_output=True, text=True, timeout=60)
                (keep / f"session-{cid[:12]}.log").write_text(logs.stdout + logs.stderr)
            hub.stop()
            if hub.log_file.exists():
                shutil.copy(hub.log_file, keep / "jupyterhub.log")
            containers = _session_containers(hub)
            if containers:
                subprocess.run(["docker", "rm", "-f", *containers], capture_output=True, timeout=60)


def _session_containers(hub: ReadmeHub) -> list[str]:
    """The containers of this hub's sessions that still exist (other tests' are left alone)."""
    if not shutil.which("docker") or not hub.log_file.exists():
        return []
    try:
        ids = [row[0] for row in hub.query("SELECT container_id FROM sessions WHERE container_id IS NOT NULL")]
    except Exception:  # noqa: BLE001 - no database yet (the hub failed early)
        return []
    done = subprocess.run(["docker", "ps", "-aq", "--no-trunc"], capture_output=True, text=True, timeout=60)
    running = set(done.stdout.split())
    return [cid for cid in ids if cid in running]


def _open_panel(page: Any, panel_id: str) -> Any:
    tab = page.locator(f'.jp-SideBar li[data-id="{panel_id}"]')
    tab.wait_for(timeout=RUN_TIMEOUT)
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    panel = page.locator(f"#{panel_id}")
    panel.wait_for(state="visible")
    return panel


def _login(page: Any, hub: ReadmeHub, name: str, password: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")


def _session_from_the_form_to_terminated(page: Any, hub: ReadmeHub, user: str, session: str, folder: str) -> None:
    """Spawn form → JupyterLab → Sessions and Data & Storage panels → new folder → terminate."""
    home = page.goto(f"{hub.url}/hub/home")
    assert home.status == 200, hub.log()[-3000:]
    form = page.goto(f"{hub.url}/hub/spawn/{user}/{session}")
    assert form.status == 200, hub.log()[-3000:]
    page.wait_for_selector("#backendai-spawn-form")
    screenshot(page, f"{user}-spawn-form")
    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    page.wait_for_url(re.compile(rf"/user/{user}/{session}/lab"), timeout=RUN_TIMEOUT)

    sessions = _open_panel(page, "backendai-sessions")
    sessions.locator(f'[data-session-name="{session}"] .jp-BackendAI-status-RUNNING').wait_for(timeout=RUN_TIMEOUT)
    storage = _open_panel(page, "backendai-storage")
    storage.get_by_role("button", name="Create a new folder").click()
    page.locator(".jp-Dialog").get_by_label("Folder name").fill(folder)
    screenshot(page, f"{user}-new-folder")
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    storage.locator(f'[data-folder-name="{folder}"]').wait_for(timeout=RUN_TIMEOUT)
    screenshot(page, f"{user}-lab")

    sessions = _open_panel(page, "backendai-sessions")
    sessions.locator(f'[data-session-name="{session}"]').get_by_role("button", name=f"Terminate {session}").click()
    hub.ending.append((len(hub.log()), f"/user/{user}/{session}/"))
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    hub.wait_session(user, session, "TERMINATED")
    assert page.goto(f"{hub.url}/hub/home").status == 200


def _admin_changes_the_password_and_works(hub: ReadmeHub, browser: Any, password: str) -> None:
    """The printed admin logs in, changes the password as required, and runs a session from the form."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    _login(page, hub, "admin", password)
    page.wait_for_url(re.compile(r"/hub/change-password"))
    page.fill("#current", password)
    page.fill("#password", NEW_PASSWORD)
    page.fill("#password2", NEW_PASSWORD)
    page.click("#change_submit")
    page.wait_for_selector("#form-message")
    _session_from_the_form_to_terminated(page, hub, "admin", "first", "results")
    context.close()


def _carol_from_the_cli_to_a_batch_session(hub: ReadmeHub, browser: Any) -> Callable[..., requests.Response]:
    """Carol, made with the operator CLI, logs in and runs a session from the form; then her
    keypair starts the session "batch" (RUNNING when this returns). Her signed requests, to go on."""
    cli = subprocess.run(
        [sys.executable, "-m", "jupyter_backendai.cli", "user", "create", "carol@example.com",
         "--password=Carol-pw-123", "--json"],
        cwd=hub.dir, env=hub.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    access_key, secret_key = _keys_of(json.loads(cli.stdout))
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    _login(page, hub, "carol", "Carol-pw-123")
    page.wait_for_url(re.compile(r"/hub/home"))
    _session_from_the_form_to_terminated(page, hub, "carol", "desk", "notes")
    context.close()

    def call(method: str, path: str, body: Any = None) -> requests.Response:
        return keypair_call(f"{hub.url}/services/backendai", access_key, secret_key, method, path, body)

    created = call("POST", "/session", {"name": "batch", "type": "interactive", "preset": "small"})
    assert created.status_code == 201, created.text
    hub.wait_session("carol", "batch", "RUNNING", timeout=180)
    return call


def test_the_readme_path_on_its_defaults(readme_hub, browser, tmp_path):
    hub = readme_hub
    password = hub.start()
    assert "sessions run as Docker containers" in hub.log() or "local processes" in hub.log()

    # 1. The printed admin: login, the required password change, home, a session, panels, a folder.
    _admin_changes_the_password_and_works(hub, browser, password)

    # 2. A user made with the operator CLI on the default policy; 3. her keypair: a signed POST
    # /session through the proxy, as Backend.AI's client does.
    call = _carol_from_the_cli_to_a_batch_session(hub, browser)
    assert call("GET", "/session/batch").json()["status"] == "RUNNING"
    assert call("DELETE", "/session/batch").status_code in (200, 204)
    hub.wait_session("carol", "batch", "TERMINATED")

    assert hub.server_errors() == [], "\n".join(hub.server_errors())


def _keys_of(created: Any) -> tuple[str, str]:
    """The access and secret key from ``user create --json`` (an object, or a list of one)."""
    item = created[0] if isinstance(created, list) else created
    flat = {**item, **(item.get("keypair") or {})} if isinstance(item, dict) else {}
    return flat["access_key"], flat["secret_key"]


# --- on a Docker Swarm ----------------------------------------------------------------------


def readme_swarm_block() -> tuple[dict[str, str], list[str]]:
    """The swarm section's ``sh`` block: its exported variables and its other commands."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("### Sessions on a Docker Swarm", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    exports, commands = {}, []
    for line in block.strip().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            exports[name] = value
        elif line:
            commands.append(line)
    return exports, commands


class SwarmReadmeHub(ReadmeHub):
    """The README's hub with the swarm block's variables, bound where the swarm's nodes reach it."""

    def __init__(self, directory, swarm: Swarm):
        super().__init__(directory, None)
        exports, commands = readme_swarm_block()
        assert commands == ["jupyterhub -f jupyterhub_config.py"], commands
        assert set(exports) == {"DOCKER_HOST", "BACKENDAI_BACKEND", "BACKENDAI_HUB_IP", "JUPYTERHUB_BIND_URL"}
        assert exports["BACKENDAI_BACKEND"] == "swarm"
        # The README's example addresses, replaced by the test swarm's: its manager, its bridge.
        self.url = f"http://{BRIDGE_IP}:{self.port}"
        self.env.update(
            DOCKER_HOST=swarm.manager.sock,
            BACKENDAI_BACKEND=exports["BACKENDAI_BACKEND"],
            BACKENDAI_HUB_IP=BRIDGE_IP,
            JUPYTERHUB_BIND_URL=self.url,
        )


@pytest.fixture
def readme_swarm_hub(tmp_path, swarm):
    hub = SwarmReadmeHub(tmp_path / "fresh", swarm)
    try:
        yield hub
    finally:
        keep = ARTIFACTS_DIR / "readme-path-swarm"
        keep.mkdir(parents=True, exist_ok=True)
        hub.stop()
        if hub.log_file.exists():
            shutil.copy(hub.log_file, keep / "jupyterhub.log")
        # What the sessions left on the swarm (nothing, when all went well) goes with the swarm.
        for service in swarm.manager.docker("service", "ls", "-q").stdout.split():
            swarm.manager.docker("service", "rm", service, check=False)


def test_the_readme_path_with_the_swarm_backend(readme_swarm_hub, swarm, browser):
    hub = readme_swarm_hub
    password = hub.start()
    assert "sessions run as services of a Docker Swarm" in hub.log()

    # 1. The printed admin: login, the required password change, a session on a node, a folder.
    _admin_changes_the_password_and_works(hub, browser, password)
    nodes = {n.node_id for n in swarm.nodes}
    agents = {row[0] for row in hub.query("SELECT agent_id FROM sessions WHERE agent_id IS NOT NULL")}
    assert agents and agents <= nodes  # it ran on a swarm node

    # 2. A user made with the operator CLI on the default policy; 3. her keypair: a signed POST
    # /session through the proxy, as Backend.AI's client does.
    call = _carol_from_the_cli_to_a_batch_session(hub, browser)
    detail = call("GET", "/session/batch").json()
    assert detail["status"] == "RUNNING"
    assert detail["ssh"]["host"] in {n.ip for n in swarm.nodes}  # the node's address, no public name set
    assert call("DELETE", "/session/batch").status_code in (200, 204)
    hub.wait_session("carol", "batch", "TERMINATED")

    assert hub.server_errors() == [], "\n".join(hub.server_errors())
    assert swarm.manager.docker("service", "ls", "-q").stdout.strip() == ""
