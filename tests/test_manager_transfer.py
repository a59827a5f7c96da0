"""Uploads (tus 1.0.0, with ``tuspy``) and ranged downloads against a live manager, and their tokens."""

from __future__ import annotations

import os
import socket
import time
import urllib.parse
from pathlib import Path

import requests
import tusclient.client as tusclient  # noqa: E402 - tuspy, a real tus client (a test dependency)

from jupyter_backendai.manager import transfer_tokens
from jupyter_backendai.storage import FolderStore

SECRET = b"test-transfer-secret"  # what the manager fixture configures
TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def create(manager, who: str, name: str, **body) -> dict:
    r = manager.call("POST", "/folders", who, json_body={"name": name, "host": "local", **body})
    assert r.status_code == 201, r.text
    return r.json()


def directory(manager, folder_id: str) -> Path:
    return FolderStore(manager.pdb.storage_root).path("local", folder_id)


def request_upload(manager, who: str, folder: str, path: str, size: int) -> dict:
    r = manager.call("POST", f"/folders/{folder}/request-upload", who, json_body={"path": path, "size": size})
    assert r.status_code == 200, r.text
    return r.json()


def request_download(manager, who: str, folder: str, path: str) -> dict:
    r = manager.call("POST", f"/folders/{folder}/request-download", who, json_body={"path": path})
    assert r.status_code == 200, r.text
    return r.json()


def offset(url: str) -> int:
    r = requests.head(url, headers=TUS, timeout=10)
    assert r.status_code == 200, r.text
    return int(r.headers["Upload-Offset"])


