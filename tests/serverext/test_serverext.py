"""The server extension (``jupyter_backendai.serverext``) in a real jupyter-server against a live manager.

pytest-jupyter's fixtures start the jupyter-server in this process (``jp_serverapp``,
``jp_fetch``); they are imported here rather than loaded as a plugin, so that its autouse
fixtures and async-test hooks stay out of the rest of the suite. Tests are synchronous and
drive the server's loop with :func:`run`; blocking clients (tuspy) run on a worker thread
while the loop serves them.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import tusclient.client as tusclient
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from jupyter_backendai._version import __version__
from jupyter_backendai.serverext import proxy
from jupyter_backendai.storage import FolderStore
from testing.hub import free_port
from testing.manager import sha256
from testing.sessions import PREFIX, HubWithManager, start_hub_with_manager, wait_ready

# pytest-jupyter's fixtures and the hub-with-manager ones, for this module only: pytest finds
# fixtures by name in the module (bound here so that the names stay off the linter's radar).
_FIXTURES = {
    "pytest_jupyter.jupyter_core": [
        "echo_kernel_spec", "jp_asyncio_loop", "jp_config_dir", "jp_data_dir", "jp_env_config_path",
        "jp_env_jupyter_path", "jp_environ", "jp_home_dir", "jp_kernel_dir", "jp_runtime_dir",
        "jp_system_config_path", "jp_system_jupyter_path",
    ],
    "pytest_jupyter.jupyter_server": [
        "jp_argv", "jp_auth_header", "jp_base_url", "jp_configurable_serverapp", "jp_fetch", "jp_http_port",
        "jp_logging_stream", "jp_nbconvert_templates", "jp_root_dir", "jp_server_cleanup", "jp_serverapp",
        "jp_template_dir", "jp_web_app",
    ],
    "pytest_jupyter.pytest_tornasync": ["http_server", "http_server_client", "http_server_port", "io_loop"],
    "tests.manager.test_manager_sessions": ["backendai", "pdb"],
}  # fmt: skip
globals().update(
    {name: getattr(importlib.import_module(module), name) for module, names in _FIXTURES.items() for name in names}
)

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]
ENV_VARS = (
    "BACKENDAI_ENDPOINT",
    "BACKEND_ENDPOINT",
    "BACKENDAI_ACCESS_KEY",
    "BACKENDAI_SECRET_KEY",
    "BACKEND_ACCESS_KEY",
    "BACKEND_SECRET_KEY",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_PUBLIC_URL",
    "JUPYTERHUB_BASE_URL",
)
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Nothing of the machine's environment decides the extension's mode or endpoint."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def backendai_settings(manager) -> dict[str, Any]:
    """``c.BackendAIExtension``: alice's keypair against the live manager."""
    access, secret = manager.keys("alice")
    return {"endpoint": manager.url, "access_key": access, "secret_key": secret}


@pytest.fixture
def jp_server_config(backendai_settings):
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_backendai.serverext": True}},
        "BackendAIExtension": backendai_settings,
    }


def run(loop: asyncio.AbstractEventLoop, awaitable: Any, timeout: float = 120) -> Any:
    return loop.run_until_complete(asyncio.wait_for(asyncio.ensure_future(awaitable), timeout))


