"""How fast do files move through the manager? A 1 GiB upload (tus) and download on loopback.

Run from the repository root: ``python benchmarks/bench_transfer.py`` (``--quick``: 128 MiB;
``--size 512M`` for another size; ``--repeat 3`` keeps the fastest of three runs of each way).
One file of random bytes is made in a temporary directory and moved these ways, on the same
disk, in one run:

1. **cp**: ``cp`` of the file to a new file (what the disk and page cache allow; no fsync, as
   ``cp`` does none; GNU cp copies inside the kernel). Timed before and after the manager
   transfers; the faster run is the baseline. ``cp`` followed by an ``fsync`` of the copy is
   reported beside it, because the manager makes every PATCH durable before answering.
2. **ceilings**: what a Python program on this machine needs at least to move the bytes over
   loopback TCP into a file, without HTTP: for uploads, a socket receiver (``recv_into`` a
   4 MiB buffer, ``os.write``, one ``fdatasync`` at the end) fed by the same sending code as
   the upload client; for downloads, ``os.sendfile`` from the file into the socket, read by
   the same receiving code as the download client.
3. **manager upload**: a real manager process (``python -m jupyter_backendai.manager``, a fresh
   SQLite product database, folder storage in the temporary directory) on a free 127.0.0.1
   port: ``POST /folders`` (signed with the user's keypair), then ``POST
   /folders/bench/request-upload`` {path, size} → {url}, then tus 1.0.0 ``PATCH`` requests to
   the URL, each streamed from the file in 1 MiB pieces over one keep-alive connection (never
   the whole file in memory). Twice: the whole file in one PATCH (what ``tuspy`` and
   tus-js-client do by default) and in ``--patch-mib`` (16) MiB PATCHes (each one made durable
   before it is answered, so each waits for the disk). Timed from request-upload to the
   answer of the last PATCH (which moves the file into place). One untimed 64 MiB upload and
   download come first (the manager's first transfer pays for its worker threads and first
   queries, which a long-running service paid long ago).
4. **manager download**: ``POST /folders/bench/request-download`` {path} → {url}, then one
   ``GET`` streamed to a new file in 1 MiB pieces (Python's ``http.client``), and the same
   with ``curl`` (a C client, when installed: what the server can do apart from the client).
5. **contents API**: what JupyterLab does to upload a large file to a Jupyter server: a real
   ``jupyter server`` (token auth, free 127.0.0.1 port, root dir in the temporary directory)
   and sequential ``PUT /api/contents/<path>`` with JSON bodies {"type": "file", "format":
   "base64", "chunk": 1..N (-1 for the last), "content": <base64 of 1 MiB>, "name", "path"}
   (JupyterLab's ``CHUNK_SIZE`` is 1 MiB).

Each copy is checked by SHA-256 against the original (the file the manager stored, the file
downloaded from it, the file the Jupyter server wrote). Besides wall time, the CPU seconds
spent per GiB are reported: by the server (the manager process, or the ceiling's thread) and
by the client (the benchmark's thread, or curl). On a machine shared with other work the CPU
figures are the steadier ones. The manager's resident set (psutil, sampled every 0.1 s in a
thread) is reported as its peak during each transfer minus its value right before, to show
whether memory stays flat. MB/s are 10^6 bytes per second.

Goals (reported, not enforced): manager ≥ 0.5× cp, manager upload ≥ 5× the contents API, flat
memory. Waits (bounded, ``--wait``, at most 30 min, polling every minute and running their
tests) for ``manager.folders`` and ``api_transfer``. The last line printed is one JSON object with
the figures. Everything started (the manager, the Jupyter server) is stopped and the
temporary directory removed at the end, on errors and signals too.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402
import requests  # noqa: E402
from _manager import (  # noqa: E402
    Abort,
    GiB,
    ManagerProcess,
    MiB,
    RssSampler,
    SignedClient,
    free_port,
    install_signal_handlers,
    log,
    make_db,
    quietly,
    wait_for_api,
)

from jupyter_backendai.storage import FolderStore  # noqa: E402
from testing.manager import end_process  # noqa: E402

MB = 1_000_000
PIECE = 1 * MiB  # what the client reads from disk / the socket at a time
HARD_LIMIT_S = 1500  # the measurements together (a 1 GiB contents-API upload is the slow part)
HTTP_TIMEOUT_S = 300
FOLDER = "bench"
WARM_UP = 64 * MiB
TARGET = "data/big.bin"


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1024, "M": MiB, "G": GiB}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def make_source(path: Path, size: int) -> str:
    """A file of ``size`` random bytes; returns its SHA-256."""
    digest = hashlib.sha256()
    block = 16 * MiB
    with open(path, "wb") as f:
        left = size
        while left > 0:
            data = os.urandom(min(block, left))
            digest.update(data)
            f.write(data)
            left -= len(data)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    buf = bytearray(8 * MiB)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def settle() -> None:
    """Flush dirty pages left by the previous step, so that its writeback is not timed in the next."""
    os.sync()
    time.sleep(0.5)


def time_cp(src: Path, dst: Path, *, fsync: bool) -> float:
    """Seconds for ``cp src dst`` (then an fsync of the copy, when asked); the copy is removed."""
    settle()
    t0 = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True, timeout=HTTP_TIMEOUT_S)
    if fsync:
        fd = os.open(dst, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - t0
    dst.unlink()
    return elapsed


def connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise RuntimeError(f"refusing a transfer URL that is not on 127.0.0.1: {url}")
    path = parts.path + ("?" + parts.query if parts.query else "")
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=HTTP_TIMEOUT_S), path


def tus_upload(url: str, src: Path, size: int, patch_bytes: int, deadline: float) -> int:
    """PATCH the file to the tus URL in ``patch_bytes`` requests, streamed; returns the number of PATCHes."""
    conn, path = connection(url)
    buf = bytearray(PIECE)
    view = memoryview(buf)
    patches = 0
    try:
        with open(src, "rb", buffering=0) as f:
            offset = 0
            while offset < size:
                if time.monotonic() > deadline:
                    raise Abort(f"time budget spent during the upload at offset {offset}")
                length = min(patch_bytes, size - offset)
                conn.putrequest("PATCH", path, skip_accept_encoding=True)
                conn.putheader("Tus-Resumable", "1.0.0")
                conn.putheader("Upload-Offset", str(offset))
                conn.putheader("Content-Type", "application/offset+octet-stream")
                conn.putheader("Content-Length", str(length))
                conn.endheaders()
                sent = 0
                while sent < length:
                    n = f.readinto(view[: min(PIECE, length - sent)])
                    if not n:
                        raise RuntimeError(f"{src} ended early at {offset + sent}")
                    conn.send(view[:n])
                    sent += n
                response = conn.getresponse()
                body = response.read()
                if response.status != 204:
                    raise RuntimeError(f"PATCH at offset {offset} answered {response.status}: {body[:300]!r}")
                offset += length
                answered = int(response.getheader("Upload-Offset", "-1"))
                if answered != offset:
                    raise RuntimeError(f"PATCH answered Upload-Offset {answered}, expected {offset}")
                patches += 1
    finally:
        conn.close()
    return patches


def download(url: str, dst: Path, size: int) -> int:
    """GET the URL into ``dst`` in 1 MiB pieces; returns the bytes received."""
    conn, path = connection(url)
    buf = bytearray(PIECE)
    view = memoryview(buf)
    received = 0
    try:
        conn.request("GET", path, headers={"Accept-Encoding": "identity"})
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET answered {response.status}: {response.read(300)!r}")
        with open(dst, "wb", buffering=0) as out:
            while n := response.readinto(buf):
                out.write(view[:n])
                received += n
    finally:
        conn.close()
    if received != size:
        raise RuntimeError(f"downloaded {received} bytes, expected {size}")
    return received


class JupyterServer:
    """``jupyter server`` with a token on a free 127.0.0.1 port, serving ``root``."""

    def __init__(self, root: Path, scratch: Path, timeout: float = 60):
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "jupyter_server",
            f"--ServerApp.token={self.token}", f"--port={self.port}", "--ip=127.0.0.1", "--no-browser",
            f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
        ]  # fmt: skip
        if os.geteuid() == 0:
            args.append("--allow-root")
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(scratch / "jupyter-runtime")}
        self.log_file = scratch / "jupyter-server.log"
        self._log = open(self.log_file, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=scratch)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter server exited:\n{self.log_tail()}")
            try:
                if self.http.get(self.url + "/api/status", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter server did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def upload(self, src: Path, name: str, size: int, chunk_bytes: int, deadline: float) -> int:
        """JupyterLab's chunked upload (``_uploadLarge``): PUT base64 chunks 1..N, the last as -1."""
        url = f"{self.url}/api/contents/{urllib.parse.quote(name)}"
        chunks = 0
        with open(src, "rb") as f:
            start = 0
            while start < size:
                if time.monotonic() > deadline:
                    raise Abort(f"time budget spent during the contents-API upload at {start}")
                data = f.read(chunk_bytes)
                end = start + len(data)
                number = -1 if end >= size else end // chunk_bytes
                body = {
                    "type": "file",
                    "format": "base64",
                    "chunk": number,
                    "content": base64.b64encode(data).decode("ascii"),
                    "name": name,
                    "path": name,
                }
                response = self.http.put(url, data=json.dumps(body), timeout=HTTP_TIMEOUT_S)
                if response.status_code not in (200, 201):
                    raise RuntimeError(f"PUT chunk {number} answered {response.status_code}: {response.text[:300]}")
                chunks += 1
                start = end
        return chunks

    def stop(self) -> None:
        self.http.close()
        end_process(self.process)
        self._log.close()


