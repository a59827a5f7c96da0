"""How fast do files move through the manager? A 1 GiB upload (tus) and download on loopback.

Run from the repository root: ``python benchmarks/bench_transfer.py`` (``--quick``: 128 MiB;
``--size 512M`` for another size). One file of random bytes is made in a temporary directory
and moved four ways, on the same disk, in one run:

1. **cp**: ``cp`` of the file to a new file (what the disk and page cache allow; no fsync,
   as ``cp`` does none). Timed before and after the manager transfers; the faster run is the
   baseline. ``cp`` followed by an ``fsync`` of the copy is reported beside it, because the
   manager syncs what it receives.
2. **manager upload**: a real manager process (``python -m jupyter_backendai.manager``, a
   fresh SQLite product database, folder storage in the temporary directory) on a free
   127.0.0.1 port: ``POST /folders`` (signed with the user's keypair), then
   ``POST /folders/bench/request-upload`` {path, size} → {url}, then tus 1.0.0 ``PATCH``
   requests of ``--patch-mib`` (16) MiB each to the URL, each streamed from the file in 1 MiB
   pieces over one keep-alive connection (never the whole file in memory). Timed from
   request-upload to the answer of the last PATCH (which moves the file into place).
3. **manager download**: ``POST /folders/bench/request-download`` {path} → {url}, then one
   ``GET`` streamed to a new file in 1 MiB pieces.
4. **contents API**: what JupyterLab does to upload a large file to a Jupyter server: a real
   ``jupyter server`` (token auth, free 127.0.0.1 port, root dir in the temporary directory)
   and sequential ``PUT /api/contents/<path>`` with JSON bodies {"type": "file", "format":
   "base64", "chunk": 1..N (-1 for the last), "content": <base64 of 1 MiB>, "name", "path"}
   (JupyterLab's ``CHUNK_SIZE`` is 1 MiB).

Each copy is checked by SHA-256 against the original (the file the manager stored, the file
downloaded from it, the file the Jupyter server wrote). The manager's resident set (psutil,
sampled every 0.1 s in a thread) is reported as its peak during each transfer minus its value
right before, to show whether memory stays flat. MB/s are 10^6 bytes per second.

Goals (reported, not enforced): manager ≥ 0.5× cp, manager upload ≥ 5× the contents API, flat
memory. Waits (bounded, ``--wait``, at most 30 min, polling every minute and running their
tests) for ``api_folders`` and ``api_transfer``. The last line printed is one JSON object with
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
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

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

MB = 1_000_000
PIECE = 1 * MiB  # what the client reads from disk / the socket at a time
HARD_LIMIT_S = 1500  # the measurements together (a 1 GiB contents-API upload is the slow part)
HTTP_TIMEOUT_S = 300
FOLDER = "bench"
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
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if not self._log.closed:
            self._log.close()


def rate(size: int, seconds: float | None) -> float | None:
    return round(size / seconds / MB, 1) if seconds else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=GiB, help="file size (bytes, or 128M, 1G); default 1G")
    parser.add_argument("--quick", action="store_true", help="a 128 MiB file")
    parser.add_argument("--patch-mib", type=int, default=16, help="bytes per tus PATCH, in MiB")
    parser.add_argument("--chunk-kib", type=int, default=1024, help="contents-API chunk (JupyterLab: 1024 KiB)")
    parser.add_argument("--no-contents-api", action="store_true", help="skip the jupyter-server comparison")
    parser.add_argument("--wait", type=float, default=1800, help="seconds to wait for the API modules (max 1800)")
    parser.add_argument("--no-tests", action="store_true", help="don't run the manager tests while waiting")
    args = parser.parse_args(argv)
    size = 128 * MiB if args.quick else args.size
    install_signal_handlers()
    started = time.monotonic()
    figures: dict = {
        "size_mib": round(size / MiB, 1),
        "patch_mib": args.patch_mib,
        "contents_chunk_kib": args.chunk_kib,
    }

    api = wait_for_api(["folders", "transfer"], max_wait=min(args.wait, 1800), tests=not args.no_tests)
    figures["api_wait"] = api
    log(f"manager API: {api}")
    deadline = time.monotonic() + HARD_LIMIT_S

    tmp = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    manager = client = pdb = sampler = jupyter = jsampler = None
    try:
        src = tmp / "source.bin"
        log(f"making a {size / MiB:.0f} MiB file of random bytes")
        source_sha = make_source(src, size)

        log("cp (1st)")
        cp_runs = [time_cp(src, tmp / "cp-copy.bin", fsync=False)]
        cp_fsync_s = time_cp(src, tmp / "cp-copy.bin", fsync=True)

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
        sampler = RssSampler(manager.pid, 0.1)
        sampler.start()
        time.sleep(0.5)

        settle()
        log(f"manager upload: tus PATCH x {args.patch_mib} MiB")
        rss_before_up = sampler.reset()
        t0 = time.perf_counter()
        answer = client.call("POST", f"/folders/{FOLDER}/request-upload", {"path": TARGET, "size": size})
        if answer.status_code != 200:
            raise RuntimeError(f"request-upload answered {answer.status_code}: {answer.text[:300]}")
        patches = tus_upload(answer.json()["url"], src, size, args.patch_mib * MiB, deadline)
        upload_s = time.perf_counter() - t0
        time.sleep(0.3)  # one more sample after the last PATCH
        rss_peak_up = sampler.peak
        stored = FolderStore(pdb.storage_root).path("local", folder_id) / TARGET
        upload_ok = stored.is_file() and sha256_of(stored) == source_sha

        settle()
        log("manager download: one GET")
        down = tmp / "downloaded.bin"
        rss_before_down = sampler.reset()
        t0 = time.perf_counter()
        answer = client.call("POST", f"/folders/{FOLDER}/request-download", {"path": TARGET})
        if answer.status_code != 200:
            raise RuntimeError(f"request-download answered {answer.status_code}: {answer.text[:300]}")
        download(answer.json()["url"], down, size)
        download_s = time.perf_counter() - t0
        time.sleep(0.3)
        rss_peak_down = sampler.peak
        rss_after = sampler.rss()
        download_ok = sha256_of(down) == source_sha
        down.unlink()
        sampler.stop()
        client.close()
        manager.stop()
        stored.unlink(missing_ok=True)

        log("cp (2nd)")
        cp_runs.append(time_cp(src, tmp / "cp-copy.bin", fsync=False))

        # --- the contents API -------------------------------------------------------------
        contents_s = contents_ok = contents_chunks = None
        contents_rss = None
        if not args.no_contents_api:
            jupyter = JupyterServer(tmp / "jupyter-root", tmp)
            jsampler = RssSampler(jupyter.process.pid, 0.1)
            jsampler.start()
            settle()
            log(f"contents API: PUT x {args.chunk_kib} KiB base64 chunks")
            before = jsampler.reset()
            t0 = time.perf_counter()
            contents_chunks = jupyter.upload(src, "big.bin", size, args.chunk_kib * 1024, deadline)
            contents_s = time.perf_counter() - t0
            time.sleep(0.3)
            contents_rss = round((jsampler.peak - before) / MiB, 1)
            jsampler.stop()
            written = tmp / "jupyter-root" / "big.bin"
            contents_ok = written.is_file() and sha256_of(written) == source_sha
            written.unlink(missing_ok=True)

        cp_s = min(cp_runs)
        up, dn, cp = rate(size, upload_s), rate(size, download_s), rate(size, cp_s)
        ca = rate(size, contents_s)
        figures.update(
            {
                "upload_mb_s": up,
                "download_mb_s": dn,
                "cp_mb_s": cp,
                "cp_runs_mb_s": [rate(size, s) for s in cp_runs],
                "cp_fsync_mb_s": rate(size, cp_fsync_s),
                "contents_api_mb_s": ca,
                "upload_vs_cp": ratio(up, cp),
                "download_vs_cp": ratio(dn, cp),
                "upload_vs_cp_fsync": ratio(up, rate(size, cp_fsync_s)),
                "upload_vs_contents_api": ratio(up, ca),
                "upload_s": round(upload_s, 2),
                "download_s": round(download_s, 2),
                "cp_s": round(cp_s, 2),
                "contents_api_s": round(contents_s, 2) if contents_s else None,
                "tus_patches": patches,
                "contents_api_requests": contents_chunks,
                "manager_rss_before_mib": round(rss_before_up / MiB, 1),
                "manager_rss_growth_upload_mib": round((rss_peak_up - rss_before_up) / MiB, 1),
                "manager_rss_growth_download_mib": round((rss_peak_down - rss_before_down) / MiB, 1),
                "manager_rss_growth_mib": round((max(rss_peak_up, rss_peak_down) - rss_before_up) / MiB, 1),
                "manager_rss_after_mib": round(rss_after / MiB, 1),
                "jupyter_rss_growth_mib": contents_rss,
                "sha256_upload_ok": upload_ok,
                "sha256_download_ok": download_ok,
                "sha256_contents_api_ok": contents_ok,
            }
        )
        print()
        print(f"File transfer on loopback, {size / MiB:,.0f} MiB of random bytes, same disk (MB/s = 10^6 B/s)")
        print(f"{'way':<54}{'seconds':>9}{'MB/s':>9}{'vs cp':>8}  sha256")
        rows = [
            ("cp (best of 2, no fsync)", cp_s, cp, None),
            ("cp + fsync of the copy", cp_fsync_s, rate(size, cp_fsync_s), None),
            (f"manager upload (tus, {patches} PATCH x {args.patch_mib} MiB)", upload_s, up, upload_ok),
            ("manager download (one GET)", download_s, dn, download_ok),
        ]
        if contents_s:
            rows.append((f"contents API (PUT x {contents_chunks}, base64 chunks)", contents_s, ca, contents_ok))
        for label, seconds, mbs, ok in rows:
            check = "" if ok is None else ("ok" if ok else "MISMATCH")
            print(f"{label:<54}{seconds:>9.2f}{mbs:>9.1f}{ratio(mbs, cp):>8.2f}  {check}")
        print(f"manager upload / contents API: {figures['upload_vs_contents_api']}x (goal >= 5)")
        print(f"manager upload / cp: {figures['upload_vs_cp']}x, download / cp: {figures['download_vs_cp']}x"
              f" (goal >= 0.5); upload / (cp + fsync): {figures['upload_vs_cp_fsync']}x")  # fmt: skip
        print(f"manager RSS: {figures['manager_rss_before_mib']} MiB before; peak growth "
              f"{figures['manager_rss_growth_upload_mib']} MiB during upload, "
              f"{figures['manager_rss_growth_download_mib']} MiB during download"
              + (f"; jupyter-server growth during its upload {contents_rss} MiB" if contents_rss is not None else ""))  # fmt: skip
        if not (upload_ok and download_ok and contents_ok is not False):
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