def metric(manager, direction: str) -> float:
    text = requests.get(manager.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f'backendai_manager_transfer_bytes_total{{direction="{direction}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_tuspy_upload_in_chunks_with_interruption_and_resume(manager, tmp_path):
    view = create(manager, "alice", "data")
    payload = os.urandom(3 * 1024 * 1024 + 123)
    source = tmp_path / "big file ü.bin"
    source.write_bytes(payload)
    ticket = request_upload(manager, "alice", "data", "in/big file ü.bin", len(payload))
    url = ticket["url"]
    assert ticket["path"] == "in/big file ü.bin" and "/folders/_/tus/upload?token=" in url

    # First client: two chunks of 512 KiB, then it "dies".
    client = tusclient.TusClient(manager.url)
    first = client.uploader(file_path=str(source), url=url, chunk_size=512 * 1024)
    first.upload(stop_at=1024 * 1024)
    assert offset(url) == 1024 * 1024
    assert not (directory(manager, view["id"]) / "in").exists()  # nothing visible before the end

    # A raw PATCH cut off mid-body: what arrived is kept.
    token = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["token"][0]
    part = payload[1024 * 1024 : 1024 * 1024 + 300_000]
    with socket.create_connection(("127.0.0.1", manager.port)) as s:
        head = (
            f"PATCH /folders/_/tus/upload?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {1024 * 1024}\r\nContent-Length: {len(payload) - 1024 * 1024}\r\n\r\n"
        )
        s.sendall(head.encode() + part)
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while offset(url) != 1024 * 1024 + len(part) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert offset(url) == 1024 * 1024 + len(part)

    # A new client on the same URL resumes from the server's offset.
    second = tusclient.TusClient(manager.url).uploader(file_path=str(source), url=url, chunk_size=1024 * 1024)
    assert second.offset == 1024 * 1024 + len(part)
    second.upload()
    assert (directory(manager, view["id"]) / "in" / "big file ü.bin").read_bytes() == payload
    assert requests.head(url, headers=TUS, timeout=10).status_code == 404  # the upload session is gone
    assert metric(manager, "upload") == len(payload)

    listing = manager.call("GET", "/folders/data/files", "alice", params={"path": "in"}).json()["items"]
    assert [(i["name"], i["size"]) for i in listing] == [("big file ü.bin", len(payload))]


def test_tuspy_creation_flow_and_empty_files(manager, tmp_path):
    view = create(manager, "alice", "data")
    source = tmp_path / "small.txt"
    source.write_bytes(b"hello tus")
    ticket = request_upload(manager, "alice", "data", "small.txt", 9)
    # Without a URL, tuspy POSTs to the client's URL and follows Location.
    uploader = tusclient.TusClient(ticket["url"]).uploader(file_path=str(source), chunk_size=4)
    uploader.upload()
    assert (directory(manager, view["id"]) / "small.txt").read_bytes() == b"hello tus"

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    ticket = request_upload(manager, "alice", "data", "empty.txt", 0)
    tusclient.TusClient(manager.url).uploader(file_path=str(empty), url=ticket["url"]).upload()
    assert (directory(manager, view["id"]) / "empty.txt").read_bytes() == b""

    ticket = request_upload(manager, "alice", "data", "x.txt", 5)
    wrong = requests.post(ticket["url"], headers={**TUS, "Upload-Length": "6"}, timeout=10)
    assert wrong.status_code == 400 and "differs from the 5 bytes" in wrong.json()["title"]


def test_tus_protocol_details(manager):
    view = create(manager, "alice", "data")
    ticket = request_upload(manager, "alice", "data", "f.txt", 10)
    url = ticket["url"]

    options = requests.options(manager.url + "/folders/_/tus/upload", timeout=10)
    assert options.status_code == 204
    assert options.headers["Tus-Version"] == "1.0.0" and options.headers["Tus-Resumable"] == "1.0.0"
    assert "creation" in options.headers["Tus-Extension"] and int(options.headers["Tus-Max-Size"]) > 0

    head = requests.head(url, headers=TUS, timeout=10)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == "0" and head.headers["Upload-Length"] == "10"
    assert head.headers["Cache-Control"] == "no-store"

    wrong_type = requests.patch(url, data=b"abc", headers={**TUS, "Content-Type": "text/plain", "Upload-Offset": "0"})
    assert wrong_type.status_code == 415 and "offset+octet-stream" in wrong_type.json()["title"]
    wrong_offset = requests.patch(url, data=b"abc", headers={**PATCH, "Upload-Offset": "5"}, timeout=10)
    assert wrong_offset.status_code == 409 and wrong_offset.headers["Upload-Offset"] == "0"
    no_offset = requests.patch(url, data=b"abc", headers=PATCH, timeout=10)
    assert no_offset.status_code == 400
    version = requests.patch(url, data=b"abc", headers={**PATCH, "Tus-Resumable": "0.2", "Upload-Offset": "0"})
    assert version.status_code == 412 and version.headers["Tus-Version"] == "1.0.0"
    too_long = requests.patch(url, data=b"x" * 11, headers={**PATCH, "Upload-Offset": "0"}, timeout=10)
    assert too_long.status_code == 413 and offset(url) == 0

    done = requests.patch(url, data=b"0123", headers={**PATCH, "Upload-Offset": "0"}, timeout=10)
    assert done.status_code == 204 and done.headers["Upload-Offset"] == "4"
    done = requests.patch(url, data=b"456789", headers={**PATCH, "Upload-Offset": "4"}, timeout=10)
    assert done.status_code == 204 and done.headers["Upload-Offset"] == "10"
    assert (directory(manager, view["id"]) / "f.txt").read_bytes() == b"0123456789"

    # Termination drops the upload.
    ticket = request_upload(manager, "alice", "data", "g.txt", 10)
    requests.patch(ticket["url"], data=b"01", headers={**PATCH, "Upload-Offset": "0"}, timeout=10)
    assert requests.delete(ticket["url"], headers=TUS, timeout=10).status_code == 204
    assert requests.head(ticket["url"], headers=TUS, timeout=10).status_code == 404
    assert not (directory(manager, view["id"]) / "g.txt").exists()


def test_tokens_are_checked(manager):
    view = create(manager, "alice", "data")
    (directory(manager, view["id"]) / "f.txt").write_bytes(b"content")
    up = request_upload(manager, "alice", "data", "new.txt", 3)
    down = request_download(manager, "alice", "data", "f.txt")
    base = manager.url + "/folders/_/"

    assert requests.head(base + "tus/upload", headers=TUS, timeout=10).status_code == 401
    missing = requests.get(base + "download", timeout=10)
    assert missing.status_code == 401 and "transfer token" in missing.json()["title"]
    header, body, sig = down["token"].split(".")
    claims = transfer_tokens.verify(SECRET, down["token"], op="download")
    forged_body = transfer_tokens._b64(b'{"op":"download","folder":"x","path":"../../etc/passwd","exp":9999999999}')
    for bad in (f"{header}.{forged_body}.{sig}", f"{header}.{body}.{sig[:-2]}xx", "garbage", "a.b.c"):
        r = requests.get(base + "download", params={"token": bad}, timeout=10)
        assert r.status_code == 401 and r.json()["title"].startswith("the transfer token"), r.text
    expired = transfer_tokens.issue(SECRET, {k: v for k, v in claims.items() if k not in ("iat", "exp")}, ttl=-10)
    r = requests.get(base + "download", params={"token": expired}, timeout=10)
    assert r.status_code == 401 and r.json()["title"] == "the transfer token has expired"
    other_key = transfer_tokens.issue(b"another secret", claims, ttl=60)
    assert requests.get(base + "download", params={"token": other_key}, timeout=10).status_code == 401

    # A download token does not upload, an upload token does not download.
    r = requests.head(base + "tus/upload", params={"token": down["token"]}, headers=TUS, timeout=10)
    assert r.status_code == 403
    r = requests.get(base + "download", params={"token": up["token"]}, timeout=10)
    assert r.status_code == 403 and r.json()["title"] == "the transfer token is not for download"
    assert requests.get(down["url"], timeout=10).content == b"content"


def test_upload_refusals(manager):
    create(manager, "alice", "small", quota=1000)
    directory_ = manager.call("GET", "/folders/small/usage", "alice").json()
    assert directory_["quota"] == 1000
    big = manager.call("POST", "/folders/small/request-upload", "alice", json_body={"path": "f", "size": 1001})
    assert big.status_code == 413, big.text
    answer = big.json()
    assert answer["size"] == 1001 and answer["quota"] == 1000 and answer["used_bytes"] == 0
    assert "over its capacity" in answer["title"]
    huge = manager.call("POST", "/folders/small/request-upload", "alice", json_body={"path": "f", "size": 2**70})
    assert huge.status_code == 413 and huge.json()["max_upload_size"] > 0
    for body, reason in [
        ({"path": "f"}, "'size' (bytes, zero or more) is required"),
        ({"path": "f", "size": -1}, "'size' (bytes, zero or more) is required"),
        ({"path": "f", "size": "many"}, "'size' must be a int"),
        ({"size": 3}, "'path' is required"),
        ({"path": "", "size": 3}, "'path' is required"),
    ]:
        r = manager.call("POST", "/folders/small/request-upload", "alice", json_body=body)
        assert r.status_code == 400 and r.json()["title"] == reason, r.text
    root = manager.call("POST", "/folders/small/request-upload", "alice", json_body={"path": ".", "size": 3})
    assert root.status_code == 409

    # Usage grown since request-upload: the PATCH re-checks the folder's capacity.
    ticket = request_upload(manager, "alice", "small", "a.bin", 600)
    other = request_upload(manager, "alice", "small", "b.bin", 600)
    r = requests.patch(ticket["url"], data=b"a" * 600, headers={**PATCH, "Upload-Offset": "0"}, timeout=10)
    assert r.status_code == 204
    r = requests.patch(other["url"], data=b"b" * 600, headers={**PATCH, "Upload-Offset": "0"}, timeout=10)
    assert r.status_code == 413 and r.json()["quota"] == 1000


def test_download_with_ranges(manager):
    view = create(manager, "alice", "data")
    root = directory(manager, view["id"])
    data = bytes(range(256)) * 4096  # 1 MiB
    (root / "dir with space").mkdir()
    (root / "dir with space" / "résumé 2024.bin").write_bytes(data)
    ticket = request_download(manager, "alice", "data", "dir with space/résumé 2024.bin")
    url = ticket["url"]

    whole = requests.get(url, timeout=30)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["Accept-Ranges"] == "bytes" and whole.headers["Content-Length"] == str(len(data))
    disposition = whole.headers["Content-Disposition"]
    assert disposition == "attachment; filename=\"r_sum_ 2024.bin\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.bin"

    part = requests.get(url, headers={"Range": "bytes=1000-1999"}, timeout=10)
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=10)
    assert tail.status_code == 206 and tail.content == data[-10:]
    open_end = requests.get(url, headers={"Range": f"bytes={len(data) - 5}-"}, timeout=10)
    assert open_end.content == data[-5:]
    outside = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=10)
    assert outside.status_code == 416 and outside.headers["Content-Range"] == f"bytes */{len(data)}"
    malformed = requests.get(url, headers={"Range": "lines=1-2"}, timeout=10)
    assert malformed.status_code == 416
    head = requests.head(url, headers={"Range": "bytes=0-9"}, timeout=10)
    assert head.status_code == 206 and head.headers["Content-Length"] == "10" and not head.content
    assert metric(manager, "download") == len(data) + 1000 + 10 + 5

    # Directories and links are not downloadable; a link planted after the token was issued is refused too.
    d = manager.call("POST", "/folders/data/request-download", "alice", json_body={"path": "dir with space"})
    assert d.status_code == 400 and "not a file" in d.json()["title"]
    archive = manager.call("POST", "/folders/data/request-download", "alice", json_body={"path": "x", "archive": True})
    assert archive.status_code == 400
    (root / "victim.txt").write_text("x")
    swapped = request_download(manager, "alice", "data", "victim.txt")
    (root / "victim.txt").unlink()
    os.symlink("/etc/passwd", root / "victim.txt")
    r = requests.get(swapped["url"], timeout=10)
    assert r.status_code == 400 and "symbolic link" in r.json()["title"] and "root:" not in r.text


def test_upload_over_a_planted_link_is_refused(manager, tmp_path):
    view = create(manager, "alice", "data")
    root = directory(manager, view["id"])
    outside = tmp_path / "outside"
    outside.mkdir()
    ticket = request_upload(manager, "alice", "data", "sub/new.txt", 3)
    os.symlink(outside, root / "sub")  # planted between request-upload and the upload's end
    r = requests.patch(ticket["url"], data=b"abc", headers={**PATCH, "Upload-Offset": "0"}, timeout=10)
    assert r.status_code == 400 and "symbolic link" in r.json()["title"]
    assert os.listdir(outside) == []
