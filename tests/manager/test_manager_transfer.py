"""Uploads (tus 1.0.0, with ``tuspy``) and ranged downloads against a live manager, and their tokens."""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import io
import json
import os
import socket
import stat
import time
import urllib.parse
import zipfile

import requests
import tusclient.client as tusclient  # noqa: E402 - tuspy, a real tus client (a test dependency)

from jupyter_backendai.manager import transfer_tokens
from testing.manager import create_folder, folder_directory

SECRET = b"test-transfer-secret"  # what the manager fixture configures
TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


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
    view = create_folder(manager, "alice", "data")
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
    assert not (folder_directory(manager, view["id"]) / "in").exists()  # nothing visible before the end

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
    assert (folder_directory(manager, view["id"]) / "in" / "big file ü.bin").read_bytes() == payload
    assert requests.head(url, headers=TUS, timeout=10).status_code == 404  # the upload session is gone
    assert metric(manager, "upload") == len(payload)

    listing = manager.call("GET", "/folders/data/files", "alice", params={"path": "in"}).json()["items"]
    assert [(i["name"], i["size"]) for i in listing] == [("big file ü.bin", len(payload))]


def test_tuspy_creation_flow_and_empty_files(manager, tmp_path):
    view = create_folder(manager, "alice", "data")
    source = tmp_path / "small.txt"
    source.write_bytes(b"hello tus")
    ticket = request_upload(manager, "alice", "data", "small.txt", 9)
    # Without a URL, tuspy POSTs to the client's URL and follows Location.
    uploader = tusclient.TusClient(ticket["url"]).uploader(file_path=str(source), chunk_size=4)
    uploader.upload()
    assert (folder_directory(manager, view["id"]) / "small.txt").read_bytes() == b"hello tus"

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    ticket = request_upload(manager, "alice", "data", "empty.txt", 0)
    tusclient.TusClient(manager.url).uploader(file_path=str(empty), url=ticket["url"]).upload()
    assert (folder_directory(manager, view["id"]) / "empty.txt").read_bytes() == b""

    ticket = request_upload(manager, "alice", "data", "x.txt", 5)
    wrong = requests.post(ticket["url"], headers={**TUS, "Upload-Length": "6"}, timeout=10)
    assert wrong.status_code == 400 and "differs from the 5 bytes" in wrong.json()["title"]


def test_tus_protocol_details(manager):
    view = create_folder(manager, "alice", "data")
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
    assert (folder_directory(manager, view["id"]) / "f.txt").read_bytes() == b"0123456789"

    # Termination drops the upload.
    ticket = request_upload(manager, "alice", "data", "g.txt", 10)
    requests.patch(ticket["url"], data=b"01", headers={**PATCH, "Upload-Offset": "0"}, timeout=10)
    assert requests.delete(ticket["url"], headers=TUS, timeout=10).status_code == 204
    assert requests.head(ticket["url"], headers=TUS, timeout=10).status_code == 404
    assert not (folder_directory(manager, view["id"]) / "g.txt").exists()


def test_tokens_are_checked(manager):
    view = create_folder(manager, "alice", "data")
    (folder_directory(manager, view["id"]) / "f.txt").write_bytes(b"content")
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
    create_folder(manager, "alice", "small", quota=1000)
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

    # Usage grown since request-upload (a session wrote into the folder): the PATCH re-checks
    # the folder's capacity.
    ticket = request_upload(manager, "alice", "small", "a.bin", 600)
    view = manager.call("GET", "/folders/_/id", "alice", params={"name": "small"}).json()
    (folder_directory(manager, view["id"]) / "from-session.bin").write_bytes(b"s" * 600)
    r = requests.patch(ticket["url"], data=b"a" * 600, headers={**PATCH, "Upload-Offset": "0"}, timeout=10)
    assert r.status_code == 413 and r.json()["quota"] == 1000 and r.json()["used_bytes"] == 600