class Ext:
    """Requests to ``<base_url>backendai/...`` of the running server, made the way a browser would
    (the prefix percent-encoded); ``token`` authenticates like the lab's ``Authorization`` header."""

    def __init__(self, serverapp, client, loop):
        self.serverapp = serverapp
        self.client = client
        self.loop = loop
        self.prefix = proxy.url_prefix(serverapp.base_url)
        self.token = serverapp.identity_provider.token
        self.origin = f"http://127.0.0.1:{serverapp.port}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.client._http_server_port}{self.prefix}{path}"  # see the fixture below

    def fetch(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> HTTPResponse:
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers.setdefault("Authorization", f"token {self.token}")
        if "json" in kwargs:
            kwargs["body"] = json.dumps(kwargs.pop("json"))
            headers.setdefault("Content-Type", "application/json")
        if method in ("POST", "PUT", "PATCH") and kwargs.get("body") is None and "body_producer" not in kwargs:
            kwargs["body"] = b""
        request = HTTPRequest(
            self.url(path), method=method, headers=headers, allow_nonstandard_methods=True, request_timeout=120,
            **kwargs,
        )  # fmt: skip
        return run(self.loop, self.client.fetch(request, raise_error=False))

    def json(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.fetch(method, path, **kwargs)
        assert response.code == status, (response.code, response.body[:500])
        return json.loads(response.body) if response.body else None


@pytest.fixture
def ext(jp_serverapp, http_server, http_server_port, jp_asyncio_loop) -> Ext:
    client = run(jp_asyncio_loop, _client())
    client._http_server_port = http_server_port[1]
    jp_serverapp.port = http_server_port[1]
    yield Ext(jp_serverapp, client, jp_asyncio_loop)
    client.close()


async def _client() -> AsyncHTTPClient:
    return AsyncHTTPClient(force_instance=True, max_body_size=1 << 40)


def error_title(response: HTTPResponse) -> str:
    body = json.loads(response.body)
    assert body["title"] == body["message"]
    return body["title"]


def stored(manager, folder_id: str, relpath: str) -> Path:
    return FolderStore(manager.pdb.storage_root).path("local", folder_id) / relpath


# --- keypair mode ---------------------------------------------------------------------------------


def test_config_reports_mode_endpoint_and_user_without_secrets(ext, manager, backendai_settings):
    config = ext.json("GET", "_ext/config")
    assert config["mode"] == "keypair" and config["endpoint"] == manager.url and config["version"] == __version__
    assert config["user"]["username"] == "alice" and config["user"]["via"] == "keypair" and config["error"] is None
    raw = ext.fetch("GET", "_ext/config").body.decode()
    assert backendai_settings["secret_key"] not in raw and "secret" not in raw.lower()


def test_session_info_outside_a_session_and_for_a_session_the_manager_does_not_know(ext, monkeypatch):
    monkeypatch.delenv("BACKENDAI_LIFETIME_WARNING", raising=False)
    info = ext.json("GET", "_ext/session")
    assert info == {
        "id": None, "name": None, "ends_at": None, "ends_in": None, "warn_before": 600.0, "error": None,
    }  # fmt: skip
    monkeypatch.setenv("BACKENDAI_SESSION_ID", "0e0e0e0e-0000-4000-8000-000000000000")
    info = ext.json("GET", "_ext/session")
    assert info["ends_in"] is None and "did not answer this session's end (404)" in info["error"], info


def test_keypair_mode_forwards_signed_requests(ext, manager):
    assert ext.json("GET", "folders") == []
    created = ext.json("POST", "folders", 201, json={"name": "data", "host": "local"})
    assert created["name"] == "data" and created["permission"] == "wd"
    # The manager saw alice's keypair: the folder is hers, and her keypair counted the calls.
    assert [f["name"] for f in manager.call("GET", "/folders", "alice").json()] == ["data"]
    assert manager.call("GET", "/folders", "bob").json() == []
    assert [f["name"] for f in ext.json("GET", "folders")] == ["data"]
    # Query strings and paths with encoded characters pass unchanged.
    ext.json("POST", "folders/data/mkdir", 201, json={"path": "a b/ü", "parents": True})
    listing = ext.json("GET", "folders/data/files?path=" + urllib.parse.quote("a b"))
    assert [i["name"] for i in listing["items"]] == ["ü"]
    # The manager's refusals come back as they are: status, Backend.AI error JSON.
    missing = ext.fetch("GET", "folders/nope/files")
    assert missing.code == 404 and json.loads(missing.body)["title"] and "probs" in json.loads(missing.body)["type"]
    # The browser's Authorization (the Jupyter token) never reaches the manager, and a
    # manager-style Authorization from the browser does not replace the extension's.
    forged = ext.fetch("GET", "auth/whoami", headers={"X-Forwarded-For": "1.2.3.4"})
    assert json.loads(forged.body)["username"] == "alice"


def test_dot_segments_are_refused(ext):
    for path in ("folders/../../hub/api/users", "folders/%2e%2e/%2E%2E/x", "folders/..%2F..%2Fhub"):
        refused = ext.fetch("GET", path)
        assert refused.code == 400 and "is not allowed" in error_title(refused), (path, refused.code)
    assert "'%2e%2e' is not allowed" in error_title(ext.fetch("GET", "folders/%2e%2e/x"))


def test_tus_upload_through_the_extension_and_ranged_download(ext, manager, tmp_path):
    folder = ext.json("POST", "folders", 201, json={"name": "up", "host": "local"})
    payload = os.urandom(3 * MiB + 17)
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    ticket = ext.json("POST", "folders/up/request-upload", json={"path": "in/ü file.bin", "size": len(payload)})
    upload_url = ext.url("folders/_/tus/upload?transfer_token=" + urllib.parse.quote(ticket["token"]))

    options = ext.fetch("OPTIONS", "folders/_/tus/upload")
    assert options.code == 204 and options.headers["Tus-Version"] == "1.0.0"
    assert "creation" in options.headers["Tus-Extension"]

    # tuspy's creation flow: POST to the extension, follow the Location it answers, PATCH in chunks.
    seen: list[str] = []

    def upload() -> None:
        client = tusclient.TusClient(upload_url, headers={"Authorization": f"token {ext.token}"})
        uploader = client.uploader(file_path=str(source), chunk_size=MiB)
        uploader.upload()
        seen.append(uploader.url)

    run(ext.loop, asyncio.to_thread(upload))
    # The Location pointed back into the extension (same origin), not at the manager.
    assert seen[0].startswith(ext.url("folders/_/tus/upload?transfer_token=")), seen
    assert stored(manager, folder["id"], "in/ü file.bin").read_bytes() == payload

    ticket = ext.json("POST", "folders/up/request-download", json={"path": "in/ü file.bin"})
    download = "folders/_/download?transfer_token=" + urllib.parse.quote(ticket["token"])
    whole = ext.fetch("GET", download)
    assert whole.code == 200 and whole.body == payload and whole.headers["Accept-Ranges"] == "bytes"
    assert "ü" in urllib.parse.unquote(whole.headers["Content-Disposition"])
    assert whole.headers["Content-Type"] == "application/octet-stream"
    part = ext.fetch("GET", download, headers={"Range": "bytes=100-1123"})
    assert part.code == 206 and part.body == payload[100:1124]
    assert part.headers["Content-Range"] == f"bytes 100-1123/{len(payload)}"
    head = ext.fetch("HEAD", download)
    assert head.code == 200 and int(head.headers["Content-Length"]) == len(payload) and head.body == b""
    beyond = ext.fetch("GET", download, headers={"Range": f"bytes={len(payload) + 10}-"})
    assert beyond.code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(payload)}"


# --- who may call it --------------------------------------------------------------------------------


def test_unauthenticated_requests_are_refused(ext, manager):
    create = {"name": "sneaky", "host": "local"}
    for method, path in [("GET", "_ext/config"), ("GET", "folders"), ("POST", "folders"), ("OPTIONS", "folders"),
                         ("PATCH", "folders/_/tus/upload?transfer_token=x"), ("DELETE", "folders/sneaky")]:  # fmt: skip
        refused = ext.fetch(method, path, auth=False, **({"json": create} if method == "POST" else {}))
        assert refused.code == 403, (method, path, refused.code)
        wrong = ext.fetch(method, path, headers={"Authorization": "token not-the-token"})
        assert wrong.code == 403, (method, path, wrong.code)
    assert manager.call("GET", "/folders", "alice").json() == []  # nothing reached the manager


def test_browser_requests_need_the_xsrf_token(ext, manager):
    """Cookie-authenticated: GET works, a POST without ``X-XSRFToken`` is refused, with it it goes through."""
    landed = run(
        ext.loop,
        ext.client.fetch(f"{ext.origin}{ext.serverapp.base_url}?token={ext.token}", follow_redirects=False,
                         raise_error=False),
    )  # fmt: skip
    cookies = [c.split(";", 1)[0] for c in landed.headers.get_list("Set-Cookie")]
    assert any(c.startswith("username-") for c in cookies), landed.headers
    xsrf = [c for c in cookies if c.startswith("_xsrf=")]
    assert xsrf, "the server set no _xsrf cookie"
    cookie = "; ".join(cookies)
    assert ext.fetch("GET", "folders", auth=False, headers={"Cookie": cookie}).code == 200
    refused = ext.fetch("POST", "folders", auth=False, headers={"Cookie": cookie}, json={"name": "x", "host": "local"})
    assert refused.code == 403 and "xsrf" in error_title(refused).lower()
    token = xsrf[0].split("=", 1)[1]
    browser = {"Cookie": cookie, "X-XSRFToken": token}
    accepted = ext.fetch("POST", "folders", auth=False, json={"name": "x", "host": "local"}, headers=browser)
    assert accepted.code == 201, accepted.body
    assert [f["name"] for f in manager.call("GET", "/folders", "alice").json()] == ["x"]
    # With the login cookie, the manager's own spelling ?token= works too (the URL it hands out).
    ticket = ext.json(
        "POST", "folders/x/request-upload", auth=False, headers=browser, json={"path": "c.txt", "size": 2}
    )
    made = ext.fetch("POST", f"folders/_/tus/upload?token={ticket['token']}", auth=False,
                     headers={**browser, **TUS, "Upload-Length": "2"})  # fmt: skip
    assert made.code == 201 and made.headers["Location"].endswith(f"?transfer_token={ticket['token']}")


# --- odd base URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "jp_base_url",
    ["/user/j%C3%BCrgen%20x/my%2Bserver/", "/100%/", "/user/jo.hn+x/"],
    ids=["hub-encoded", "lone-percent", "regex-chars"],
)
def test_odd_base_urls(ext, manager, jp_base_url, tmp_path):
    assert ext.prefix.startswith("/") and " " not in ext.prefix and "ü" not in ext.prefix
    assert ext.json("GET", "_ext/config")["user"]["username"] == "alice"
    ext.json("POST", "folders", 201, json={"name": "odd", "host": "local"})
    assert [f["name"] for f in ext.json("GET", "folders")] == ["odd"]
    # The tus Location comes back under this very prefix.
    ticket = ext.json("POST", "folders/odd/request-upload", json={"path": "f.txt", "size": 5})
    created = ext.fetch(
        "POST", "folders/_/tus/upload?transfer_token=" + ticket["token"], headers={**TUS, "Upload-Length": "5"}
    )
    assert created.code == 201, created.body
    assert created.headers["Location"] == f"{ext.prefix}folders/_/tus/upload?transfer_token={ticket['token']}"
    patched = ext.fetch("PATCH", created.headers["Location"][len(ext.prefix) :], body=b"hello",
                        headers={**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})  # fmt: skip
    assert patched.code == 204 and patched.headers["Upload-Offset"] == "5"


