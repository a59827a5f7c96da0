"""What the manager benchmarks share: a manager process, keep-alive signed calls, RSS, percentiles.

Not a benchmark itself. ``bench_transfer.py`` and ``bench_api.py`` import it; it puts the
repository root on ``sys.path`` so that the tests' harness is importable when a benchmark is
run as a script: ``testing.sessions.ProductDB`` (the product's database, as the tests set it
up) and ``testing.manager.Manager`` (the manager process the tests start, which
``ManagerProcess`` starts with the benchmarks' environment).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import psutil  # noqa: E402
import requests  # noqa: E402

from jupyter_backendai.core import signing  # noqa: E402
from jupyter_backendai.db import admin  # noqa: E402
from testing.hub import free_port  # noqa: E402
from testing.manager import Manager  # noqa: E402
from testing.sessions import PASSWORD, ProductDB  # noqa: E402

MiB = 1024**2
GiB = 1024**3
TRANSFER_SECRET = "bench-transfer-secret"
HUB_SERVICE_VARIABLES = ("JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_SERVICE_PREFIX")
API_MODULES = {
    "folders": "jupyter_backendai.manager.folders",
    "transfer": "jupyter_backendai.manager.api_transfer",
    "sessions": "jupyter_backendai.manager.api_sessions",
}
TEST_FILES = {
    "folders": "tests/manager/test_manager_folders.py",
    "transfer": "tests/manager/test_manager_transfer.py",
    "sessions": "tests/manager/test_manager_sessions.py",
}


class Abort(Exception):
    """The run must stop (a signal or the time budget)."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def quietly(thing: Any, method: str) -> None:
    """Call ``thing.method()`` if ``thing`` is there, logging instead of raising (cleanup paths)."""
    if thing is None:
        return
    try:
        getattr(thing, method)()
    except Exception as e:  # noqa: BLE001 - the next cleanup step must still run
        log(f"cleanup: {type(thing).__name__}.{method}() failed: {e!r}")


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def install_signal_handlers() -> None:
    """SIGTERM/SIGINT raise Abort so that the ``finally`` blocks stop what was started."""

    def handler(signum, _frame):
        raise Abort(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def missing_modules(parts: list[str]) -> list[str]:
    return [API_MODULES[p] for p in parts if importlib.util.find_spec(API_MODULES[p]) is None]


def run_tests(parts: list[str]) -> str:
    """Run the manager tests of ``parts`` that exist: "passed: ..", "failed: .." or "missing: ..."."""
    files = [TEST_FILES[p] for p in parts if (REPO_ROOT / TEST_FILES[p]).exists()]
    absent = [TEST_FILES[p] for p in parts if not (REPO_ROOT / TEST_FILES[p]).exists()]
    if not files:
        return "missing: " + ", ".join(absent)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        last = (proc.stdout.strip().splitlines() or ["?"])[-1]
        state = ("passed: " if proc.returncode == 0 else "failed: ") + last
    except subprocess.TimeoutExpired:
        state = "failed: pytest took over 600 s"
    if absent:
        state = "missing: " + ", ".join(absent) + "; " + state
    return state


def wait_for_api(parts: list[str], *, max_wait: float, interval: float = 60.0, tests: bool = True) -> dict:
    """Wait (bounded by ``max_wait`` s) until the manager modules of ``parts`` exist and their tests pass.

    Returns {"ready": modules there, "waited_s": .., "tests": ..}. Once ``max_wait`` is spent
    with the modules there but tests missing or failing, it returns ready all the same: the
    benchmark then runs against what exists and reports the test state.
    """
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        importlib.invalidate_caches()
        missing = missing_modules(parts)
        state = "modules missing: " + ", ".join(missing) if missing else "not run"
        if not missing:
            if not tests:
                break
            state = run_tests(parts)
            if state.startswith("passed"):
                break
        if time.monotonic() - start + interval > max_wait:
            break
        log(f"waiting for the manager API (attempt {attempt}): {state}")
        time.sleep(interval)
    return {"ready": not missing, "waited_s": round(time.monotonic() - start, 1), "tests": state}


def make_db(directory: Path, username: str = "bench") -> tuple[ProductDB, str, tuple[str, str]]:
    """A fresh product database with one user whose keypair has no rate limit."""
    pdb = ProductDB(directory)
    name = pdb.user(f"{username}@example.com", username=username)

    def unlimited(db):
        user = admin.get_user(db, name)
        kp = next(k for k in user.keypairs if k.is_active)
        admin.update_keypair(db, kp, rate_limit=0)  # 0 = no limit (base.RateLimiter)
        return kp.access_key, kp.secret_key

    keys = pdb.setup(unlimited)
    return pdb, name, keys


class ManagerProcess(Manager):
    """testing.manager's Manager as the benchmarks run it.

    Without any of the hub's service variables (a benchmark started from a shell inside a
    JupyterHub session inherits them), in the run's directory, with its own transfer secret.
    """

    def __init__(self, directory: Path, pdb: ProductDB, extra_args: list[str] | None = None, timeout: float = 30):
        super().__init__(
            directory, pdb, extra_args,
            unset_env=HUB_SERVICE_VARIABLES, cwd=directory, transfer_secret=TRANSFER_SECRET, timeout=timeout,
        )  # fmt: skip


class SignedClient:
    """Keypair-signed calls over one keep-alive connection (like Backend.AI's client)."""

    def __init__(self, manager: ManagerProcess, keys: tuple[str, str]):
        self.manager = manager
        self.access, self.secret = keys
        self.http = requests.Session()

    def call(self, method: str, path: str, json_body: Any = None, timeout: float = 60) -> requests.Response:
        body = json.dumps(json_body).encode() if json_body is not None else None
        headers = signing.headers(
            self.access, self.secret, method, path, self.manager.host,
            content_type="application/json", date=dt.datetime.now(dt.timezone.utc),
        )  # fmt: skip
        return self.http.request(method, self.manager.url + path, data=body, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()


class RssSampler(threading.Thread):
    """Samples a process's resident set every ``interval`` s; ``peak`` since the last ``reset``."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.interval = interval
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.current = self.proc.memory_info().rss
        self.peak = self.current
        self.samples = 0

    def rss(self) -> int:
        try:
            return self.proc.memory_info().rss
        except psutil.Error:
            return 0

    def reset(self) -> int:
        """Start a new window; returns the RSS now (the baseline of the window)."""
        with self._lock:
            self.current = self.rss()
            self.peak = self.current
            return self.current

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            value = self.rss()
            with self._lock:
                self.current = value
                self.peak = max(self.peak, value)
                self.samples += 1

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(2)


__all__ = [
    "GiB",
    "MiB",
    "PASSWORD",
    "REPO_ROOT",
    "Abort",
    "ManagerProcess",
    "ProductDB",
    "RssSampler",
    "SignedClient",
    "free_port",
    "install_signal_handlers",
    "log",
    "make_db",
    "percentile",
    "quietly",
    "wait_for_api",
]
