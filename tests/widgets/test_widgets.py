"""The notebook widgets: their pure logic (``widgets.model``) and their Python side against a live
hub (local backend, real proxy) whose manager they call with a session's token."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from jupyter_backendai.client import Client, ManagerError
from jupyter_backendai.widgets import FolderBrowser, SessionLauncher, SessionList, UsageGauges, model
from jupyter_backendai.widgets._common import Poller
from testing.widgets import IMAGE, Backend, make_pdb, start_backend

GiB = 1024**3


# --- pure logic -------------------------------------------------------------------------------


def test_formatting():
    assert model.format_slots({"mem": str(2 * GiB), "cpu": "1", "cuda.shares": "0"}) == "1 CPU · 2 GiB RAM"
    assert model.format_slots({"cuda.shares": "0.5", "cpu": "2"}) == "2 CPU · 0.5 fGPU"
    assert model.format_slots({}) == "nothing"
    assert model.format_slot("tpu", "3") == "3 tpu"
    assert [model.human_size(n) for n in (None, 0, 1023, 1536, 3 * 1024**2)] == [
        "",
        "0 B",
        "1023 B",
        "1.5 KiB",
        "3 MiB",
    ]


def test_launch_request():
    form = model.LaunchForm(name="nb", image=IMAGE, scaling_group="default", preset="small", folders=("data",))
    assert model.launch_request(form) == {
        "name": "nb", "folders": ("data",), "image": IMAGE, "scaling_group": "default", "preset": "small",
    }  # fmt: skip
    custom = model.launch_request(model.LaunchForm(cpu=1.5, mem="512m", gpu=0.25))
    assert custom == {
        "name": "",
        "folders": (),
        "resources": {"cpu": "1.5", "mem": str(512 * 1024**2), "cuda.shares": "0.25"},
    }
    assert "cuda.shares" not in model.launch_request(model.LaunchForm(cpu=1, mem="1g", gpu=0))["resources"]
    for bad, reason in (
        (model.LaunchForm(name="no spaces", preset="small"), "1 to 64 letters"),
        (model.LaunchForm(cpu=0, mem="1g"), "more than 0 cores"),
        (model.LaunchForm(cpu="x", mem="1g"), "number of cores"),
        (model.LaunchForm(cpu=1, mem="lots"), "size like 512m"),
        (model.LaunchForm(cpu=1, mem="1g", gpu=-1), "GPU must be a number"),
        (model.LaunchForm(name="nb"), "choose a preset, or custom amounts"),
    ):
        with pytest.raises(ValueError, match=reason):
            model.launch_request(bad)


def test_states_and_status_lines():
    queued = model.launch_state(
        {"name": "nb", "id": "x", "status": "PENDING", "position": 2, "length": 3, "resource_group": "default"}
    )
    assert queued.phase == "waiting" and not queued.done
    assert model.status_text(queued) == "nb: PENDING, position 2 of 3 in the queue of default"
    running = model.launch_state({"name": "nb", "status": "RUNNING"}, url="/user/a/nb/lab")
    assert running.phase == "running" and running.done and running.url == "/user/a/nb/lab"
    assert model.launch_state({"name": "nb", "status": "PREPARING"}, url="/x").url is None  # no link before RUNNING
    cancelled = model.launch_state({"name": "nb", "status": "CANCELLED", "status_info": "waited too long"})
    assert cancelled.done and model.status_text(cancelled) == "nb: CANCELLED (waited too long)"
    refused = model.refused_state(403, "cpu 4 exceeds the limit")
    assert refused.phase == "refused" and refused.done and model.status_text(refused).startswith("Refused: cpu 4")
    assert model.refused_state(502, "hub down").phase == "error"
    assert model.status_text(model.LaunchState()) == "Not launched yet"
    detail = {"apps": [{"name": "jupyterlab", "url": "/user/a/nb/lab"}, {"name": "x", "url": None}]}
    assert model.app_url(detail, "http://hub:8000/services/backendai") == "http://hub:8000/user/a/nb/lab"
    assert model.app_url(detail, "http://10.0.0.1/services/backendai", same_origin=True) == "/user/a/nb/lab"
    assert model.app_url({"apps": []}, "http://hub") is None


def test_gauges_use_the_smallest_room():
    check = {
        "keypair_using": {"cpu": "1", "mem": str(GiB), "cuda.shares": "0"},
        "keypair_remaining": {"cpu": "3", "mem": "Infinity", "cuda.shares": "Infinity"},
        "group_remaining": {"cpu": "Infinity", "mem": str(3 * GiB), "cuda.shares": "Infinity"},
        "scaling_group_remaining": {"cpu": "8", "mem": str(16 * GiB), "cuda.shares": "0"},
        "scaling_groups": {"gpu": {"remaining": {"cpu": "2", "mem": str(GiB), "cuda.shares": "1"}}},
    }
    cpu, mem = model.gauges(check)
    assert (cpu.slot, cpu.used, cpu.allocatable, cpu.text) == ("cpu", 1, 4, "CPU: 1 / 4")
    assert (mem.used, mem.allocatable, mem.text) == (GiB, 4 * GiB, "RAM: 1 GiB / 4 GiB")
    assert cpu.fraction == 0.25 and model.gauge_bar_max(mem) == 4.0 and model.gauge_bar_value(mem) == 1.0
    gpu_group = {g.slot: g for g in model.gauges(check, "gpu")}
    assert gpu_group["cpu"].allocatable == 3 and gpu_group["cuda.shares"].allocatable == 1
    assert model.Gauge("cpu", Decimal(2), Decimal("Infinity")).fraction == 0.0


def test_folder_paths_and_rows():
    assert model.normalize_path("/a//b/./c/") == "a/b/c"
    assert model.join_path("a", "b") == "a/b" and model.join_path("", "b") == "b"
    assert model.parent_path("a/b") == "a" and model.parent_path("a") == "" and model.parent_path("") == ""
    assert model.breadcrumbs("data", "a/b") == [("data", ""), ("a", "a"), ("b", "a/b")]
    for bad in ("..", "a/b", ""):
        with pytest.raises(ValueError):
            model.join_path("x", bad)
    with pytest.raises(ValueError, match="Up"):
        model.normalize_path("a/../b")
    rows = model.file_rows(
        [
            {"name": "b.txt", "type": "file", "size": 2048},
            {"name": "A", "type": "dir", "size": 4096},
            {"name": "a.txt", "type": "file", "size": 1},
        ]
    )
    assert [r.label for r in rows] == ["A/", "a.txt  (1 B)", "b.txt  (2 KiB)"]
    assert model.folder_options([{"name": ".ssh"}, {"name": "data"}, {"name": "old", "status": "deleted"}]) == ["data"]
    assert model.preset_options(
        {"presets": [{"name": "s", "resource_slots": {"cpu": "1", "mem": str(GiB)}, "allocatable": True},
                     {"name": "h", "resource_slots": {"cpu": "64"}, "allocatable": False}]}
    ) == [("s (1 CPU · 1 GiB RAM)", "s")]  # fmt: skip


def test_poller_stops():
    calls = []
    poller = Poller(lambda: calls.append(1) or len(calls) >= 3, interval=0.01)
    poller.start()
    deadline = time.monotonic() + 5
    while poller.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(calls) == 3 and not poller.running
    errors: list[BaseException] = []
    forever = Poller(lambda: 1 / 0, interval=0.01, on_error=errors.append)
    forever.start()
    time.sleep(0.1)
    forever.stop()
    assert not forever.running and errors and isinstance(errors[0], ZeroDivisionError)


# --- against a live hub -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    directory = tmp_path_factory.mktemp("widgets")
    pdb = make_pdb(directory)
    service = start_backend(directory, pdb)
    yield service
    service.hub.stop()
    pdb.close()


@pytest.fixture
def alice(backend: Backend, monkeypatch):
    """A client made as in a session: ``Client()`` from the session's environment."""
    for name, value in backend.session_env("alice").items():
        monkeypatch.setenv(name, value)
    for name in ("BACKEND_ACCESS_KEY", "BACKEND_SECRET_KEY", "BACKEND_ENDPOINT", "JUPYTERHUB_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    with Client() as client:
        assert client.whoami()["username"] == "alice" and client.whoami()["via"] == "hub-token"
        yield client


def end_all(client: Client) -> None:
    for item in client.list_sessions("running")["items"]:
        client.destroy_session(item["id"])


def test_launcher_queues_then_runs(backend: Backend, alice: Client):
    one = SessionLauncher()  # the client from the environment, as in a session
    assert one.client.endpoint == backend.endpoint
    assert list(one.image.options) == [IMAGE] and list(one.scaling_group.options) == ["default"]
    assert list(one.project.options) == ["default"]
    one.mode.value = "custom"
    assert one.preset.layout.display == "none" and one.custom.layout.display is None
    assert all(c.layout.display != "none" for c in (one.project, one.image, one.scaling_group, one.name))
    one.cpu.value, one.mem.value, one.name.value = 1, "512m", "w-one"
    try:
        state = one.launch()
        assert state.name == "w-one" and state.phase in ("waiting", "starting", "running")
        state = one.wait(timeout=90)
        assert state.phase == "running", state
        assert state.url == f"{backend.hub.url}/user/alice/w-one/lab"
        assert f'href="{state.url}"' in one.link.value and "w-one: RUNNING" in one.status.value

        # A second launcher, with a preset; the agent (2 CPU) is then full. The hub registers its
        # agent at the first spawn, so only now do presets fit at all.
        two = SessionLauncher(client=alice)
        assert [name for _label, name in two.preset.options] == ["small"]  # "huge" does not fit the policy
        assert two.mode.value == "preset" and two.form().preset == "small"
        two.name.value = "w-two"
        assert two.launch(watch=False).name == "w-two"
        assert two.wait(timeout=90).phase == "running"

        # bob's session cannot fit now: it waits first in the queue, and the status says so.
        bob_client = Client(backend.endpoint, token=backend.token("bob"))
        third = SessionLauncher(client=bob_client, poll_interval=0.3)
        assert third.preset.options == () and third.mode.value == "preset"  # nothing fits now
        with pytest.raises(ValueError, match="choose a preset, or custom amounts"):
            third.launch()
        third.mode.value = "custom"
        third.cpu.value, third.mem.value, third.name.value = 1, "512m", "w-three"
        third.launch()
        queued = third.wait(phases=("waiting",), timeout=30)
        assert queued.phase == "waiting" and (queued.position, queued.length) == (1, 1), queued
        assert "position 1 of 1 in the queue of default" in third.status.value
        with pytest.raises(ManagerError) as hidden:  # another user's session is not found, not forbidden
            alice.session_queue(queued.session_id)
        assert hidden.value.status == 404
        assert third.launch_button.disabled and not third.stop_button.disabled  # watching: Stop, not Launch
        # Room comes free: the queued session starts, and the live status follows it.
        alice.destroy_session("w-one")
        assert third.wait(timeout=90).phase == "running"
        assert third.state.url and "/user/bob/w-three/lab" in third.state.url
        third.stop()
        bob_client.destroy_session("w-three")
        bob_client.close()
    finally:
        end_all(alice)


def test_launcher_shows_refusals(backend: Backend, alice: Client):
    launcher = SessionLauncher(client=alice)
    launcher.mode.value = "custom"
    launcher.cpu.value, launcher.mem.value = 4, "1g"  # the policy allows 2 CPU
    state = launcher.launch()
    assert state.phase == "refused" and state.done
    assert "cpu 4 exceeds the keypair policy 'student' limit of 2" in state.message and "HTTP 403" in state.message
    assert "Refused:" in launcher.status.value and not launcher.launch_button.disabled
    launcher.mem.value = "plenty"
    with pytest.raises(ValueError, match="RAM must be a size"):
        launcher.launch()
    launcher._launch_clicked()  # the button shows the same reason instead of raising
    assert "RAM must be a size" in launcher.message.value
    assert alice.list_sessions("running")["total_count"] == 0


def test_session_list_and_gauges(backend: Backend, alice: Client):
    alice.create_session("w-list", preset="small")
    try:
        table = SessionList(client=alice)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and [r.status for r in table.refresh()] != ["RUNNING"]:
            time.sleep(0.5)
        (row,) = table.rows
        assert (row.name, row.status, row.image, row.resources) == ("w-list", "RUNNING", IMAGE, "1 CPU · 512 MiB RAM")
        assert row.can_terminate and len(table.table.children) == 2 * 7
        gauges = UsageGauges(client=alice)
        cpu, mem = gauges.gauges
        assert (cpu.used, cpu.allocatable, cpu.text) == (1, 2, "CPU: 1 / 2")
        assert mem.used == 512 * 1024**2 and mem.allocatable == 2 * GiB
        assert "CPU: 1 / 2" in [c.children[2].value for c in gauges.bars.children]

        table.start(interval=0.5)
        table.request_terminate("w-list")  # the button asks first; polling holds meanwhile
        assert table.confirm.pending and "Terminate the session w-list?" in table.confirm.question.value
        answer = table.confirm.confirm()
        table.stop()
        assert answer["status"] == "TERMINATED" and table.rows == []
        table.which.value = "finished"  # the toggle reloads
        finished = [(r.name, r.status, r.can_terminate) for r in table.rows]
        assert finished[0] == ("w-list", "TERMINATED", False)  # newest first
        assert all(status in ("TERMINATED", "CANCELLED", "ERROR") and not t for _n, status, t in finished)
        cpu, mem = gauges.refresh()
        assert (cpu.used, cpu.allocatable, mem.used) == (0, 2, 0)  # the policy's 2 CPU (the agent has 2 free too)
    finally:
        end_all(alice)


def test_folder_browser_round_trip(backend: Backend, alice: Client, tmp_path: Path):
    alice.create_folder("wdata")
    alice.mkdir("wdata", "sub")
    browser = FolderBrowser("wdata", client=alice)
    assert [r.label for r in browser.rows] == ["sub/"] and browser.up_button.disabled
    browser.enter("sub")
    assert browser.path == "sub" and "wdata</b>" not in browser.location.value and "sub" in browser.location.value
    payload = b"widget round trip\n" * 1000
    local = tmp_path / "notes.txt"
    local.write_bytes(payload)
    assert browser.upload(local) == "sub/notes.txt"
    assert (
        browser.progress.value == len(payload)
        and f"{len(payload):,} of {len(payload):,}" in browser.progress_label.value
    )
    assert [r.name for r in browser.rows] == ["notes.txt"]

    # A file chosen in the browser arrives as the picker's state, sent by the front end (times in ms).
    chosen = {
        "name": "picked.bin",
        "type": "",
        "size": 3,
        "content": memoryview(b"abc"),
        "last_modified": 1700000000000,
    }
    browser.picker.set_state({"value": [chosen]})
    assert browser.upload_selected() == ["sub/picked.bin"] and browser.picker.value == ()
    out = tmp_path / "out"
    out.mkdir()
    assert browser.download("notes.txt", out) == out / "notes.txt"
    assert (out / "notes.txt").read_bytes() == payload
    browser.entries.value = "picked.bin"
    browser.save_to.value = str(out)
    browser.download_button.click()
    assert (out / "picked.bin").read_bytes() == b"abc"

    browser.upload(tmp_path / "missing.txt")
    assert "is not a file on the kernel's disk" in browser.message.value
    browser.request_delete("notes.txt")
    browser.confirm.cancel()
    assert "notes.txt" in [r.name for r in browser.rows]
    browser.entries.value = "notes.txt"
    browser.delete_button.click()
    assert browser.confirm.pending
    browser.confirm.yes.click()
    assert [r.name for r in browser.rows] == ["picked.bin"]
    browser.up()
    assert browser.path == "" and [r.name for r in browser.rows] == ["sub"]
    browser.delete("sub")
    assert browser.rows == [] and alice.list_files("wdata") == []

    bob = Client(backend.endpoint, token=backend.token("bob"))
    others = FolderBrowser("wdata", client=bob)  # not bob's: the reason is shown, nothing raised
    assert others.rows == [] and ("HTTP 404" in others.message.value or "HTTP 403" in others.message.value)
    bob.close()
