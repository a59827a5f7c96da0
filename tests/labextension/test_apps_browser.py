"""The apps of a Docker session in a real browser: terminals, TensorBoard, an app of the image's label.

Sessions of the real session image (``jupyter-backendai-session:local``, built by
``images/session/build-offline.sh`` as CI builds it) through a real hub and proxy, in Chromium:

* two terminal tabs in JupyterLab each have a tmux session of their own (what one shows never
  reaches the other), and after a reload both come back with their output; a terminal the
  server lost comes back with its shell when opened again under its name. The terminal link
  of the session's app list opens a working terminal.
* TensorBoard opens from the lab's launcher on a log directory chosen in its form (the form
  offers ``~/<first folder>/logs``) and lists the run written in the session.
* An app that an image declares in ``ai.backend.service-ports`` with a service definition
  (a test image built from the session image, offline) starts on the first request, and
  again after it was stopped.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing.docker import IMAGE
from testing.hub import screenshot
from testing.sessions import PASSWORD, ProductDB, hub_config, spawn, wait_ready, wait_status

pytestmark = pytest.mark.docker

#: The test image with an app of its own: the session image, a label and a service definition.
DEMO_IMAGE = "jupyter-backendai-apps-test:local"
SLOW_MS = 120_000
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78MDEc])")


def image_labels(image: str) -> dict[str, str]:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", image],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(out.stdout) or {}


@pytest.fixture(scope="module")
def demo_image(tmp_path_factory: Any) -> Any:
    """The session image plus an app ``http-demo`` (``python -m http.server``) in its label, built
    with no network from the local image."""
    labels = image_labels(IMAGE)
    ports = labels["ai.backend.service-ports"] + ",http-demo:http:8090"
    context = tmp_path_factory.mktemp("demo-image")
    (context / "http-demo.json").write_text(
        json.dumps(
            {
                "command": ["{runtime_path}", "-m", "http.server", "--bind", "127.0.0.1", "{ports[0]}"],
                "prestart": [{"action": "mkdir", "args": {"path": "{home}/served"}}],
            }
        )
    )
    (context / "Dockerfile").write_text(
        textwrap.dedent(
            f"""\
            FROM {IMAGE}
            COPY http-demo.json /etc/backend.ai/service-defs/http-demo.json
            LABEL ai.backend.service-ports={ports}
            # Not the session image's build key: the offline build must never take this image for it.
            LABEL org.jupyter-backendai.inputs-hash=apps-test
            """
        )
    )
    subprocess.run(
        ["docker", "build", "--network", "none", "-q", "-t", DEMO_IMAGE, str(context)],
        capture_output=True, text=True, timeout=300, check=True, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    yield DEMO_IMAGE
    subprocess.run(["docker", "rmi", "-f", DEMO_IMAGE], capture_output=True, timeout=120)


@pytest.fixture
def pdb(tmp_path: Path, demo_image: str) -> Any:
    pdb = ProductDB(tmp_path)

    def setup(db: Any) -> None:
        admin.create_policy(
            db, "student", total_resource_slots={"cpu": 2, "mem": "3g"}, max_concurrent_sessions=2,
            allowed_vfolder_hosts=["local"],
        )  # fmt: skip
        admin.create_preset(db, "small", {"cpu": 1, "mem": "1g"})
        # The images' own labels, as a rescan reads them.
        admin.upsert_image(db, IMAGE, labels=image_labels(IMAGE), installed=True)
        admin.upsert_image(db, demo_image, labels=image_labels(demo_image), installed=True)

    pdb.setup(setup)
    pdb.user("tara@example.com", policy="student", username="tara")
    pdb.folder("tara", "data")
    pdb.folder("tara", ".local")
    yield pdb
    pdb.close()


@pytest.fixture
def hub(make_hub: Any, pdb: ProductDB) -> Any:
    return make_hub(
        hub_config(
            pdb,
            "backendai-docker",
            'c.DockerSessionSpawner.agent_capacity = {"cpu": 2, "mem": "4g"}\nc.Spawner.default_url = "/lab"',
        )
    )


def start_session(hub: Any, pdb: ProductDB, server: str, **options: Any) -> str:
    r = spawn(hub, "tara", server, preset="small", **options)
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "tara", server, timeout=180)
    return wait_status(pdb, "tara", server, m.SessionStatus.RUNNING).container_id


def log_in(hub: Any, page: Any) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "tara")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/"))


def as_work(container: str, script: str) -> str:
    done = subprocess.run(
        ["docker", "exec", "-u", "1000", container, "sh", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class TerminalOutput:
    """What the server sent each terminal tab of a page to show, by terminal name (ANSI removed)."""

    def __init__(self, page: Any) -> None:
        self.raw: dict[str, str] = defaultdict(str)
        page.on("websocket", self._socket)

    def _socket(self, ws: Any) -> None:
        found = re.search(r"/terminals/websocket/([^/?]+)", ws.url)
        if found:
            name = unquote(found.group(1))
            ws.on("framereceived", lambda payload: self._frame(name, payload))

    def _frame(self, name: str, payload: Any) -> None:
        try:
            message = json.loads(payload)
        except (TypeError, ValueError):
            return
        if isinstance(message, list) and len(message) == 2 and message[0] == "stdout":
            self.raw[name] += message[1]

    def text(self, name: str) -> str:
        return ANSI.sub("", self.raw.get(name, "")).replace("\r", "")

    def clear(self) -> None:
        self.raw.clear()

    def wait_for(self, name: str, needle: str, page: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text(name):
            if time.monotonic() > deadline:
                raise AssertionError(f"terminal {name} never showed {needle!r}; it showed:\n{self.text(name)[-2000:]}")
            page.wait_for_timeout(200)


def new_terminal(page: Any) -> None:
    """File ▸ New ▸ Terminal, as a user opens one."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^New$")).first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Terminal$")).first.click()


