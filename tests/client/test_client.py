"""``jupyter_backendai.client`` against a live manager: keypair signing, folders, resumable transfers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import requests

from jupyter_backendai.client import (
    AsyncClient,
    Client,
    ConfigurationError,
    ManagerError,
    TransferError,
    discover_credentials,
    discover_endpoint,
)
from jupyter_backendai.client import sync as client_sync
from jupyter_backendai.storage import FolderStore
from testing.manager import sha256

MiB = 1024 * 1024
DISCOVERY_VARS = (
    "BACKENDAI_ENDPOINT",
    "BACKEND_ENDPOINT",
    "BACKEND_ACCESS_KEY",
    "BACKEND_SECRET_KEY",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_BASE_URL",
    "JUPYTERHUB_PUBLIC_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No discovery variable of the machine running the tests leaks in; retries do not sleep."""
    for name in DISCOVERY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(client_sync, "BACKOFF", (0,))


@pytest.fixture
def alice(manager):
    access, secret = manager.keys("alice")
    with Client(manager.url, access_key=access, secret_key=secret) as client:
        yield client


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def stored(manager, folder: dict, relpath: str) -> Path:
    return FolderStore(manager.pdb.storage_root).path("local", folder["id"]) / relpath


# --- account, folders, errors ------------------------------------------------------------------


def test_whoami_and_version(alice):
    me = alice.whoami()
    assert me["username"] == "alice" and me["email"] == "alice@example.com" and me["via"] == "keypair"
    assert alice.version()["version"].startswith("v")
    assert "secret" not in repr(alice).lower() and alice.credentials.secret_key not in repr(alice)


def test_folder_operations(alice):
    view = alice.create_folder("work")
    assert view["name"] == "work" and view["host"] == "local" and view["permission"] == "wd"
    assert [f["name"] for f in alice.list_folders()] == ["work"]
    assert alice.get_folder("work")["id"] == view["id"]
    assert alice.mkdir("work", "a b/ü", parents=True) == ["a b/ü"]
    assert alice.mkdir("work", ["a b", "x"], exist_ok=True) == ["a b", "x"]
    assert [(i["name"], i["type"]) for i in alice.list_files("work")] == [("a b", "dir"), ("x", "dir")]
    assert [i["name"] for i in alice.list_files("work", "a b")] == ["ü"]
    assert alice.delete_files("work", "x", recursive=True) == ["x"]
    assert alice.delete_files("work", ["a b"], recursive=True) == ["a b"]
    assert alice.list_files("work") == []
    alice.delete_folder("work")
    assert alice.list_folders() == []


def test_errors_carry_status_and_title(manager, alice):
    with pytest.raises(ManagerError) as missing:
        alice.list_files("nope")
    assert missing.value.status == 404 and missing.value.title and missing.value.body["status"] == 404
    alice.create_folder("f")
    alice.mkdir("f", "d")
    with pytest.raises(ManagerError) as conflict:
        alice.delete_files("f", "d")
    assert conflict.value.status == 409 and "needs recursive" in conflict.value.title
    with pytest.raises(ManagerError) as bad_path:
        alice.mkdir("f", "../escape")
    assert 400 <= bad_path.value.status < 500 and str(bad_path.value).startswith(f"{bad_path.value.status}: ")

    access, _ = manager.keys("alice")
    with Client(manager.url, access_key=access, secret_key="wrong") as forged, pytest.raises(ManagerError) as denied:
        forged.whoami()
    assert denied.value.status == 401 and "signature" in denied.value.title


# --- upload -------------------------------------------------------------------------------------


