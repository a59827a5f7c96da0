"""SessionLauncher in JupyterLab: a notebook in a session (local backend, real hub and proxy)
shows the launcher through jupyterlab_widgets; clicking Launch starts a session and the status
line turns RUNNING, with the link to open it."""

from __future__ import annotations

import importlib.util
import json
import re
import time

import nbformat
import pytest
import requests
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_backendai.client import Client
from testing.hub import not_installed, screenshot
from testing.sessions import PASSWORD, contents, wait_ready
from testing.widgets import make_pdb, start_backend

LAB_TIMEOUT_MS = 120_000
CELL = """\
from jupyter_backendai.widgets import SessionLauncher

launcher = SessionLauncher(poll_interval=0.5)  # Client() from the session's environment
launcher.mode.value = "custom"
launcher.cpu.value, launcher.mem.value, launcher.name.value = 1, "512m", "from-widget"
launcher"""


@pytest.fixture
def backend(tmp_path):
    for module in ("jupyterlab", "jupyterlab_widgets"):
        if importlib.util.find_spec(module) is None:
            not_installed(f"{module} (pip)")  # a failure in CI, as any missing part of the hub tests
    pdb = make_pdb(tmp_path)
    service = start_backend(tmp_path, pdb)
    yield service
    service.hub.stop()
    pdb.close()


def test_launch_from_the_widget_in_jupyterlab(backend, page):
    hub = backend.hub
    alice = Client(backend.endpoint, token=backend.token("alice"))
    alice.create_session("nb", resources={"cpu": "0.5", "mem": "512m"})
    wait_ready(hub, "alice", "nb", timeout=120)
    notebook = new_notebook(
        cells=[new_code_cell(CELL)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    body = {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(notebook))}
    saved = contents(hub, "alice", "nb", "launcher.ipynb", "PUT", json=body)
    assert saved.status_code in (200, 201), saved.text

    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "alice")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/"))
    page.goto(f"{hub.url}/user/alice/nb/lab/tree/launcher.ipynb", timeout=LAB_TIMEOUT_MS)
    cell = page.locator(".jp-Notebook .jp-Cell").first
    cell.wait_for(timeout=LAB_TIMEOUT_MS)
    # Run the cell once the kernel is up (a run asked for before that can be lost).
    page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=LAB_TIMEOUT_MS)
    launcher = page.locator(".jp-BackendAI-SessionLauncher")
    for _attempt in range(3):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        try:
            launcher.wait_for(timeout=LAB_TIMEOUT_MS // 3)
            break
        except Exception:  # noqa: BLE001 - not drawn yet: run it again
            screenshot(page, f"not-rendered-{_attempt}")
    launcher.wait_for(timeout=10_000)
    launcher.get_by_text("Not launched yet").wait_for(timeout=30_000)
    assert launcher.locator("select").first.is_visible()
    screenshot(page, "launcher-rendered")
    launcher.locator("button", has_text="Launch").click()
    launcher.get_by_text("from-widget: RUNNING").wait_for(timeout=LAB_TIMEOUT_MS)
    link = launcher.locator("a", has_text="Open from-widget")
    assert link.get_attribute("href") == "/user/alice/from-widget/lab"  # served by the same hub: a path
    screenshot(page, "launcher-running")

    # The manager agrees, and the launched session answers through the proxy.
    detail = alice.get_session("from-widget")
    assert detail["status"] == "RUNNING" and detail["occupied_slots"]["cpu"] == "1"
    wait_ready(hub, "alice", "from-widget", timeout=120)
    status = requests.get(f"{hub.url}/user/alice/from-widget/api/status",
                          headers={"Authorization": f"token {hub.admin_token}"}, timeout=30)  # fmt: skip
    assert status.status_code == 200, status.text
    for name in ("from-widget", "nb"):
        alice.destroy_session(name)
    deadline = time.monotonic() + 60
    while alice.list_sessions("running")["total_count"] and time.monotonic() < deadline:
        time.sleep(0.5)
    alice.close()