def type_in_terminal(page: Any, text: str) -> None:
    terminal = page.locator(".jp-Terminal:visible").first
    terminal.wait_for(timeout=SLOW_MS)
    terminal.click()
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def tmux_sessions(container: str) -> set[str]:
    return set(as_work(container, "tmux list-sessions -F '#S' 2>/dev/null || true").split())


def test_each_terminal_has_its_own_tmux_session_and_comes_back_after_a_reload(hub, pdb, page):
    container = start_session(hub, pdb, "desk", image=IMAGE, folders=["data"])
    output = TerminalOutput(page)
    log_in(hub, page)
    lab = f"{hub.url}/user/tara/desk/lab"
    page.goto(lab)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$")).wait_for(timeout=SLOW_MS)

    new_terminal(page)
    output.wait_for("1", "$", page)
    type_in_terminal(page, "echo ALPHA_$((6*7))")
    output.wait_for("1", "ALPHA_42", page)
    new_terminal(page)
    output.wait_for("2", "$", page)
    type_in_terminal(page, "echo BETA_$((7*7))")
    output.wait_for("2", "BETA_49", page)
    screenshot(page, "01-two-terminals")
    # Nothing of one terminal reached the other: two tmux sessions, not one mirrored.
    assert "BETA" not in output.text("1") and "ALPHA" not in output.text("2")
    assert {"term-1", "term-2"} <= tmux_sessions(container)
    pane1 = as_work(container, "tmux capture-pane -p -t term-1")
    pane2 = as_work(container, "tmux capture-pane -p -t term-2")
    assert "ALPHA_42" in pane1 and "BETA" not in pane1
    assert "BETA_49" in pane2 and "ALPHA" not in pane2

    # A reload: the lab opens both terminals again, each with its own output on screen.
    output.clear()
    page.reload()
    output.wait_for("1", "ALPHA_42", page, timeout=120)
    output.wait_for("2", "BETA_49", page, timeout=120)
    assert "BETA" not in output.text("1") and "ALPHA" not in output.text("2")
    # The replayed output asked the new page nothing: no answer landed at the prompts as input.
    page.wait_for_timeout(1000)
    for name in ("term-1", "term-2"):
        pane = as_work(container, f"tmux capture-pane -p -t {name}")
        assert not re.search(r"\d+;\d+c", pane), pane
    screenshot(page, "02-after-reload")

    # The server loses terminal 1 (shut down through its API): its tmux session stays, and the
    # terminal opened again under its name shows the same shell.
    auth = {"Authorization": f"token {hub.admin_token}"}
    gone = requests.delete(f"{hub.url}/user/tara/desk/api/terminals/1", headers=auth, timeout=30)
    assert gone.status_code == 204, gone.text
    assert "term-1" in tmux_sessions(container)
    output.clear()
    page.goto(f"{hub.url}/user/tara/desk/terminals/1")
    output.wait_for("1", "ALPHA_42", page, timeout=120)

    # The terminal of the session's app list (the manager links it, test_apps.py) opens a new
    # working terminal, not port 8888 through /proxy/.
    output.clear()
    page.goto(f"{hub.url}/user/tara/desk/backendai/_ext/apps/terminal/open")
    page.wait_for_url(re.compile(r"/user/tara/desk/terminals/[^/]+$"), timeout=SLOW_MS)
    name = unquote(page.url.rsplit("/", 1)[1])
    assert name not in ("1", "2")
    output.wait_for(name, "$", page)
    type_in_terminal(page, "echo GAMMA_$((8*8))")
    output.wait_for(name, "GAMMA_64", page)
    assert "ALPHA" not in output.text(name) and "BETA" not in output.text(name)
    screenshot(page, "03-app-list-terminal")


