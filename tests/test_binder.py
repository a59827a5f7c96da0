"""binder/start, run as CI and anyone would run it: the demo hub comes up on loopback ports of
the test's choosing in a temporary state directory; a demo user logs in through the login page,
gets a token, calls the manager through the proxy, finds the demo folder, and launches a
session that answers; SIGTERM then stops everything and removes the state directory."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from jupyter_backendai.client import Client
from testing.hub import REPO_ROOT, free_port, not_installed
from testing.sessions import session_homes_dir

START = REPO_ROOT / "binder" / "start"
START_TIMEOUT = 180
STOP_TIMEOUT = 60


def post_form(session: requests.Session, page_url: str, data: dict) -> requests.Response:
    """GET the page (its XSRF cookie and field), then POST the form as a browser does."""
    page = session.get(page_url, timeout=10)
    match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert match, f"no XSRF field on {page_url}: {page.status_code}"
    return session.post(page_url, data={"_xsrf": match.group(1), **data}, timeout=30)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, as a container's stop sends it; a kill only if it is still there after STOP_TIMEOUT."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def demo(tmp_path: Path):
    if shutil.which("configurable-http-proxy") is None:
        not_installed("configurable-http-proxy (npm install -g configurable-http-proxy)")
    ports = {name: free_port() for name in ("PORT", "HUB_PORT", "PROXY_API_PORT", "MANAGER_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "BACKENDAI_", "BACKEND_"))}
    env.update({f"BACKENDAI_DEMO_{k}": str(v) for k, v in ports.items()})
    # Where the script makes its temporary state directory: outside pytest's 0700 tree, because a
    # root hub's sessions run as accounts of their own and pass through it to their homes.
    temp = session_homes_dir()
    env["TMPDIR"] = str(temp)
    log_path = tmp_path / "start.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(START)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)

    def log_text() -> str:
        return log_path.read_text(errors="replace")

    deadline = time.monotonic() + START_TIMEOUT
    while "ready (Ctrl-C stops it)" not in log_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"binder/start did not get ready (exit {process.poll()}):\n{log_text()}")
        time.sleep(0.5)
    url = f"http://127.0.0.1:{ports['PORT']}"
    try:
        yield process, url, ports, temp, log_text
    finally:
        stop_process(process)
        shutil.rmtree(temp, ignore_errors=True)


def test_binder_start_serves_the_demo_and_stops_cleanly(demo):
    process, url, ports, tmp_path, log_text = demo
    banner = log_text()
    assert f"demo hub is up at {url}/" in banner and "alice@example.com (Demo-alice-1)" in banner
    (state,) = [p for p in tmp_path.iterdir() if p.name.startswith("backendai-demo.")]
    assert (state / "backendai.sqlite").is_file() and (state / "jupyterhub.sqlite").is_file()

    # Log in as a demo user through the login page, then get a token as the browser's session.
    browser = requests.Session()
    answer = post_form(browser, f"{url}/hub/login", {"username": "alice@example.com", "password": "Demo-alice-1"})
    assert answer.status_code == 200 and answer.url.startswith(f"{url}/hub/"), (answer.status_code, answer.url)
    assert "alice" in browser.get(f"{url}/hub/home", timeout=10).text
    made = browser.post(
        f"{url}/hub/api/users/alice/tokens",
        json={"note": "binder test", "expires_in": 600},
        headers={"X-XSRFToken": browser.cookies.get("_xsrf", path="/hub/")},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    token = made.json()["token"]

    # The manager through the proxy knows her; the demo set-up gave her a folder with a file.
    whoami = requests.get(
        f"{url}/services/backendai/auth/whoami", headers={"Authorization": f"token {token}"}, timeout=10
    )
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["username"] == "alice" and whoami.json()["via"] == "hub-token"
    with Client(f"{url}/services/backendai", token=token) as client:
        assert "demo-data" in [f["name"] for f in client.list_folders()]
        assert [f["name"] for f in client.list_files("demo-data")] == ["README.txt"]
        check = client.check_presets()
        assert check["keypair_limits"]["cpu"] == "2"  # the demo policy
        assert {p["name"] for p in check["presets"]} == {"small", "medium", "large"}
        # The agent registered when the hub started: a preset fits before anyone has spawned.
        assert {p["name"]: p["allocatable"] for p in check["presets"]}["small"] is True, check
        assert [i["reference"] for i in client.launch_options()["images"]] == ["local-python:3"]

        # A session on the local backend starts and answers through the proxy.
        created = client.create_session("binder-check", resources={"cpu": 1, "mem": "512m"})
        deadline = time.monotonic() + 120
        status = created["status"]
        while status != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.5)
            status = client.get_session("binder-check")["status"]
        assert status == "RUNNING", client.get_session("binder-check")
        lab = None
        while time.monotonic() < deadline:
            lab = requests.get(
                f"{url}/user/alice/binder-check/api/status", headers={"Authorization": f"token {token}"}, timeout=10
            )
            if lab.status_code == 200:
                break
            time.sleep(0.5)
        assert lab is not None and lab.status_code == 200, lab.text if lab is not None else None
        # Large is beyond the demo policy; small fits next to the running session.
        fits = {p["name"]: p["allocatable"] for p in client.check_presets()["presets"]}
        assert fits["large"] is False and fits["small"] is True

    # SIGTERM stops the hub (and its session, proxy and manager) and removes the state directory.
    process.send_signal(signal.SIGTERM)
    assert process.wait(STOP_TIMEOUT) == 0, log_text()
    assert "stopping the demo hub" in log_text()
    assert not state.exists()
    for name, port in ports.items():
        assert not port_open(port), f"{name} {port} is still open"


def test_binder_start_then_jupyterlab_with_the_panels(tmp_path: Path):
    """The Binder way: ``start CMD`` brings the hub up, then execs the lab, pointed at the hub as alice."""
    if shutil.which("configurable-http-proxy") is None:
        not_installed("configurable-http-proxy (npm install -g configurable-http-proxy)")
    ports = {name: free_port() for name in ("PORT", "HUB_PORT", "PROXY_API_PORT", "MANAGER_PORT")}
    lab_port, token = free_port(), "binder-test-token"
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "BACKENDAI_", "BACKEND_"))}
    env.update({f"BACKENDAI_DEMO_{k}": str(v) for k, v in ports.items()})
    env["BACKENDAI_DEMO_STATE"] = str(state)
    lab_command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={lab_port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
    ]  # fmt: skip
    log_path = tmp_path / "start.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(START), *lab_command], stdout=log, stderr=subprocess.STDOUT, env=env)
    lab = f"http://127.0.0.1:{lab_port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if requests.get(f"{lab}/api/status", params={"token": token}, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.5)
        assert "demo hub is up at" in log_path.read_text()

        # The lab's server extension talks to the demo hub's manager with alice's keypair.
        config = requests.get(f"{lab}/backendai/_ext/config", params={"token": token}, timeout=60).json()
        assert config["mode"] == "keypair" and config["error"] is None, config
        assert config["endpoint"] == f"http://127.0.0.1:{ports['PORT']}/services/backendai"
        assert config["user"]["username"] == "alice"
        folders = requests.get(f"{lab}/backendai/folders", params={"token": token}, timeout=30)
        assert folders.status_code == 200 and "demo-data" in [f["name"] for f in folders.json()]
        # The lab extension's panels are in the page JupyterLab serves.
        page = requests.get(f"{lab}/lab", params={"token": token}, timeout=30)
        assert page.status_code == 200 and "jupyter-backendai" in page.text
    finally:
        stop_process(process)  # the lab (start exec'd it)
        # The hub goes on after the lab (as on Binder, where the container's end stops it).
        pid_file = state / "jupyterhub.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(port_open(p) for p in ports.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
    for name, port in ports.items():
        assert not port_open(port), f"{name} {port} is still open"