# --- failures ---------------------------------------------------------------------------------------


class TestUnreachable:
    @pytest.fixture
    def backendai_settings(self):
        return {"endpoint": f"http://127.0.0.1:{free_port()}", "access_key": "AKIAEXAMPLE", "secret_key": "s3cr3t"}

    def test_unreachable_manager_is_502(self, ext, backendai_settings):
        refused = ext.fetch("GET", "folders")
        assert refused.code == 502
        assert error_title(refused).startswith(f"the Backend.AI manager at {backendai_settings['endpoint']}")
        upload = ext.fetch("PATCH", "folders/_/tus/upload?transfer_token=x", body=os.urandom(MiB),
                           headers={**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})  # fmt: skip
        assert upload.code == 502 and "cannot be reached" in error_title(upload)
        config = ext.json("GET", "_ext/config")
        assert config["mode"] == "keypair" and config["user"] is None and "cannot be reached" in config["error"]
        assert "s3cr3t" not in json.dumps(config)


class TestUnconfigured:
    @pytest.fixture
    def backendai_settings(self):
        return {}

    def test_unconfigured_is_503_naming_the_settings(self, ext):
        refused = ext.fetch("GET", "folders")
        assert refused.code == 503
        title = error_title(refused)
        assert "c.BackendAIExtension.access_key" in title and "$JUPYTERHUB_API_TOKEN" in title
        assert ext.fetch("GET", "_ext/config").code == 503