WRITE_RUN = """
import sys, time
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
writer = EventFileWriter(sys.argv[1])
for step in range(3):
    value = summary_pb2.Summary.Value(tag="loss", simple_value=1.0 / (step + 1))
    writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=[value])))
writer.close()
"""


def submit(page: Any) -> None:
    """Submit the app's form; the answer comes once the app answers (it may be starting)."""
    with page.expect_navigation(timeout=SLOW_MS):
        page.locator("#open-app-submit").click()


def test_tensorboard_opens_on_the_chosen_log_dir(hub, pdb, page):
    container = start_session(hub, pdb, "tb", image=IMAGE, folders=["data"])
    # A run, written in the session with TensorBoard's own writer.
    as_work(container, f"python3 -c '{WRITE_RUN}' /home/work/data/experiments/run-a")
    log_in(hub, page)
    prefix = f"{hub.url}/user/tara/tb/"
    page.goto(prefix + "lab")
    card = page.locator(".jp-LauncherCard", has_text="TensorBoard")
    card.wait_for(timeout=SLOW_MS)
    card.scroll_into_view_if_needed()
    screenshot(page, "01-launcher")

    with page.context.expect_page(timeout=60_000) as opened:
        card.click()
    tab = opened.value
    field = tab.get_by_label("Log directory")
    field.wait_for(timeout=60_000)
    # The form offers the first chosen folder's logs (not .local: dot-folders hold settings).
    assert field.input_value() == "/home/work/data/logs"
    field.fill("~/data/experiments")
    screenshot(tab, "02-log-dir-form")
    submit(tab)
    tab.wait_for_url(prefix + "tensorboard/", timeout=SLOW_MS)
    tab.locator("text=run-a").first.wait_for(timeout=SLOW_MS)
    screenshot(tab, "03-tensorboard")

    runs = tab.request.get(prefix + "tensorboard/data/runs").json()
    assert runs == ["run-a"]
    args = as_work(container, "ps -o args= -u work | grep '[t]ensorboard.main'")
    assert "--logdir /home/work/data/experiments" in args and "--host 127.0.0.1" in args
    # The default log directory was made in the folder, where it outlives the session.
    assert as_work(container, "test -d /home/work/data/logs && echo yes").strip() == "yes"

    # Opening it again with another directory restarts it there.
    tab.goto(prefix + "backendai/_ext/apps/tensorboard/open")
    assert tab.get_by_label("Log directory").input_value() == "/home/work/data/experiments"
    tab.get_by_label("Log directory").fill("/home/work/data/logs")
    submit(tab)
    tab.wait_for_url(prefix + "tensorboard/", timeout=SLOW_MS)
    deadline = time.monotonic() + 60
    while "--logdir /home/work/data/logs" not in as_work(container, "ps -o args= -u work"):
        assert time.monotonic() < deadline, "TensorBoard did not restart on the new log directory"
        time.sleep(0.5)
    assert tab.request.get(prefix + "tensorboard/data/runs").json() == []

    # A bad value is refused on the form, with the reason.
    tab.goto(prefix + "backendai/_ext/apps/tensorboard/open")
    tab.get_by_label("Log directory").fill("--inspect")
    submit(tab)
    assert "must not start with '-'" in tab.locator(".error").inner_text()


def test_an_app_of_the_image_label_starts_on_demand(hub, pdb, page, demo_image):
    container = start_session(hub, pdb, "demo", image=demo_image)
    prefix = f"{hub.url}/user/tara/demo/"
    auth = {"Authorization": f"token {hub.admin_token}"}

    def serving() -> bool:
        return "http.server" in as_work(container, "ps -o args= -u work")

    listing = requests.get(prefix + "backendai/_ext/apps", headers=auth, timeout=30).json()
    demo = next(a for a in listing["apps"] if a["name"] == "http-demo")
    assert demo["proxied"] and demo["managed"] and not demo["running"] and demo["error"] is None
    assert not serving()  # nothing runs until someone opens it

    log_in(hub, page)
    page.goto(prefix + "backendai/_ext/apps/http-demo/open")
    page.wait_for_url(prefix + "http-demo/", timeout=SLOW_MS)
    assert "Directory listing for /" in page.content() and "served/" in page.content()
    assert serving()
    screenshot(page, "01-http-demo")

    # Stopped, it starts again on the next request.
    stopped = requests.delete(prefix + "backendai/_ext/apps/http-demo", headers=auth, timeout=30)
    assert stopped.status_code == 204, stopped.text
    assert not serving()
    again = requests.get(prefix + "http-demo/", headers=auth, timeout=90)
    assert again.status_code == 200 and "Directory listing" in again.text
    assert serving()
    # An app the session does not have is a 404 with the reason, not a traceback.
    missing = requests.delete(prefix + "backendai/_ext/apps/nope", headers=auth, timeout=30)
    assert missing.status_code == 404 and "no app 'nope'" in missing.json()["message"]
