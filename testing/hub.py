"""Fixtures for end-to-end tests: a real JupyterHub behind a real configurable-http-proxy, a real
SMTP server, and a headless Chromium driven by Playwright (sync API).

Load it as a plugin from the main conftest: ``pytest_plugins = ["testing.hub"]``.

What it needs (``.ci/install-hub-test-deps.sh`` installs all of it): Debian's ``chromium`` at
``/usr/bin/chromium``, ``configurable-http-proxy`` on PATH (npm), and the Python packages
``playwright`` and ``aiosmtpd``. When one is missing the fixtures that need it skip, unless
``BACKENDAI_TEST_REQUIRE_HUB=1`` (for CI), which turns the skip into a failure.

Everything here is synchronous. Note that while a Playwright browser is open, the test's thread
counts as running an asyncio loop (Playwright's own): ``asyncio.run()`` fails there; use
:func:`run_async` for a coroutine instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email
import email.policy
import email.utils
import html
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NoReturn

import pytest
import requests

from testing import missing

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
SCREENSHOTS_DIR = ARTIFACTS_DIR / "screenshots"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HUB_START_TIMEOUT = 60.0
HUB_STOP_TIMEOUT = 15.0
PAGE_TIMEOUT_MS = 15_000


def not_installed(what: str) -> NoReturn:
    """Skip (or, where hub tests are required, fail) a test whose infrastructure is not installed."""
    missing(f"{what} is not installed; run .ci/install-hub-test-deps.sh", "hub")


_PORTS_GIVEN: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago and that this test run has not handed out.

    Drawn below the kernel's ephemeral range (32768 and up), where a port released here could
    be taken by any outgoing connection before the server meant for it binds; and never twice,
    since two servers of one hub (say the proxy and a service) each ask for one before either
    binds.
    """
    for _ in range(200):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 12000
        if port in _PORTS_GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port on {host}")


def run_async(coro_or_fn: Any, timeout: float = 60.0) -> Any:
    """Run a coroutine (or a function returning one) to completion in a thread of its own.

    For tests that have a Playwright page open, where ``asyncio.run()`` refuses to start.
    """
    coro_fn = coro_or_fn if callable(coro_or_fn) else (lambda: coro_or_fn)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
        return ex.submit(lambda: asyncio.run(coro_fn())).result(timeout=timeout)


# --------------------------------------------------------------------------------------- SMTP

_URL_RE = re.compile(r"https?://[^\s<>\"']+")


def first_url(msg: EmailMessage) -> str:
    """The first http(s) URL in a message's body (its text part, else its HTML part)."""
    for kind in ("plain", "html"):
        part = msg.get_body(preferencelist=(kind,))
        if part is None:
            continue
        text = part.get_content()
        if kind == "html":
            text = html.unescape(text)
        m = _URL_RE.search(text)
        if m:
            return m.group(0).rstrip(".,;:!?)]}")
    raise AssertionError(f"no URL in the message to {msg['To']!r}:\n{msg.as_string()}")


class SMTPServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        #: Every message received, parsed; ``msg["X-RcptTo"]`` holds the envelope recipients.
        self.messages: list[EmailMessage] = []
        self._cond = threading.Condition()
        self._controller: Any = None

    # aiosmtpd's handler hook
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        msg = email.message_from_bytes(content, policy=email.policy.default)
        msg["X-MailFrom"] = envelope.mail_from or ""
        msg["X-RcptTo"] = ", ".join(envelope.rcpt_tos)
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()
        return "250 Message accepted for delivery"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname=self.host, port=self.port, ready_timeout=10)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    @staticmethod
    def _addressed_to(msg: EmailMessage, address: str) -> bool:
        address = address.lower()
        fields = [msg.get("X-RcptTo", ""), msg.get("To", ""), msg.get("Cc", "")]
        addrs = {a.lower() for _name, a in email.utils.getaddresses([f for f in fields if f])}
        return address in addrs

    def messages_to(self, address: str) -> list[EmailMessage]:
        with self._cond:
            return [m for m in self.messages if self._addressed_to(m, address)]

    def wait_for_message(self, to: str, timeout: float = 10.0, count: int = 1) -> EmailMessage:
        """The ``count``-th message addressed to ``to`` (envelope, To or Cc); waits up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.messages if self._addressed_to(m, to)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(m.get("X-RcptTo"), m.get("Subject")) for m in self.messages]
                    raise AssertionError(f"no message #{count} to {to} within {timeout}s; received: {got}")
                self._cond.wait(min(left, 0.5))

    def wait_for_url(self, to: str, timeout: float = 10.0) -> str:
        """The first URL in the first message to ``to``."""
        return first_url(self.wait_for_message(to, timeout=timeout))


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A running :class:`SMTPServer`: ``.host``, ``.port``, ``.messages``, ``.wait_for_message(to)``."""
    try:
        import aiosmtpd.controller  # noqa: F401
    except ImportError:
        not_installed("aiosmtpd")
    server = SMTPServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------- JupyterHub

_BASE_CONFIG = """\
# Written by testing/hub.py
c = get_config()  # noqa
c.JupyterHub.bind_url = {bind_url!r}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port!r}
c.JupyterHub.db_url = {db_url!r}
c.JupyterHub.cookie_secret_file = {cookie_secret_file!r}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.ConfigurableHTTPProxy.api_url = {proxy_api_url!r}
c.ConfigurableHTTPProxy.auth_token = {proxy_auth_token!r}
c.ConfigurableHTTPProxy.command = [{proxy_command!r}]
c.ConfigurableHTTPProxy.should_start = True

# A service whose token has the admin role's scopes, for hub.api().
from jupyterhub.roles import get_default_roles as _get_default_roles

c.JupyterHub.services = [{{"name": "test-admin", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "test-admin",
        "scopes": next(r["scopes"] for r in _get_default_roles() if r["name"] == "admin"),
        "services": ["test-admin"],
    }}
]

# ---- the test's configuration ----
"""