class TestNoEndpoint:
    @pytest.fixture
    def backendai_settings(self):
        return {"access_key": "AKIAEXAMPLE", "secret_key": "s3cr3t"}

    def test_missing_endpoint_is_503_naming_it(self, ext):
        refused = ext.fetch("POST", "folders", json={"name": "x"})
        assert refused.code == 503 and "c.BackendAIExtension.endpoint" in error_title(refused)


# --- hub mode ---------------------------------------------------------------------------------------


class TestHubMode:
    """Inside a session: ``$JUPYTERHUB_API_TOKEN`` and ``$BACKENDAI_ENDPOINT`` from the hub, no config."""

    @pytest.fixture
    def backendai_settings(self, backendai: HubWithManager, monkeypatch):
        hub = backendai.hub
        assert hub.api("POST", "/users/alice").status_code in (201, 409)
        made = hub.api("POST", "/users/alice/tokens", json={"note": "serverext test", "expires_in": 600})
        assert made.status_code == 201, made.text
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", made.json()["token"])
        monkeypatch.setenv("BACKENDAI_ENDPOINT", hub.url + PREFIX)
        monkeypatch.setenv("BACKENDAI_ACCESS_KEY", backendai.keys("alice")[0])  # what sessions get; no secret
        return {}

    def test_hub_token_mode(self, ext, backendai: HubWithManager):
        config = ext.json("GET", "_ext/config")
        assert config["mode"] == "hub" and config["endpoint"] == backendai.hub.url + PREFIX
        assert config["user"]["username"] == "alice" and config["user"]["via"] == "hub-token"
        assert os.environ["JUPYTERHUB_API_TOKEN"] not in json.dumps(config)
        ext.json("POST", "folders", 201, json={"name": "hubbed", "host": "local"})
        assert [f["name"] for f in ext.json("GET", "folders")] == ["hubbed"]
        assert [f["name"] for f in backendai.call("GET", "/folders", "alice").json()] == ["hubbed"]
        # tus through the hub's proxy: the Location names the manager's prefixed path, rewritten.
        ticket = ext.json("POST", "folders/hubbed/request-upload", json={"path": "h.txt", "size": 3})
        created = ext.fetch("POST", "folders/_/tus/upload?transfer_token=" + ticket["token"],
                            headers={**TUS, "Upload-Length": "3"})  # fmt: skip
        assert created.code == 201 and created.headers["Location"].startswith(ext.prefix + "folders/_/tus/upload?")