def test_parallel_upload_requests_reserve_the_folders_capacity(manager):
    """Ten request-upload calls at once, 300 B each into 1000 B: three are admitted, seven refused."""
    create_folder(manager, "alice", "small", quota=1000)

    def ask(i: int) -> requests.Response:
        body = {"path": f"f{i}.bin", "size": 300}
        return manager.call("POST", "/folders/small/request-upload", "alice", json_body=body)

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(ask, range(10)))
    assert sorted(r.status_code for r in answers) == [200] * 3 + [413] * 7, [r.text for r in answers]
    refused = next(r.json() for r in answers if r.status_code == 413)
    assert refused["reserved_bytes"] == 900 and "held by uploads in progress" in refused["title"]

    # Sending the admitted ones works; their room then counts as usage, not twice.
    for r in (a for a in answers if a.status_code == 200):
        done = requests.patch(r.json()["url"], data=b"x" * 300, headers={**PATCH, "Upload-Offset": "0"}, timeout=10)
        assert done.status_code == 204, done.text
    last = manager.call("POST", "/folders/small/request-upload", "alice", json_body={"path": "last", "size": 100})
    assert last.status_code == 200, last.text
    over = manager.call("POST", "/folders/small/request-upload", "alice", json_body={"path": "over", "size": 1})
    assert over.status_code == 413
    # An upload given up (tus termination) gives its room back.
    assert requests.delete(last.json()["url"], headers=TUS, timeout=10).status_code == 204
    again = manager.call("POST", "/folders/small/request-upload", "alice", json_body={"path": "again", "size": 100})
    assert again.status_code == 200, again.text


def test_download_with_ranges(manager):
    view = create_folder(manager, "alice", "data")
    root = folder_directory(manager, view["id"])
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
    assert archive.status_code == 404 and archive.json()["title"] == "'x' does not exist"
    (root / "victim.txt").write_text("x")
    swapped = request_download(manager, "alice", "data", "victim.txt")
    (root / "victim.txt").unlink()
    os.symlink("/etc/passwd", root / "victim.txt")
    r = requests.get(swapped["url"], timeout=10)
    assert r.status_code == 400 and "symbolic link" in r.json()["title"] and "root:" not in r.text


def test_upload_over_a_planted_link_is_refused(manager, tmp_path):
    view = create_folder(manager, "alice", "data")
    root = folder_directory(manager, view["id"])
    outside = tmp_path / "outside"
    outside.mkdir()
    ticket = request_upload(manager, "alice", "data", "sub/new.txt", 3)
    os.symlink(outside, root / "sub")  # planted between request-upload and the upload's end
    r = requests.patch(ticket["url"], data=b"abc", headers={**PATCH, "Upload-Offset": "0"}, timeout=10)
    assert r.status_code == 400 and "symbolic link" in r.json()["title"]
    assert os.listdir(outside) == []


# --- the fast paths: PATCH bodies read by the handler, downloads by sendfile --------------------