def rate(size: int, seconds: float | None) -> float | None:
    return round(size / seconds / MB, 1) if seconds else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# --- ceilings: the same bytes over a bare loopback socket, no HTTP -------------------------------


class _Receiver(threading.Thread):
    """Accepts one connection, writes what arrives to ``dst`` (4 MiB reads), fdatasyncs, answers one byte."""

    def __init__(self, listener: socket.socket, dst: Path, size: int):
        super().__init__(daemon=True)
        self.listener, self.dst, self.size = listener, dst, size
        self.cpu = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        t0 = time.thread_time()
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(HTTP_TIMEOUT_S)
                buf = bytearray(4 * MiB)
                view = memoryview(buf)
                fd = os.open(self.dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    got = 0
                    while got < self.size:
                        n = conn.recv_into(buf)
                        if not n:
                            break
                        os.write(fd, view[:n])
                        got += n
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
                conn.sendall(b"k")
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            self.error = e
        self.cpu = time.thread_time() - t0


def raw_upload(src: Path, dst: Path, size: int) -> tuple[float, float]:
    """The upload ceiling; returns (receiver CPU s, sender CPU s)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        receiver = _Receiver(listener, dst, size)
        receiver.start()
        t0 = time.thread_time()
        with socket.create_connection(listener.getsockname(), timeout=HTTP_TIMEOUT_S) as conn:
            buf = bytearray(PIECE)
            view = memoryview(buf)
            with open(src, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    conn.sendall(view[:n])
            if conn.recv(1) != b"k":
                raise RuntimeError("the ceiling's receiver did not confirm")
        cpu = time.thread_time() - t0
        receiver.join(HTTP_TIMEOUT_S)
    if receiver.error is not None:
        raise receiver.error
    return receiver.cpu, cpu


class _Sender(threading.Thread):
    """Accepts one connection and ``sendfile``s ``src`` into it."""

    def __init__(self, listener: socket.socket, src: Path, size: int):
        super().__init__(daemon=True)
        self.listener, self.src, self.size = listener, src, size
        self.cpu = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        t0 = time.thread_time()
        try:
            conn, _ = self.listener.accept()
            with conn, open(self.src, "rb") as f:
                conn.settimeout(HTTP_TIMEOUT_S)
                conn.sendfile(f, 0, self.size)  # os.sendfile, waiting (bounded) when the socket is full
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            self.error = e
        self.cpu = time.thread_time() - t0


def raw_download(src: Path, dst: Path, size: int) -> tuple[float, float]:
    """The download ceiling; returns (sender CPU s, receiver CPU s)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = _Sender(listener, src, size)
        sender.start()
        t0 = time.thread_time()
        received = 0
        with socket.create_connection(listener.getsockname(), timeout=HTTP_TIMEOUT_S) as conn:
            reader = conn.makefile("rb")
            buf = bytearray(PIECE)
            view = memoryview(buf)
            with open(dst, "wb", buffering=0) as out:
                while n := reader.readinto(buf):
                    out.write(view[:n])
                    received += n
            reader.close()
        cpu = time.thread_time() - t0
        sender.join(HTTP_TIMEOUT_S)
    if sender.error is not None:
        raise sender.error
    if received != size:
        raise RuntimeError(f"the download ceiling received {received} bytes, expected {size}")
    return sender.cpu, cpu


def curl_download(url: str, dst: Path, size: int) -> None:
    connection(url)  # the same check: 127.0.0.1 only
    subprocess.run(
        ["curl", "--silent", "--show-error", "--fail", "--output", str(dst), url],
        check=True, timeout=HTTP_TIMEOUT_S,
    )  # fmt: skip
    if dst.stat().st_size != size:
        raise RuntimeError(f"curl downloaded {dst.stat().st_size} bytes, expected {size}")


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Run:
    """One way of moving the file: the fastest of its repeats."""

    label: str
    seconds: float
    server_cpu: float | None = None  # CPU seconds of the server side
    client_cpu: float | None = None  # CPU seconds of the client side
    ok: bool | None = None  # the SHA-256 check
    rss_growth: int | None = None  # bytes, the manager's peak RSS growth
    count: int | None = None  # PATCHes or PUTs


def measure(label: str, repeat: int, once: Callable[[], Run]) -> Run:
    """Run ``once`` ``repeat`` times (after letting the disk settle each time); keep the fastest."""
    best: Run | None = None
    for i in range(repeat):
        log(f"{label}" + (f" ({i + 1}/{repeat})" if repeat > 1 else ""))
        settle()
        run = once()
        if best is None or run.seconds < best.seconds:
            best = run
        if run.ok is False:
            best = run  # a failed check is reported, whatever its speed
            break
    assert best is not None
    return best


class CpuClock:
    """CPU seconds of a process (psutil) and of the calling thread (the client), and wall time."""

    def __init__(self, pid: int | None = None, children: bool = False):
        self.proc = psutil.Process(pid) if pid else None
        self.children = children
        self.server0 = self._server()
        self.thread0 = time.thread_time()
        self.kids0 = self._kids()
        self.t0 = time.perf_counter()

    def _server(self) -> float:
        if self.proc is None:
            return 0.0
        t = self.proc.cpu_times()
        return t.user + t.system

    @staticmethod
    def _kids() -> float:
        t = os.times()
        return t.children_user + t.children_system

    def stop(self) -> tuple[float, float | None, float]:
        """(wall s, server CPU s or None, client CPU s)."""
        wall = time.perf_counter() - self.t0
        server = self._server() - self.server0 if self.proc is not None else None
        client = time.thread_time() - self.thread0 + (self._kids() - self.kids0 if self.children else 0.0)
        return wall, server, client


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=GiB, help="file size (bytes, or 128M, 1G); default 1G")
    parser.add_argument("--quick", action="store_true", help="a 128 MiB file")
    parser.add_argument("--patch-mib", type=int, default=16, help="bytes per tus PATCH in the many-PATCH run, MiB")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each way (the fastest counts; max 5)")
    parser.add_argument("--chunk-kib", type=int, default=1024, help="contents-API chunk (JupyterLab: 1024 KiB)")
    parser.add_argument("--no-contents-api", action="store_true", help="skip the jupyter-server comparison")
    parser.add_argument("--wait", type=float, default=1800, help="seconds to wait for the API modules (max 1800)")
    parser.add_argument("--no-tests", action="store_true", help="don't run the manager tests while waiting")
    args = parser.parse_args(argv)
    size = 128 * MiB if args.quick else args.size
    repeat = max(1, min(args.repeat, 5))
    install_signal_handlers()
    started = time.monotonic()
    figures: dict = {
        "size_mib": round(size / MiB, 1),
        "patch_mib": args.patch_mib,
        "repeat": repeat,
        "contents_chunk_kib": args.chunk_kib,
    }

    api = wait_for_api(["folders", "transfer"], max_wait=min(args.wait, 1800), tests=not args.no_tests)
    figures["api_wait"] = api
    log(f"manager API: {api}")
    deadline = time.monotonic() + HARD_LIMIT_S * repeat

    tmp = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    manager = client = pdb = sampler = jupyter = jsampler = None
    runs: dict[str, Run] = {}
    try:
        src = tmp / "source.bin"
        log(f"making a {size / MiB:.0f} MiB file of random bytes")
        source_sha = make_source(src, size)
        copy = tmp / "copy.bin"

        def check(path: Path) -> bool:
            ok = path.is_file() and sha256_of(path) == source_sha
            path.unlink(missing_ok=True)
            return ok

        def cp_once(fsync: bool) -> Callable[[], Run]:
            return lambda: Run("cp", time_cp(src, copy, fsync=fsync))

        cp_runs = [measure("cp (1st)", repeat, cp_once(False)).seconds]
        runs["cp_fsync"] = measure("cp + fsync", repeat, cp_once(True))

        def ceiling_once(label: str, move: Callable[[Path, Path, int], tuple[float, float]]) -> Callable[[], Run]:
            def once() -> Run:
                clock = CpuClock(os.getpid())
                move(src, copy, size)
                wall, process_cpu, client_cpu = clock.stop()
                # The server's share as the manager's is counted: the whole process (the kernel
                # charges some of a thread's work to whichever thread runs) minus the client thread.
                return Run(label, wall, (process_cpu or 0.0) - client_cpu, client_cpu, check(copy))

            return once

        raw_up_once = ceiling_once("ceiling up", raw_upload)
        raw_down_once = ceiling_once("ceiling down", raw_download)

        runs["ceiling_upload"] = measure("ceiling: socket -> file + fdatasync", repeat, raw_up_once)
        runs["ceiling_download"] = measure("ceiling: sendfile -> socket -> file", repeat, raw_down_once)

        # --- the manager ------------------------------------------------------------------
        if not api["ready"]:
            raise RuntimeError(f"the manager's folder/transfer API is not there: {api['tests']}")
        pdb, username, keys = make_db(tmp)
        manager = ManagerProcess(tmp, pdb)
        client = SignedClient(manager, keys)
        created = client.call("POST", "/folders", {"name": FOLDER})
        if created.status_code != 201:
            raise RuntimeError(f"POST /folders answered {created.status_code}: {created.text[:300]}")
        folder_id = created.json()["id"]
        stored = FolderStore(pdb.storage_root).path("local", folder_id) / TARGET
        sampler = RssSampler(manager.pid, 0.1)
        sampler.start()
        time.sleep(0.5)

        def upload_once(patch_bytes: int) -> Callable[[], Run]:
            def once() -> Run:
                before = sampler.reset()
                clock = CpuClock(manager.pid)
                answer = client.call("POST", f"/folders/{FOLDER}/request-upload", {"path": TARGET, "size": size})
                if answer.status_code != 200:
                    raise RuntimeError(f"request-upload answered {answer.status_code}: {answer.text[:300]}")
                patches = tus_upload(answer.json()["url"], src, size, patch_bytes, deadline)
                wall, server_cpu, client_cpu = clock.stop()
                time.sleep(0.3)  # one more sample after the last PATCH
                ok = stored.is_file() and sha256_of(stored) == source_sha
                return Run("upload", wall, server_cpu, client_cpu, ok, sampler.peak - before, patches)

            return once

        def download_once(curl: bool) -> Callable[[], Run]:
            def once() -> Run:
                before = sampler.reset()
                clock = CpuClock(manager.pid, children=curl)
                answer = client.call("POST", f"/folders/{FOLDER}/request-download", {"path": TARGET})
                if answer.status_code != 200:
                    raise RuntimeError(f"request-download answered {answer.status_code}: {answer.text[:300]}")
                (curl_download if curl else download)(answer.json()["url"], copy, size)
                wall, server_cpu, client_cpu = clock.stop()
                time.sleep(0.3)
                return Run("download", wall, server_cpu, client_cpu, check(copy), sampler.peak - before)

            return once

        # One small untimed round trip first: the manager's first transfer also pays for its
        # worker threads, imports and first queries, which a long-running service paid long ago.
        warm = min(WARM_UP, size)
        answer = client.call("POST", f"/folders/{FOLDER}/request-upload", {"path": "warm-up.bin", "size": warm})
        tus_upload(answer.json()["url"], src, warm, warm, deadline)
        answer = client.call("POST", f"/folders/{FOLDER}/request-download", {"path": "warm-up.bin"})
        download(answer.json()["url"], copy, warm)
        copy.unlink()

        rss_before = sampler.reset()
        runs["upload_one_patch"] = measure("manager upload: one PATCH", repeat, upload_once(size))
        runs["upload"] = measure(
            f"manager upload: PATCH x {args.patch_mib} MiB", repeat, upload_once(args.patch_mib * MiB)
        )
        runs["download"] = measure("manager download: one GET (http.client)", repeat, download_once(False))
        if shutil.which("curl"):
            runs["download_curl"] = measure("manager download: one GET (curl)", repeat, download_once(True))
        rss_after = sampler.rss()
        sampler.stop()
        client.close()
        manager.stop()
        stored.unlink(missing_ok=True)

        cp_runs.append(measure("cp (2nd)", repeat, cp_once(False)).seconds)
        runs["cp"] = Run("cp", min(cp_runs))

        # --- the contents API -------------------------------------------------------------
        contents_rss = None
        if not args.no_contents_api:
            jupyter = JupyterServer(tmp / "jupyter-root", tmp)
            jsampler = RssSampler(jupyter.process.pid, 0.1)
            jsampler.start()
            written = tmp / "jupyter-root" / "big.bin"

            def contents_once() -> Run:
                before = jsampler.reset()
                clock = CpuClock(jupyter.process.pid)
                chunks = jupyter.upload(src, "big.bin", size, args.chunk_kib * 1024, deadline)
                wall, server_cpu, client_cpu = clock.stop()
                time.sleep(0.3)
                return Run("contents", wall, server_cpu, client_cpu, check(written), jsampler.peak - before, chunks)

            runs["contents_api"] = measure(f"contents API: PUT x {args.chunk_kib} KiB base64 chunks", 1, contents_once)
            contents_rss = round(runs["contents_api"].rss_growth / MiB, 1)
            jsampler.stop()

        cp = rate(size, runs["cp"].seconds)
        cp_fsync = rate(size, runs["cp_fsync"].seconds)

        def mbs(key: str) -> float | None:
            return rate(size, runs[key].seconds) if key in runs else None

        def per_gib(seconds: float | None) -> float | None:
            return round(seconds * GiB / size, 2) if seconds is not None else None

        up, up1, dn, dn_curl = mbs("upload"), mbs("upload_one_patch"), mbs("download"), mbs("download_curl")
        ceil_up, ceil_dn, ca = mbs("ceiling_upload"), mbs("ceiling_download"), mbs("contents_api")
        figures.update(
            {
                "upload_mb_s": up,
                "upload_one_patch_mb_s": up1,
                "download_mb_s": dn,
                "download_curl_mb_s": dn_curl,
                "cp_mb_s": cp,
                "cp_runs_mb_s": [rate(size, s) for s in cp_runs],
                "cp_fsync_mb_s": cp_fsync,
                "ceiling_upload_mb_s": ceil_up,
                "ceiling_download_mb_s": ceil_dn,
                "contents_api_mb_s": ca,
                "upload_vs_cp": ratio(up, cp),
                "upload_one_patch_vs_cp": ratio(up1, cp),
                "download_vs_cp": ratio(dn, cp),
                "download_curl_vs_cp": ratio(dn_curl, cp),
                "upload_vs_cp_fsync": ratio(up, cp_fsync),
                "upload_one_patch_vs_cp_fsync": ratio(up1, cp_fsync),
                "upload_one_patch_vs_ceiling": ratio(up1, ceil_up),
                "download_vs_ceiling": ratio(dn, ceil_dn),
                "ceiling_upload_vs_cp": ratio(ceil_up, cp),
                "ceiling_download_vs_cp": ratio(ceil_dn, cp),
                "upload_vs_contents_api": ratio(up, ca),
                "cpu_s_per_gib": {
                    key: {"server": per_gib(run.server_cpu), "client": per_gib(run.client_cpu)}
                    for key, run in runs.items()
                    if run.server_cpu is not None or run.client_cpu is not None
                },
                "seconds": {key: round(run.seconds, 2) for key, run in runs.items()},
                "tus_patches": runs["upload"].count,
                "contents_api_requests": runs["contents_api"].count if "contents_api" in runs else None,
                "manager_rss_before_mib": round(rss_before / MiB, 1),
                "manager_rss_growth_upload_mib": round(
                    max(runs["upload"].rss_growth or 0, runs["upload_one_patch"].rss_growth or 0) / MiB, 1
                ),
                "manager_rss_growth_download_mib": round(
                    max(run.rss_growth or 0 for key, run in runs.items() if key.startswith("download")) / MiB, 1
                ),
                "manager_rss_after_mib": round(rss_after / MiB, 1),
                "jupyter_rss_growth_mib": contents_rss,
                "sha256_ok": {key: run.ok for key, run in runs.items() if run.ok is not None},
            }
        )
        figures["manager_rss_growth_mib"] = max(
            figures["manager_rss_growth_upload_mib"], figures["manager_rss_growth_download_mib"]
        )
        labels = {
            "cp": "cp (no fsync)",
            "cp_fsync": "cp + fsync of the copy",
            "ceiling_upload": "ceiling up: socket -> file + fdatasync",
            "ceiling_download": "ceiling down: sendfile -> socket -> file",
            "upload_one_patch": "manager upload (tus, 1 PATCH)",
            "upload": f"manager upload (tus, {runs['upload'].count} PATCH x {args.patch_mib} MiB)",
            "download": "manager download (GET, http.client)",
            "download_curl": "manager download (GET, curl)",
            "contents_api": f"contents API (PUT x {runs['contents_api'].count if 'contents_api' in runs else 0})",
        }
        best = f"best of {repeat}, " if repeat > 1 else ""
        print()
        print(f"File transfer on loopback, {size / MiB:,.0f} MiB of random bytes, same disk ({best}MB/s = 10^6 B/s)")
        print(f"{'way':<44}{'seconds':>8}{'MB/s':>8}{'vs cp':>7}{'vs cp+fs':>9}{'CPU s/GiB srv+cli':>19}  sha256")
        for key, label in labels.items():
            if key not in runs:
                continue
            run = runs[key]
            speed = rate(size, run.seconds)
            cpu = "" if run.server_cpu is None and run.client_cpu is None else (
                f"{per_gib(run.server_cpu) or 0:.2f} + {per_gib(run.client_cpu) or 0:.2f}"
            )  # fmt: skip
            check_text = "" if run.ok is None else ("ok" if run.ok else "MISMATCH")
            print(f"{label:<44}{run.seconds:>8.2f}{speed:>8.1f}{ratio(speed, cp):>7.2f}"
                  f"{ratio(speed, cp_fsync):>9.2f}{cpu:>19}  {check_text}")  # fmt: skip
        print(f"manager upload / contents API: {figures['upload_vs_contents_api']}x (goal >= 5)")
        print(f"manager / cp (goal >= 0.5): upload {figures['upload_one_patch_vs_cp']}x in one PATCH,"
              f" {figures['upload_vs_cp']}x in {args.patch_mib} MiB PATCHes; download {figures['download_vs_cp']}x"
              f" (curl {figures['download_curl_vs_cp']}x)")  # fmt: skip
        print(f"ceilings / cp: upload {figures['ceiling_upload_vs_cp']}x, download {figures['ceiling_download_vs_cp']}x;"
              f" manager / ceiling: upload {figures['upload_one_patch_vs_ceiling']}x,"
              f" download {figures['download_vs_ceiling']}x")  # fmt: skip
        print(f"manager RSS: {figures['manager_rss_before_mib']} MiB before; peak growth "
              f"{figures['manager_rss_growth_upload_mib']} MiB during uploads, "
              f"{figures['manager_rss_growth_download_mib']} MiB during downloads"
              + (f"; jupyter-server growth during its upload {contents_rss} MiB" if contents_rss is not None else ""))  # fmt: skip
        if not all(run.ok for run in runs.values() if run.ok is not None):
            figures["error"] = "a SHA-256 check failed"
    except Abort as e:
        figures["aborted"] = str(e)
        log(f"aborted: {e}")
    except Exception as e:  # noqa: BLE001 - report what failed, still print the figures
        figures["error"] = f"{type(e).__name__}: {e}"[:500]
        log(f"failed: {figures['error']}")
        if manager is not None:
            log("manager log tail:\n" + manager.log_tail())
    finally:
        for thing, how in (
            (sampler, "stop"), (jsampler, "stop"), (client, "close"), (manager, "stop"), (jupyter, "stop"), (pdb, "close"),
        ):  # fmt: skip
            quietly(thing, how)
        shutil.rmtree(tmp, ignore_errors=True)
    figures["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))
    return 0 if "error" not in figures and "aborted" not in figures else 1


if __name__ == "__main__":
    sys.exit(main())