@pytest.fixture
def hub_with_sessions(make_hub, pdb) -> HubWithManager:
    """A hub (local backend) running the manager, configured like ``jupyterhub_config.py``: its
    sessions get ``$BACKENDAI_ENDPOINT``, the manager's URL through the proxy."""
    return HubWithManager(start_hub_with_manager(make_hub, pdb, endpoint="proxy"), pdb)


def test_inside_a_real_session(hub_with_sessions: HubWithManager):
    """A session started through the manager runs jupyter-server with the extension enabled by the
    installed config, and forwards with the session's own ``$JUPYTERHUB_API_TOKEN``."""
    backendai = hub_with_sessions
    created = backendai.call("POST", "/session", "alice", {"image": "python-local:3", "name": "lab", "preset": "small"})
    assert created.status_code == 201, created.text
    backendai.wait_status("alice", "lab", {"RUNNING"})
    wait_ready(backendai.hub, "alice", "lab")
    made = backendai.hub.api("POST", "/users/alice/tokens", json={"note": "serverext", "expires_in": 600})
    assert made.status_code == 201, made.text
    alice = {"Authorization": f"token {made.json()['token']}"}
    base = f"{backendai.hub.url}/user/alice/lab/backendai/"
    config = requests.get(base + "_ext/config", headers=alice, timeout=30)
    assert config.status_code == 200, config.text
    assert config.json()["mode"] == "hub" and config.json()["endpoint"] == backendai.hub.url + PREFIX
    assert config.json()["user"]["username"] == "alice" and config.json()["user"]["via"] == "hub-token"
    made_folder = requests.post(base + "folders", json={"name": "from-lab", "host": "local"}, headers=alice, timeout=30)
    assert made_folder.status_code == 201, made_folder.text
    assert [f["name"] for f in backendai.call("GET", "/folders", "alice").json()] == ["from-lab"]
    # bob's token does not open alice's session (the hub's own access rule).
    bob = backendai.hub.api("POST", "/users/bob", json={})
    assert bob.status_code in (201, 409)
    bob_token = backendai.hub.api("POST", "/users/bob/tokens", json={"expires_in": 600}).json()["token"]
    denied = requests.get(base + "folders", headers={"Authorization": f"token {bob_token}"}, timeout=30)
    assert denied.status_code in (403, 404), denied.status_code
    assert backendai.call("DELETE", "/session/lab", "alice").status_code == 200