def test_upload_resumes_after_a_connection_error(manager, alice, monkeypatch, tmp_path):
    """The 2nd PATCH fails before sending; a HEAD finds the offset and the upload goes on."""
    folder = alice.create_folder("data")
    local = random_file(tmp_path / "big.bin", 20 * MiB)
    real_patch, real_head = alice.session.patch, alice.session.head
    calls = {"patch": 0, "head": 0}

    def flaky_patch(url, **kwargs):
        calls["patch"] += 1
        if calls["patch"] == 2:
            raise requests.ConnectionError("simulated: the network went away")
        return real_patch(url, **kwargs)

    def counting_head(url, **kwargs):
        calls["head"] += 1
        return real_head(url, **kwargs)

    monkeypatch.setattr(alice.session, "patch", flaky_patch)
    monkeypatch.setattr(alice.session, "head", counting_head)
    # progress=True without tqdm installed (or with it) must just work.
    assert alice.upload("data", local, "in/big.bin", chunk_size=2 * MiB, progress=True) == "in/big.bin"
    assert calls == {"patch": 11, "head": 1}
    assert sha256(stored(manager, folder, "in/big.bin")) == sha256(local)


def test_upload_resumes_after_a_break_mid_body(manager, alice, monkeypatch, tmp_path):
    """The connection breaks halfway through a PATCH body: the server keeps that half, the client resumes."""
    folder = alice.create_folder("data")
    local = random_file(tmp_path / "mid.bin", 20 * MiB)
    real_patch = alice.session.patch
    calls = {"patch": 0}

    class Breaking:
        def __init__(self, inner, limit):
            self.inner, self.sent, self.limit = inner, 0, limit

        def __len__(self):
            return len(self.inner)

        def read(self, size=-1):
            if self.sent >= self.limit:
                raise requests.ConnectionError("simulated: connection reset mid-body")
            data = self.inner.read(min(size, self.limit - self.sent) if size and size > 0 else self.limit - self.sent)
            self.sent += len(data)
            return data

    def flaky_patch(url, data=None, **kwargs):
        calls["patch"] += 1
        if calls["patch"] == 3:
            data = Breaking(data, len(data) // 2)
        return real_patch(url, data=data, **kwargs)

    real_head = alice.session.head
    offsets: list[int] = []

    def recording_head(url, **kwargs):
        response = real_head(url, **kwargs)
        offsets.append(int(response.headers["Upload-Offset"]))
        return response

    monkeypatch.setattr(alice.session, "patch", flaky_patch)
    monkeypatch.setattr(alice.session, "head", recording_head)
    alice.upload("data", local, chunk_size=4 * MiB, progress=False)
    # Resumed from what the server had: the two whole chunks, perhaps with part of the broken one.
    assert offsets and 8 * MiB <= offsets[0] <= 10 * MiB
    assert sha256(stored(manager, folder, "mid.bin")) == sha256(local)


def test_upload_gives_up_after_its_retries(alice, monkeypatch, tmp_path):
    alice.create_folder("data")
    local = random_file(tmp_path / "f.bin", MiB)

    def down(url, **kwargs):
        raise requests.ConnectionError("simulated: no network")

    monkeypatch.setattr(alice.session, "patch", down)
    monkeypatch.setattr(alice.session, "head", down)
    with pytest.raises(TransferError, match="failed 3 times"):
        alice.upload("data", local, chunk_size=MiB, progress=False, retries=2)
    assert alice.list_files("data") == []  # nothing half-written appears


def test_upload_of_an_empty_file(manager, alice, tmp_path):
    folder = alice.create_folder("data")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    alice.upload("data", empty, progress=False)
    assert stored(manager, folder, "empty.txt").read_bytes() == b""


def test_upload_refusals(alice, tmp_path):
    alice.create_folder("data")
    local = random_file(tmp_path / "x.bin", 10)
    with pytest.raises(ManagerError) as unsafe:
        alice.upload("data", local, "../../x.bin", progress=False)
    assert 400 <= unsafe.value.status < 500
    with pytest.raises(ManagerError) as missing:
        alice.upload("nope", local, progress=False)
    assert missing.value.status == 404


# --- download -----------------------------------------------------------------------------------


def test_download_completes_a_partial_file(manager, alice, tmp_path):
    folder = alice.create_folder("data")
    source = random_file(tmp_path / "source.bin", 9 * MiB + 123)
    alice.upload("data", source, "d/file.bin", progress=False)
    target = tmp_path / "file.bin"
    target.write_bytes(source.read_bytes()[: 3 * MiB + 7])  # an earlier, interrupted download

    assert alice.download("data", "d/file.bin", target, progress=False) == target
    assert sha256(target) == sha256(source) == sha256(stored(manager, folder, "d/file.bin"))

    # Complete already: nothing to fetch (416 from the server), the file stays as it is.
    assert alice.download("data", "d/file.bin", target, progress=True) == target
    assert sha256(target) == sha256(source)

    # Into a directory, keeping the name; resume=False starts over.
    into = tmp_path / "out"
    into.mkdir()
    (into / "file.bin").write_bytes(b"garbage")
    assert alice.download("data", "d/file.bin", into, progress=False, resume=False) == into / "file.bin"
    assert sha256(into / "file.bin") == sha256(source)

    # A local file longer than the remote one is not a prefix of it: downloaded again from the start.
    longer = tmp_path / "longer.bin"
    longer.write_bytes(os.urandom(10 * MiB))
    alice.download("data", "d/file.bin", longer, progress=False)
    assert sha256(longer) == sha256(source)


def test_download_resumes_after_a_broken_stream(alice, monkeypatch, tmp_path):
    alice.create_folder("data")
    source = random_file(tmp_path / "source.bin", 6 * MiB)
    alice.upload("data", source, progress=False)
    real_get = alice.session.get
    ranges: list[str | None] = []

    def flaky_get(url, **kwargs):
        ranges.append(kwargs.get("headers", {}).get("Range"))
        response = real_get(url, **kwargs)
        if len(ranges) == 1:
            real_iter = response.iter_content

            def breaking(chunk_size=1, decode_unicode=False):
                for i, block in enumerate(real_iter(chunk_size)):
                    if i == 2:
                        raise requests.exceptions.ChunkedEncodingError("simulated: connection reset")
                    yield block

            response.iter_content = breaking
        return response

    monkeypatch.setattr(alice.session, "get", flaky_get)
    target = alice.download("data", "source.bin", tmp_path / "copy.bin", progress=False, chunk_size=MiB)
    assert ranges == [None, f"bytes={2 * MiB}-"]
    assert sha256(target) == sha256(source)


def test_download_refusals(alice, tmp_path):
    alice.create_folder("data")
    alice.mkdir("data", "d")
    with pytest.raises(ManagerError) as missing:
        alice.download("data", "nope.bin", tmp_path, progress=False)
    assert missing.value.status == 404
    with pytest.raises(ManagerError) as directory:
        alice.download("data", "d", tmp_path / "d", progress=False)
    assert directory.value.status == 400 and "not a file" in directory.value.title


# --- sessions and resources ---------------------------------------------------------------------


def test_sessions_without_a_hub(alice):
    listing = alice.list_sessions()
    assert listing["total_count"] == 0 and listing["items"] == [] and listing["status"] == "running"
    with pytest.raises(ManagerError) as refused:
        alice.create_session("s1", image="python", resources={"cpu": 1}, folders=["data"])
    assert refused.value.status == 503 and "without a hub" in refused.value.title
    with pytest.raises(ManagerError) as missing:
        alice.get_session("s1")
    assert missing.value.status == 404
    with pytest.raises(ManagerError) as gone:
        alice.destroy_session("s1")
    assert gone.value.status == 404
    with pytest.raises(ManagerError) as bad_page:
        alice.list_sessions(page_size=1000)
    assert bad_page.value.status == 400


def test_resources(alice):
    assert isinstance(alice.presets(), list)
    check = alice.check_presets()
    assert isinstance(check, dict) and "presets" in check


# --- the asynchronous client --------------------------------------------------------------------


def test_async_client(manager, tmp_path):
    access, secret = manager.keys("alice")
    source = random_file(tmp_path / "a.bin", 3 * MiB)

    async def main():
        async with AsyncClient(manager.url, access_key=access, secret_key=secret) as client:
            me, folder = await asyncio.gather(client.whoami(), client.create_folder("async"))
            await client.upload("async", source, chunk_size=MiB, progress=False)
            names = [i["name"] for i in await client.list_files("async")]
            copy = await client.download("async", "a.bin", tmp_path / "copy.bin", progress=False)
            with pytest.raises(ManagerError) as missing:
                await client.list_files("nope")
            return me, folder, names, copy, missing.value.status

    me, folder, names, copy, status = asyncio.run(main())
    assert me["username"] == "alice" and folder["name"] == "async" and names == ["a.bin"] and status == 404
    assert sha256(copy) == sha256(source) == sha256(stored(manager, folder, "a.bin"))


# --- discovery ----------------------------------------------------------------------------------


def test_endpoint_discovery(monkeypatch):
    with pytest.raises(ConfigurationError, match="BACKENDAI_ENDPOINT"):
        discover_endpoint()
    assert discover_endpoint("http://m:8090/") == "http://m:8090"
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://hub:8081/hub/api")
    assert discover_endpoint() == "http://hub:8081/services/backendai"
    monkeypatch.setenv("JUPYTERHUB_BASE_URL", "/jh/")
    assert discover_endpoint() == "http://hub:8081/jh/services/backendai"
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", "https://hub.example.org/jh/")
    assert discover_endpoint() == "https://hub.example.org/jh/services/backendai"
    monkeypatch.setenv("BACKEND_ENDPOINT", "https://bai.example.org")
    assert discover_endpoint() == "https://bai.example.org"
    monkeypatch.setenv("BACKENDAI_ENDPOINT", "https://manager.example.org/services/backendai/")
    assert discover_endpoint() == "https://manager.example.org/services/backendai"
    assert discover_endpoint("http://explicit") == "http://explicit"
    with pytest.raises(ConfigurationError, match="not an http"):
        discover_endpoint("ftp://x")


def test_credential_discovery(monkeypatch):
    with pytest.raises(ConfigurationError, match="no credentials"):
        discover_credentials()
    with pytest.raises(ConfigurationError, match="go together"):
        discover_credentials(access_key="AK")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hubtoken")
    assert discover_credentials().token == "hubtoken" and not discover_credentials().signed
    monkeypatch.setenv("BACKEND_ACCESS_KEY", "AKENV")
    assert discover_credentials().token == "hubtoken"  # an access key alone is not a keypair
    monkeypatch.setenv("BACKEND_SECRET_KEY", "SKENV")
    assert discover_credentials().access_key == "AKENV" and discover_credentials().secret_key == "SKENV"
    assert discover_credentials(token="explicit").token == "explicit"
    assert discover_credentials(access_key="AK", secret_key="SK", token="t").access_key == "AK"
    assert "SKENV" not in repr(discover_credentials()) and "hubtoken" not in repr(
        discover_credentials(token="hubtoken")
    )


def test_session_environment_gives_endpoint_and_token(manager, monkeypatch):
    """Inside a session: endpoint and ``Authorization: token`` from the environment alone."""
    monkeypatch.setenv("BACKENDAI_ENDPOINT", manager.url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "session-token")
    sent: list[requests.PreparedRequest] = []
    with Client() as client:
        real_send = client.session.send

        def capture(prepared, **kwargs):
            sent.append(prepared)
            return real_send(prepared, **kwargs)

        monkeypatch.setattr(client.session, "send", capture)
        assert client.endpoint == manager.url
        with pytest.raises(ManagerError) as refused:  # this manager has no hub to check the token with
            client.whoami()
    assert sent[0].headers["Authorization"] == "token session-token"
    assert refused.value.status in (401, 403, 503) and refused.value.title


def test_keypair_from_the_environment(manager, monkeypatch):
    access, secret = manager.keys("bob")
    monkeypatch.setenv("BACKENDAI_ENDPOINT", manager.url + "/")
    monkeypatch.setenv("BACKEND_ACCESS_KEY", access)
    monkeypatch.setenv("BACKEND_SECRET_KEY", secret)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "ignored")
    with Client() as client:
        assert client.whoami()["username"] == "bob"