def raw_request(port: int, head: str, body: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(head.encode() + body)
    return s


def read_response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length (1xx answers skipped) from a raw socket."""
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            more = s.recv(65536)
            assert more, f"connection closed after {data!r}"
            data += more
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if status >= 200:
            break
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(data) < length:
        more = s.recv(65536)
        assert more
        data += more
    return status, headers, data[:length]


def test_patch_bodies_expect_continue_keep_alive_chunked_and_busy(manager):
    view = create_folder(manager, "alice", "data")
    payload = os.urandom(9 * 1024 * 1024 + 7)  # more than the two 4 MiB receive buffers
    ticket = request_upload(manager, "alice", "data", "big.bin", len(payload))
    path = ticket["url"].split(str(manager.port), 1)[1]

    # Two PATCHes and a HEAD over one keep-alive connection: each body is read exactly.
    conn = http.client.HTTPConnection("127.0.0.1", manager.port, timeout=30)
    first = 5 * 1024 * 1024 + 1
    for start, end in ((0, first), (first, 8 * 1024 * 1024)):
        conn.request("PATCH", path, body=payload[start:end], headers={**PATCH, "Upload-Offset": str(start)})
        r = conn.getresponse()
        assert r.status == 204 and r.getheader("Upload-Offset") == str(end), r.read()
        r.read()
    conn.request("HEAD", path, headers=TUS)
    r = conn.getresponse()
    r.read()
    assert r.status == 200 and r.getheader("Upload-Offset") == str(8 * 1024 * 1024)

    # Another request on the upload while a PATCH is mid-body: busy (409), nothing interleaved.
    rest = payload[8 * 1024 * 1024 :]
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {8 * 1024 * 1024}\r\n"
        f"Content-Length: {len(rest)}\r\nExpect: 100-continue\r\n\r\n"
    )
    s = raw_request(manager.port, head)
    assert s.recv(64).startswith(b"HTTP/1.1 100")  # asked for, and sent before the body
    s.sendall(rest[:1000])
    time.sleep(0.3)
    conn.request("PATCH", path, body=b"x", headers={**PATCH, "Upload-Offset": str(8 * 1024 * 1024)})
    r = conn.getresponse()
    busy = json.loads(r.read())
    assert r.status == 409 and "busy" in busy["title"], busy
    s.sendall(rest[1000:])
    status, headers, _ = read_response(s)
    s.close()
    assert status == 204 and headers["upload-offset"] == str(len(payload))
    stored = folder_directory(manager, view["id"]) / "big.bin"
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(payload).digest()

    # A chunked PATCH (no Content-Length) goes through tornado's body reading instead.
    ticket = request_upload(manager, "alice", "data", "chunked.bin", 3 * 1024 * 1024)
    body = os.urandom(3 * 1024 * 1024)
    r = requests.patch(
        ticket["url"], data=iter([body[:1000], body[1000:]]), headers={**PATCH, "Upload-Offset": "0"}, timeout=30
    )
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(body))
    assert (folder_directory(manager, view["id"]) / "chunked.bin").read_bytes() == body
    ticket = request_upload(manager, "alice", "data", "short.bin", 10)
    r = requests.patch(ticket["url"], data=iter([b"x" * 6, b"y" * 6]), headers={**PATCH, "Upload-Offset": "0"})
    assert r.status_code == 413 and offset(ticket["url"]) == 0
    assert metric(manager, "upload") == len(payload) + len(body)


def test_download_by_sendfile_keep_alive_and_a_client_gone(manager):
    view = create_folder(manager, "alice", "data")
    data = os.urandom(12 * 1024 * 1024 + 3)
    (folder_directory(manager, view["id"]) / "big.bin").write_bytes(data)
    url = request_download(manager, "alice", "data", "big.bin")["url"]
    path = url.split(str(manager.port), 1)[1]

    conn = http.client.HTTPConnection("127.0.0.1", manager.port, timeout=30)
    for headers, expected, status in (
        ({}, data, 200),
        ({"Range": "bytes=4194300-8388610"}, data[4194300:8388611], 206),
        ({"Range": "bytes=-3"}, data[-3:], 206),
    ):
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        assert r.status == status and body == expected and r.getheader("Content-Length") == str(len(expected))
    conn.close()

    # A client that reads a little and goes away: the server drops it and goes on serving.
    s = raw_request(manager.port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    s.close()
    time.sleep(0.3)
    assert requests.get(url, timeout=30).content == data
    assert metric(manager, "download") >= 2 * len(data) + len(data[4194300:8388611]) + 3


# --- archives: a directory or several entries as one streamed ZIP ------------------------------


def request_archive(manager, who: str, folder: str, **body) -> requests.Response:
    return manager.call("POST", f"/folders/{folder}/request-download", who, json_body=body)


def fetch_zip(url: str) -> tuple[requests.Response, zipfile.ZipFile]:
    r = requests.get(url, timeout=60)
    assert r.status_code == 200, r.text
    return r, zipfile.ZipFile(io.BytesIO(r.content))


def test_archive_of_a_directory_and_of_entries(manager, tmp_path):
    view = create_folder(manager, "alice", "data")
    root = folder_directory(manager, view["id"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP-SECRET-OUTSIDE")
    proj = root / "프로젝트 ü"
    (proj / "sub" / "empty").mkdir(parents=True)
    big = os.urandom(3 * 1024 * 1024 + 5)
    (proj / "big.bin").write_bytes(big)
    (proj / "notes café.txt").write_text("bonjour\n" * 1000)
    (proj / "sub" / "데이터.csv").write_text("a,b\n1,2\n")
    (proj / "sub" / "photo.png").write_bytes(b"\x89PNG" + os.urandom(100))
    os.chmod(proj / "sub" / "데이터.csv", 0o640)
    os.symlink(outside / "secret.txt", proj / "leak.txt")  # planted by a session: not followed
    os.symlink(outside, proj / "sub" / "leakdir")
    os.mkfifo(proj / "sub" / "pipe")
    (root / "top.txt").write_text("top")

    r = request_archive(manager, "alice", "data", path="프로젝트 ü", archive=True)
    assert r.status_code == 200, r.text
    ticket = r.json()
    assert (
        ticket["archive"] is True
        and ticket["filename"] == "프로젝트 ü.zip"
        and "/folders/_/download?token=" in ticket["url"]
    )
    response, zf = fetch_zip(ticket["url"])
    assert response.headers["Content-Type"] == "application/zip"
    assert (
        "filename*=UTF-8''%ED%94%84%EB%A1%9C%EC%A0%9D%ED%8A%B8%20%C3%BC.zip" in response.headers["Content-Disposition"]
    )
    assert "Content-Length" not in response.headers and response.headers["Accept-Ranges"] == "none"
    assert zf.testzip() is None
    names = sorted(zf.namelist())
    assert names == ["big.bin", "notes café.txt", "sub/", "sub/empty/", "sub/photo.png", "sub/데이터.csv"]
    assert zf.read("big.bin") == big and zf.read("sub/데이터.csv") == b"a,b\n1,2\n"
    assert zf.read("notes café.txt") == b"bonjour\n" * 1000
    assert zf.getinfo("notes café.txt").compress_type == zipfile.ZIP_DEFLATED
    assert zf.getinfo("sub/photo.png").compress_type == zipfile.ZIP_STORED  # compressed already
    assert zf.getinfo("sub/데이터.csv").flag_bits & 0x800  # UTF-8 names
    assert stat.S_IMODE(zf.getinfo("sub/데이터.csv").external_attr >> 16) == 0o640
    assert b"TOP-SECRET-OUTSIDE" not in response.content
    assert metric(manager, "download") == len(response.content)
    head = requests.head(ticket["url"], timeout=10)
    assert head.status_code == 200 and head.headers["Content-Type"] == "application/zip" and not head.content

    # Several entries, under their own names; stored without compression when asked.
    r = request_archive(
        manager, "alice", "data", paths=["프로젝트 ü/sub", "top.txt", "프로젝트 ü/sub/데이터.csv"], compress=False
    )
    assert r.status_code == 200, r.text
    assert r.json()["paths"] == ["top.txt", "프로젝트 ü/sub"] and r.json()["filename"] == "data.zip"
    _, zf = fetch_zip(r.json()["url"])
    # Named relative to their common parent (the folder root); no entry for "프로젝트 ü/" itself.
    assert sorted(zf.namelist()) == [
        "top.txt",
        "프로젝트 ü/sub/",
        "프로젝트 ü/sub/empty/",
        "프로젝트 ü/sub/photo.png",
        "프로젝트 ü/sub/데이터.csv",
    ]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())

    # The whole folder.
    r = request_archive(manager, "alice", "data", archive=True)
    assert r.status_code == 200 and r.json()["filename"] == "data.zip"
    _, zf = fetch_zip(r.json()["url"])
    assert "top.txt" in zf.namelist() and "프로젝트 ü/big.bin" in zf.namelist()
    assert not any("leak" in n or "pipe" in n for n in zf.namelist())


def test_archive_refusals_and_permissions(manager, tmp_path):
    view = create_folder(manager, "alice", "proj")
    root = folder_directory(manager, view["id"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP-SECRET-OUTSIDE")
    (root / "d").mkdir()
    (root / "d" / "f.txt").write_text("f")
    os.symlink(outside, root / "linked")

    for body, status, words in [
        ({"path": "linked", "archive": True}, 400, "symbolic link"),
        ({"path": "../..", "archive": True}, 400, "'..'"),
        ({"path": "/etc", "archive": True}, 400, "relative"),
        ({"path": "nope", "archive": True}, 404, "does not exist"),
        ({"paths": []}, 400, "non-empty list"),
        ({"paths": [1, 2]}, 400, "non-empty list"),
        ({"paths": ["d", "linked"]}, 400, "symbolic link"),
        ({"paths": [f"d/{i:04d}-{'x' * 20}" for i in range(400)]}, 400, "too many paths"),
    ]:
        r = request_archive(manager, "alice", "proj", **body)
        assert r.status_code == status and words in r.json()["title"], (body, r.text)

    # Not bob's folder: neither by name nor by id.
    assert request_archive(manager, "bob", "proj", path="d", archive=True).status_code == 404
    assert request_archive(manager, "bob", view["id"], path="d", archive=True).status_code == 404

    # A token cannot be stretched to other paths: its signature covers them.
    ticket = request_archive(manager, "alice", "proj", path="d", archive=True).json()
    header, body, sig = ticket["token"].split(".")
    claims = transfer_tokens.verify(SECRET, ticket["token"], op="download")
    forged = transfer_tokens._b64(json.dumps({**claims, "paths": "linked"}).encode())
    r = requests.get(manager.url + "/folders/_/download", params={"token": f"{header}.{forged}.{sig}"}, timeout=10)
    assert r.status_code == 401

    # A link swapped in for the directory after the token was issued: refused, nothing read outside.
    (root / "d" / "f.txt").unlink()
    (root / "d").rmdir()
    os.symlink(outside, root / "d")
    r = requests.get(ticket["url"], timeout=10)
    assert r.status_code == 400 and "symbolic link" in r.json()["title"] and "TOP-SECRET" not in r.text

    # With a read-only share bob may archive; the download then works without any signature.
    (root / "d").unlink()
    (root / "d").mkdir()
    (root / "d" / "g.txt").write_text("g")
    inv = manager.call(
        "POST", "/folders/proj/invite", "alice", json_body={"perm": "ro", "user_ids": ["bob@example.com"]}
    )
    assert inv.status_code == 201
    inv_id = manager.call("GET", "/folders/invitations/list", "bob").json()["invitations"][0]["id"]
    assert manager.call("POST", "/folders/invitations/accept", "bob", json_body={"inv_id": inv_id}).status_code == 200
    r = request_archive(manager, "bob", "proj", path="d", archive=True)
    assert r.status_code == 200, r.text
    _, zf = fetch_zip(r.json()["url"])
    assert zf.namelist() == ["g.txt"] and zf.read("g.txt") == b"g"


def test_clients_that_stop_reading_do_not_stall_other_requests(manager):
    """Downloads wait for slow clients on transfer threads of their own, not on the pool the database calls use."""
    view = create_folder(manager, "alice", "data")
    (folder_directory(manager, view["id"]) / "big.bin").write_bytes(os.urandom(32 * 1024 * 1024))
    path = request_download(manager, "alice", "data", "big.bin")["url"].split(str(manager.port), 1)[1]
    stalled = []
    try:
        for _ in range(16):  # more than asyncio's default pool has threads on most machines
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", manager.port))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            stalled.append(s)  # and never read
        time.sleep(1)
        started = time.monotonic()
        listing = manager.call("GET", "/folders", "alice")
        assert listing.status_code == 200 and [f["name"] for f in listing.json()] == ["data"]
        assert time.monotonic() - started < 10
        r = manager.call("POST", "/folders/data/request-download", "alice", json_body={"path": "big.bin"})
        assert r.status_code == 200
    finally:
        for s in stalled:
            s.close()


def test_listed_size_follows_uploads_and_deletes(manager):
    """A finished upload and a delete make the kept size stale; the next listings measure it again."""
    create_folder(manager, "alice", "sized")

    def size_after_listings() -> int | None:
        deadline = time.monotonic() + 15
        while True:
            shown = next(f for f in manager.call("GET", "/folders", "alice").json() if f["name"] == "sized")
            if shown["usage_at"] is not None or time.monotonic() > deadline:
                return shown["cur_size"]
            time.sleep(0.2)

    assert manager.call("GET", "/folders/sized/usage", "alice").json()["used_bytes"] == 0
    assert size_after_listings() == 0
    url = request_upload(manager, "alice", "sized", "up.bin", 5000)["url"]
    done = requests.patch(url, data=b"u" * 5000, headers={**PATCH, "Upload-Offset": "0"}, timeout=30)
    assert done.status_code == 204, done.text
    assert size_after_listings() == 5000
    gone = manager.call("DELETE", "/folders/sized/delete-files", "alice", json_body={"files": ["up.bin"]})
    assert gone.status_code == 200, gone.text
    assert size_after_listings() == 0