# --- streaming ----------------------------------------------------------------------------------------

LARGE = int(os.environ.get("BACKENDAI_TEST_SERVEREXT_LARGE_MIB", "256")) * MiB


class RSSSampler:
    """Peak resident memory of this process (the jupyter-server runs in it) while sampling."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak - self.baseline


def test_large_upload_and_download_are_streamed(ext, manager, tmp_path):
    folder = ext.json("POST", "folders", 201, json={"name": "big", "host": "local"})
    source = tmp_path / "large.bin"
    with open(source, "wb") as f:
        for _ in range(LARGE // MiB):
            f.write(os.urandom(MiB))
    ticket = ext.json("POST", "folders/big/request-upload", json={"path": "large.bin", "size": LARGE})

    async def produce(write):
        with open(source, "rb") as f:
            for block in iter(lambda: f.read(256 * 1024), b""):
                await write(block)

    sampler = RSSSampler()
    started = time.monotonic()
    patched = ext.fetch("PATCH", "folders/_/tus/upload?transfer_token=" + ticket["token"], body_producer=produce,
                        headers={**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0",
                                 "Content-Length": str(LARGE)})  # fmt: skip
    upload_growth = sampler.stop()
    upload_seconds = time.monotonic() - started
    assert patched.code == 204, patched.body
    assert patched.headers["Upload-Offset"] == str(LARGE)
    assert sha256(stored(manager, folder["id"], "large.bin")) == sha256(source)

    ticket = ext.json("POST", "folders/big/request-download", json={"path": "large.bin"})
    target = tmp_path / "copy.bin"
    with open(target, "wb") as out:
        sampler = RSSSampler()
        started = time.monotonic()
        got = ext.fetch(
            "GET",
            "folders/_/download?transfer_token=" + ticket["token"],
            streaming_callback=lambda c: out.write(c) and None,
        )
        download_growth = sampler.stop()
        download_seconds = time.monotonic() - started
    assert got.code == 200 and sha256(target) == sha256(source)
    print(
        f"\nserverext streaming {LARGE // MiB} MiB: upload {upload_seconds:.1f} s, RSS +{upload_growth / MiB:.1f} MiB;"
        f" download {download_seconds:.1f} s, RSS +{download_growth / MiB:.1f} MiB"
    )
    # Held in memory, either would have grown by the file's size.
    assert upload_growth < min(64 * MiB, LARGE // 4), upload_growth
    assert download_growth < min(64 * MiB, LARGE // 4), download_growth


def test_upload_refused_by_the_manager_mid_stream_is_an_error_not_a_hang(ext, manager):
    """A PATCH at the wrong offset: the manager refuses before reading the body."""
    ext.json("POST", "folders", 201, json={"name": "w", "host": "local"})
    ticket = ext.json("POST", "folders/w/request-upload", json={"path": "w.bin", "size": 8 * MiB})
    wrong = ext.fetch("PATCH", "folders/_/tus/upload?transfer_token=" + ticket["token"], body=os.urandom(4 * MiB),
                      headers={**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "5"})  # fmt: skip
    assert wrong.code in (409, 502), wrong.code
    head = ext.fetch("HEAD", "folders/_/tus/upload?transfer_token=" + ticket["token"], headers=TUS)
    assert head.code == 200 and head.headers["Upload-Offset"] == "0"


# --- installation -------------------------------------------------------------------------------------


def test_installed_package_enables_the_extension(tmp_path):
    """``pip install`` (``-e`` too) put the jupyter-config file where jupyter-server reads it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "user-config")  # no user-level settings interfere
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter_server.extension.serverextension", "list"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    out = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    assert re.search(r"^\s*jupyter_backendai\.serverext\s+enabled\s*$", out, re.M), out
    assert re.search(r"^\s*jupyter_backendai\.serverext\s+OK\s*$", out, re.M), out
    assert (Path(sys.prefix) / "etc/jupyter/jupyter_server_config.d/jupyter_backendai.json").is_file()