class Hub:
    """A JupyterHub process (``python -m jupyterhub -f <dir>/jupyterhub_config.py``) and its proxy."""

    def __init__(self, directory: Path, config_text: str, env: dict[str, str] | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        #: The public URL (the proxy), e.g. ``http://127.0.0.1:PORT``.
        self.url = f"http://127.0.0.1:{self.port}"
        self.proxy_api_url = f"http://127.0.0.1:{self.proxy_api_port}"
        self.proxy_auth_token = secrets.token_hex(32)
        #: A token with the admin role's scopes (the service ``test-admin``).
        self.admin_token = secrets.token_hex(32)
        self.config_file = self.dir / "jupyterhub_config.py"
        self.log_file = self.dir / "jupyterhub.log"
        self.db_file = self.dir / "jupyterhub.sqlite"
        self.proxy_pid_file = self.dir / "jupyterhub-proxy.pid"
        self.proxy_pid: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

        proxy = shutil.which("configurable-http-proxy")
        if proxy is None:
            not_installed("configurable-http-proxy (npm install -g configurable-http-proxy)")
        cookie_secret_file = self.dir / "jupyterhub_cookie_secret"
        cookie_secret_file.write_text(secrets.token_hex(32))
        cookie_secret_file.chmod(0o600)  # JupyterHub refuses a secret file others can read

        base = _BASE_CONFIG.format(
            bind_url=self.url,
            hub_port=self.hub_port,
            db_url=f"sqlite:///{self.db_file}",
            cookie_secret_file=str(cookie_secret_file),
            proxy_api_url=self.proxy_api_url,
            proxy_auth_token=self.proxy_auth_token,
            proxy_command=proxy,
            admin_token=self.admin_token,
        )
        self.config_file.write_text(base + textwrap.dedent(config_text).strip() + "\n")

        self.env = dict(os.environ)
        # The proxy (node) and the hub's own helpers must be found on PATH.
        path = [str(Path(proxy).parent), str(Path(sys.executable).parent), self.env.get("PATH", "")]
        self.env["PATH"] = os.pathsep.join(p for p in path if p)
        self.env.pop("JUPYTERHUB_API_TOKEN", None)
        self.env.update(env or {})

    # ---- lifecycle
    def start(self, timeout: float = HUB_START_TIMEOUT) -> Hub:
        """Start the hub and wait until ``GET /hub/api`` answers through the proxy."""
        assert self.process is None or self.process.poll() is not None, "hub already running"
        with open(self.log_file, "ab") as log:
            log.write(f"\n==== starting jupyterhub at {time.strftime('%H:%M:%S')} ====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(self.config_file)],
                cwd=self.dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        last_err: object = None
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"jupyterhub exited with {self.process.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                r = requests.get(f"{self.url}/hub/api", timeout=2)
                if r.status_code == 200:
                    break
                last_err = f"HTTP {r.status_code}"
            except requests.RequestException as e:
                last_err = e
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"jupyterhub not ready within {timeout}s ({last_err}):\n{self.log_tail()}")
            time.sleep(0.2)
        try:
            self.proxy_pid = int(self.proxy_pid_file.read_text().strip())
        except (OSError, ValueError):
            self.proxy_pid = None
        return self

    def stop(self, timeout: float = HUB_STOP_TIMEOUT) -> None:
        """SIGTERM the hub (it stops its proxy), SIGKILL after ``timeout``; make sure the proxy is gone."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        pid = self.proxy_pid
        if pid is None and self.proxy_pid_file.exists():
            try:
                pid = int(self.proxy_pid_file.read_text().strip())
            except (OSError, ValueError):
                pid = None
        if pid is not None and _is_proxy(pid):
            _terminate(pid, timeout=5)
        self.proxy_pid = None

    def restart(self, timeout: float = HUB_START_TIMEOUT) -> Hub:
        """Stop and start again with the same configuration, ports and database."""
        self.stop()
        return self.start(timeout=timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ---- inspection
    def log_text(self) -> str:
        """Everything the hub (and its proxy) wrote so far."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def proxy_running(self) -> bool:
        return self.proxy_pid is not None and _is_proxy(self.proxy_pid)

    # ---- HTTP
    def api(
        self, method: str, path: str, token: str | None = "admin", timeout: float = 10, **kwargs: Any
    ) -> requests.Response:
        """A request to the hub's REST API: ``hub.api("GET", "/users")`` → ``GET <url>/hub/api/users``.

        ``token``: ``"admin"`` (default) sends :attr:`admin_token`, ``None`` sends no token, any other
        string is sent as is. Extra keyword arguments go to :func:`requests.request` (``json=`` ...).
        """
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"token {self.admin_token if token == 'admin' else token}"
        url = f"{self.url}/hub/api/{path.lstrip('/')}" if path.strip("/") else f"{self.url}/hub/api"
        return requests.request(method, url, headers=headers, timeout=timeout, **kwargs)

    def proxy_api(self, method: str, path: str, timeout: float = 10, **kwargs: Any) -> requests.Response:
        """A request to configurable-http-proxy's REST API, e.g. ``hub.proxy_api("GET", "/api/routes")``."""
        headers = {"Authorization": f"token {self.proxy_auth_token}", **(kwargs.pop("headers", None) or {})}
        return requests.request(
            method, f"{self.proxy_api_url}/{path.lstrip('/')}", headers=headers, timeout=timeout, **kwargs
        )


def _is_proxy(pid: int) -> bool:
    """Whether ``pid`` is (still) a configurable-http-proxy process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"configurable-http-proxy" in cmdline


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_proxy(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def make_hub(tmp_path: Path) -> Iterator[Callable[..., Hub]]:
    """A factory: ``make_hub(config_text, env=None, start=True) -> Hub``, stopped at teardown.

    ``config_text`` is appended to a base configuration (ports, sqlite database, cookie secret,
    proxy token, the ``test-admin`` service); to add services or roles use
    ``c.JupyterHub.services.append(...)`` / ``c.JupyterHub.load_roles.append(...)`` rather than
    assigning, or :attr:`Hub.admin_token` stops working. The first hub lives in ``tmp_path/"hub"``,
    further ones in ``tmp_path/"hub-2"`` ...
    """
    hubs: list[Hub] = []

    def factory(config_text: str = "", env: dict[str, str] | None = None, start: bool = True) -> Hub:
        name = "hub" if not hubs else f"hub-{len(hubs) + 1}"
        hub = Hub(tmp_path / name, config_text, env)
        hubs.append(hub)
        if start:
            hub.start()
        return hub

    try:
        yield factory
    finally:
        for hub in reversed(hubs):
            hub.stop()


# ------------------------------------------------------------------------------------- browser


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember each phase's report on the item, for the screenshot on failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"_hub_fixtures_rep_{report.when}", report)


def _test_dir_name(nodeid_or_name: str) -> str:
    name = nodeid_or_name.split("::")[-1]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "test"


def _current_test_name() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return _test_dir_name(current.rsplit(" (", 1)[0]) if current else "no-test"


def screenshot(page: Any, name: str, test_name: str | None = None) -> Path:
    """Save a full-page PNG to ``test-artifacts/screenshots/<test name>/<name>.png``; returns its path."""
    directory = SCREENSHOTS_DIR / (_test_dir_name(test_name) if test_name else _current_test_name())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_test_dir_name(name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def playwright() -> Iterator[Any]:
    """A started sync Playwright, per test (a session-wide one would leave its loop marked as
    running in the main thread, breaking ``asyncio.run()`` in later tests)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        not_installed("playwright (pip)")
    if not os.access(CHROMIUM, os.X_OK):
        not_installed(f"chromium ({CHROMIUM}, apt-get install chromium)")
    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()


@pytest.fixture
def browser(playwright: Any) -> Iterator[Any]:
    """Debian's Chromium, headless, launched through Playwright."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (cookies, storage) for the test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(PAGE_TIMEOUT_MS)
    ctx.set_default_navigation_timeout(PAGE_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page in the test's context; a screenshot ``failure.png`` is saved when the test fails."""
    p = context.new_page()
    yield p
    rep = getattr(request.node, "_hub_fixtures_rep_call", None)
    if rep is not None and rep.failed and not p.is_closed():
        try:
            screenshot(p, "failure", test_name=request.node.name)
        except Exception:  # noqa: BLE001 - best effort, the test already failed
            pass


@pytest.fixture
def client_netns():
    """A network namespace of the test's own, standing for a user's machine on the network.

    A veth pair joins it to the host: the host side is ``HOST``, the namespace side ``10.231.255.2``.
    Deleting the namespace removes the pair.
    """
    name = f"jbt-client-{os.getpid()}"
    host_if, ns_if = f"jbh{os.getpid() % 100000}", f"jbn{os.getpid() % 100000}"

    def ip(*args, ns=None):
        cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip", *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)

    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    ip("netns", "add", name)
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", name)
        ip("addr", "add", f"{CLIENT_HOST}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("addr", "add", "10.231.255.2/30", "dev", ns_if, ns=name)
        ip("link", "set", ns_if, "up", ns=name)
        ip("link", "set", "lo", "up", ns=name)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)


#: The hub host's address on the client namespace's link: what the SSH dialog shows.
CLIENT_HOST = "10.231.255.1"


def post_form(session: requests.Session, page_url: str, data: dict, action: str | None = None) -> requests.Response:
    """GET the page (for its XSRF cookie and field), then POST the form like a browser."""
    page = session.get(page_url, timeout=10)
    match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert match, f"no XSRF field on {page_url}: {page.status_code}"
    return session.post(action or page_url, data={"_xsrf": match.group(1), **data}, timeout=30)


def login(hub, name: str, password: str, session: requests.Session | None = None) -> requests.Response:
    session = session or requests.Session()
    return post_form(session, f"{hub.url}/hub/login", {"username": name, "password": password})
