"""The README's path with the Swarm backend, on the tests' three-engine swarm (tests/swarm_fixtures.py).

As tests/test_readme_path.py, but the hub is started as README.md's "Sessions on a Docker Swarm"
block says: its ``export`` lines (``DOCKER_HOST`` at the manager, ``BACKENDAI_BACKEND=swarm``,
``BACKENDAI_HUB_IP`` and ``JUPYTERHUB_BIND_URL`` on an address the nodes route to, here the
swarm's bridge) and ``jupyterhub -f jupyterhub_config.py`` in an empty directory. The printed
admin and a user made with the CLI each go from the spawn form to JupyterLab (on a node) and
back; the user's keypair starts and deletes a session. Any 5xx or uncaught exception in the
hub's or the manager's log fails the test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
import requests

from tests.hub_fixtures import ARTIFACTS_DIR, REPO_ROOT
from tests.session_helpers import keypair_call
from tests.swarm_fixtures import BRIDGE_IP, Swarm
from tests.test_readme_path import (
    NEW_PASSWORD,
    ReadmeHub,
    _keys_of,
    _login,
    _session_from_the_form_to_terminated,
)


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
    nodes = {n.node_id for n in swarm.nodes}
    agents = {row[0] for row in hub.query("SELECT agent_id FROM sessions WHERE agent_id IS NOT NULL")}
    assert agents and agents <= nodes  # it ran on a swarm node

    # 2. A user made with the operator CLI on the default policy.
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

    # 3. Carol's keypair: a signed POST /session through the proxy, as Backend.AI's client does.
    def call(method: str, path: str, body: Any = None) -> requests.Response:
        return keypair_call(f"{hub.url}/services/backendai", access_key, secret_key, method, path, body)

    created = call("POST", "/session", {"name": "batch", "type": "interactive", "preset": "small"})
    assert created.status_code == 201, created.text
    hub.wait_session("carol", "batch", "RUNNING", timeout=180)
    detail = call("GET", "/session/batch").json()
    assert detail["status"] == "RUNNING"
    assert detail["ssh"]["host"] in {n.ip for n in swarm.nodes}  # the node's address, no public name set
    assert call("DELETE", "/session/batch").status_code in (200, 204)
    hub.wait_session("carol", "batch", "TERMINATED")

    assert hub.server_errors() == [], "\n".join(hub.server_errors())
    assert swarm.manager.docker("service", "ls", "-q").stdout.strip() == ""