def test_wheel_ships_the_jupyter_config(tmp_path):
    """The wheel's shared data installs the file under etc/jupyter/jupyter_server_config.d/."""
    # Without build isolation when the build backend is at hand (much faster), else pip fetches it.
    backend = ("hatchling", "hatch_jupyter_builder")
    isolation = ["--no-build-isolation"] if all(importlib.util.find_spec(m) for m in backend) else []
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        wanted = [
            n for n in names if n.endswith(".data/data/etc/jupyter/jupyter_server_config.d/jupyter_backendai.json")
        ]
        assert wanted, names
        config = json.loads(archive.read(wanted[0]))
    assert config == {"ServerApp": {"jpserver_extensions": {"jupyter_backendai.serverext": True}}}
    assert "jupyter_backendai/serverext/handlers.py" in names


def test_pure_helpers():
    assert proxy.url_prefix("/") == "/backendai/"
    assert proxy.url_prefix("/a b/ü/100%/") == "/a%20b/%C3%BC/100%/backendai/"
    assert proxy.url_prefix("/user/j%C3%BCrgen/") == "/user/j%C3%BCrgen/backendai/"
    up = proxy.Upstream("hub", "http://127.0.0.1:8000/services/backendai", token="t")
    rewrite = proxy.rewrite_location
    assert rewrite("/services/backendai/folders/_/tus/upload?token=x&a=%20", up, "/p/backendai/") == (
        "/p/backendai/folders/_/tus/upload?transfer_token=x&a=%20"
    )
    assert proxy.forward_query("transfer_token=a%2Bb&token=jt&x=1+2") == "token=a%2Bb&x=1+2"
    assert proxy.forward_query("token=a&x=%20") == "token=a&x=%20"
    assert proxy.forward_query("token=jupyter&x=1", "jupyter") == "x=1"
    assert rewrite("http://127.0.0.1:8000/services/backendai/x", up, "/p/backendai/") == "/p/backendai/x"
    assert rewrite("http://elsewhere/services/backendai/x", up, "/p/") == "http://elsewhere/services/backendai/x"
    assert rewrite("/hub/login", up, "/p/") == "/hub/login"
    assert rewrite("relative?x", up, "/p/") == "relative?x"
    root = proxy.Upstream("keypair", "https://m.example.org", access_key="A", secret_key="S")
    assert rewrite("https://m.example.org:443/folders/x", root, "/p/") == "/p/folders/x"
    assert "S" not in repr(root).replace("Upstream", "") and "t'" not in repr(up)
    with pytest.raises(proxy.BadPath):
        proxy.forward_path("/p/folders/%2E%2E/x", "/p/")
    assert proxy.forward_path("/p/folders/a%2Fb/..x", "/p/") == "folders/a%2Fb/..x"
    with pytest.raises(proxy.NotConfigured, match="secret_key"):
        proxy.resolve_upstream(access_key="A", endpoint="http://x", environ={})
    clock = proxy.UniqueClock()
    dates = [clock.now() for _ in range(1000)]
    assert len(set(dates)) == 1000 and dates == sorted(dates)


def test_own_session_is_told_from_other_paths():
    from jupyter_backendai.serverext.proxy import is_own_session

    env = {"BACKENDAI_SESSION_ID": "3d6e1757-ae05-46ed-8b29-2f5be943c4ba", "BACKENDAI_SESSION_NAME": "desk"}
    assert is_own_session("session/desk", env)
    assert is_own_session("session/3d6e1757-ae05-46ed-8b29-2f5be943c4ba", env)
    assert is_own_session("/session/d%65sk", env)
    assert not is_own_session("session/other", env)
    assert not is_own_session("session/desk/logs", env)
    assert not is_own_session("folders/desk", env)
    assert not is_own_session("session/desk", {})  # outside a session nothing is its own
