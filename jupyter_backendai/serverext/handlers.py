"""The extension's handlers: the streaming proxy to the manager and ``_ext/config``.

Both require an authenticated jupyter-server user that the server's authorizer lets use the
``backendai`` resource, and jupyter-server's XSRF check applies to every non-GET request a
browser makes with its cookie. The proxy checks all of it in ``prepare``, before a byte of a
request body is read or forwarded: with ``stream_request_body`` a method decorator would only
run once the whole body had already gone to the manager.

Bodies stream both ways with bounded memory: request chunks pass through a small queue into
the upstream request's ``body_producer`` (``data_received`` waits while the queue is full, so
a fast browser is slowed to the manager's pace), and response chunks are written and flushed
from the upstream ``streaming_callback``, whose future tornado awaits before reading more.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timezone
from http.client import responses
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import httputil, iostream, web
from tornado.httpclient import HTTPClientError, HTTPRequest

from .._version import __version__
from . import proxy

AUTH_RESOURCE = "backendai"
#: Request body chunks (tornado reads 64 KiB at a time) held between browser and manager.
QUEUE_CHUNKS = 16
#: Seconds ``_ext/config`` waits for the manager's ``/auth/whoami``.
WHOAMI_TIMEOUT = 30.0
_END = object()
_ABORT = object()
#: Requests to the manager that outlive their handler (the own session's termination).
_detached: set[asyncio.Future] = set()


class ClientGone(Exception):
    """The browser went away while its request body was being forwarded."""


class ExtensionAPIHandler(ExtensionHandlerMixin, APIHandler):
    """Errors as JSON with both jupyter's ``message`` and Backend.AI's ``title``/``type``."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, name: str, prefix: str) -> None:  # type: ignore[override]
        self.prefix = prefix
        super().initialize(name)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError):
            # tornado keeps log_message as a %-format string (a bare message has its % doubled)
            title = (exc.log_message % exc.args) if exc.log_message else exc.reason or responses.get(status_code, "")
        else:
            title = "internal error; the server log has the details"
        kind = {401: "unauthorized", 403: "forbidden", 502: "bad-gateway", 503: "service-unavailable"}.get(
            status_code, "generic-bad-request" if status_code < 500 else "internal-server-error"
        )
        body = {
            "type": f"https://api.backend.ai/probs/{kind}",
            "title": title,
            "status": status_code,
            "message": title,
            "reason": responses.get(status_code, ""),
        }
        self.finish(json.dumps(body))

    async def authorize(self) -> None:
        """The authenticated user may ``<action>`` the ``backendai`` resource (403 otherwise)."""
        user = self.current_user
        if not user:
            raise web.HTTPError(403, "authentication required: log in to this Jupyter server first")
        action = HTTP_METHOD_TO_AUTH_ACTION.get(self.request.method or "", "write")
        if not await ensure_async(self.authorizer.is_authorized(self, user, action, AUTH_RESOURCE)):
            raise web.HTTPError(403, f"you are not authorized to {action} {AUTH_RESOURCE}")

    def upstream(self) -> proxy.Upstream:
        try:
            return self.extensionapp.upstream()
        except proxy.NotConfigured as e:
            raise web.HTTPError(503, str(e)) from None

    def fetch_args(self) -> dict[str, Any]:
        app = self.extensionapp
        args: dict[str, Any] = {"validate_cert": app.validate_cert, "decompress_response": False}
        if app.ca_certs:
            args["ca_certs"] = app.ca_certs
        return args


class ExtensionInfoHandler(ExtensionAPIHandler):
    """A handler of the extension's own (``_ext/...``) that asks the manager a short question."""

    async def ask_manager(
        self, upstream: proxy.Upstream, path: str, refused: str = "the manager refused the credentials"
    ) -> tuple[Any, str | None]:
        """The manager's JSON answer to ``GET <path>``, or None and the reason it is missing."""
        url = upstream.url(path)
        headers = {"Host": upstream.host, "Content-Type": "application/json", "Accept": "application/json"}
        headers.update(upstream.auth_headers("GET", url, "application/json", self.extensionapp.clock.now()))
        # A short limit of its own: the panels wait for this answer before they show anything.
        request = HTTPRequest(
            url,
            method="GET",
            headers=headers,
            follow_redirects=False,
            request_timeout=WHOAMI_TIMEOUT,
            **self.fetch_args(),
        )
        try:
            response = await self.extensionapp.http.fetch(request, raise_error=False)
        except Exception as e:  # noqa: BLE001 - any failure to reach the manager is reported, not raised
            return None, f"the Backend.AI manager at {upstream.endpoint} cannot be reached: {e}"
        try:
            answer = json.loads(response.body or b"null")
        except ValueError:
            answer = None
        if response.code == 200 and isinstance(answer, dict):
            return answer, None
        title = answer.get("title") if isinstance(answer, dict) else None
        return None, f"{refused} ({response.code}): {title or response.reason}"


class ConfigHandler(ExtensionInfoHandler):
    """``GET <base_url>backendai/_ext/config``: the mode, the endpoint, who the manager says we are."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        upstream = self.upstream()
        user, error = await self._whoami(upstream)
        self.finish(
            json.dumps(
                {
                    "mode": upstream.mode,
                    "endpoint": upstream.endpoint,
                    "user": user,
                    "error": error,
                    "version": __version__,
                    "transfer_token_param": proxy.TRANSFER_TOKEN_PARAM,
                }
            )
        )

    async def _whoami(self, upstream: proxy.Upstream) -> tuple[Any, str | None]:
        return await self.ask_manager(upstream, "auth/whoami")


class SessionInfoHandler(ExtensionInfoHandler):
    """``GET <base_url>backendai/_ext/session``: the session this server runs in, and when it ends.

    ``ends_at`` is the manager's answer (the policy's maximum lifetime from the session's
    start; None when it has no end), ``ends_in`` the seconds left by this server's clock, so
    that a browser with a wrong clock still warns at the right moment, ``warn_before`` how
    long before the end the lab warns. Outside a session every field is None.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        session_id = os.environ.get("BACKENDAI_SESSION_ID") or None
        answer: dict[str, Any] = {
            "id": session_id,
            "name": os.environ.get("BACKENDAI_SESSION_NAME") or None,
            "ends_at": None,
            "ends_in": None,
            "warn_before": self.extensionapp.lifetime_warning,
            "error": None,
        }
        if session_id:
            detail, answer["error"] = await self.ask_manager(
                self.upstream(), f"session/{session_id}", refused="the manager did not answer this session's end"
            )
            ends_at = detail.get("ends_at") if isinstance(detail, dict) else None
            if ends_at:
                when = datetime.fromisoformat(ends_at)
                if when.tzinfo is None:
                    when = when.replace(tzinfo=timezone.utc)
                answer["ends_at"] = ends_at
                answer["ends_in"] = max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
        self.finish(json.dumps(answer))


@web.stream_request_body
class ProxyHandler(ExtensionAPIHandler):
    """``<METHOD> <base_url>backendai/<rest>?<query>`` → ``<METHOD> <endpoint>/<rest>?<query>``."""

    _fetch: asyncio.Future | None = None
    _queue: asyncio.Queue | None = None

    def compute_etag(self) -> str | None:
        return None  # tornado would hash only the last unflushed chunk of a streamed body

    async def prepare(self) -> None:  # type: ignore[override]
        self._status_line: httputil.ResponseStartLine | None = None
        self._upstream: proxy.Upstream | None = None
        self._upstream_headers = httputil.HTTPHeaders()
        await super().prepare()  # authenticates (403 if not), checks XSRF and the origin
        if self._finished:
            return
        await self.authorize()
        upstream = self.upstream()
        try:
            rest = proxy.forward_path(self.request.path, self.prefix)
        except proxy.BadPath as e:
            raise web.HTTPError(400, str(e)) from None
        method = self.request.method or "GET"
        incoming = self.request.headers
        has_body = incoming.get("Content-Length", "0") != "0" or "chunked" in incoming.get("Transfer-Encoding", "")
        if has_body:
            # The server-wide body limit (ServerApp.max_body_size) is for buffered requests.
            self.request.connection.set_max_body_size(self.extensionapp.max_request_body)
        url = upstream.url(
            rest, proxy.forward_query(self.request.query, getattr(self.identity_provider, "token", "") or "")
        )
        headers = proxy.request_headers(incoming)
        content_type = headers.get("Content-Type") or "application/json"
        headers["Host"] = upstream.host
        headers.update(upstream.auth_headers(method, url, content_type, self.extensionapp.clock.now()))
        kwargs: dict[str, Any] = {}
        if has_body:
            self._queue = asyncio.Queue(maxsize=QUEUE_CHUNKS)
            kwargs["body_producer"] = self._produce
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = b""
        self._upstream = upstream
        self._rest = rest
        request = HTTPRequest(
            url,
            method=method,
            headers=headers,
            follow_redirects=False,
            allow_nonstandard_methods=True,
            header_callback=self._on_header_line,
            streaming_callback=self._on_chunk,
            **kwargs,
            **self.fetch_args(),
        )
        self._fetch = asyncio.ensure_future(self.extensionapp.http.fetch(request, raise_error=False))

    # --- request body: browser → queue → manager --------------------------------------------------

    async def data_received(self, chunk: bytes) -> None:
        await self._enqueue(chunk)

    async def _enqueue(self, item: Any) -> None:
        """Queue a chunk (or the end) for the upstream request, waiting while the queue is full."""
        if self._queue is None or self._fetch is None or self._fetch.done():
            return  # the manager has answered or failed: the rest of the body is dropped
        if not self._queue.full():
            self._queue.put_nowait(item)
            return
        put = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({put, self._fetch}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()

    async def _produce(self, write: Any) -> None:
        assert self._queue is not None
        while True:
            chunk = await self._queue.get()
            if chunk is _END:
                return
            if chunk is _ABORT:
                raise ClientGone("the browser closed the connection during the upload")
            await write(chunk)

    def on_connection_close(self) -> None:
        if self._queue is not None:
            # The upstream request must fail, not end short: the manager then keeps what it got.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_ABORT)
        super().on_connection_close()

    # --- response: manager → browser -----------------------------------------------------------

    def _on_header_line(self, line: str) -> None:
        if self._finished:
            return  # answered already (this session's own termination)
        if line.startswith("HTTP/"):
            start = httputil.parse_response_start_line(line.strip())
            if start.code >= 200:  # a 100 Continue is not the answer
                self._status_line = start
                self._upstream_headers = httputil.HTTPHeaders()
        elif line.strip():
            self._upstream_headers.parse_line(line)
        elif self._status_line is not None:
            self._apply_headers()

    def _apply_headers(self) -> None:
        assert self._status_line is not None
        self.clear_header("Content-Type")
        self.set_status(self._status_line.code, self._status_line.reason or None)
        for name in proxy.RESPONSE_HEADERS:
            value = self._upstream_headers.get(name)
            if value is not None:
                self.set_header(name, value)
        location = self._upstream_headers.get("Location")
        if location is not None:
            self.set_header("Location", proxy.rewrite_location(location, self._upstream, self.prefix))

    async def _on_chunk(self, chunk: bytes) -> None:
        if self._finished:
            return
        if self.request.connection.stream.closed():  # type: ignore[attr-defined]
            raise iostream.StreamClosedError()
        self.write(chunk)
        await self.flush()

    # --- methods ----------------------------------------------------------------------------

    async def _relay(self) -> None:
        assert self._fetch is not None
        await self._enqueue(_END)
        try:
            await self._fetch
        except (ClientGone, iostream.StreamClosedError):
            if self.request.connection.stream.closed():  # type: ignore[attr-defined]
                return  # the browser went away; nothing to answer
            error: Exception = iostream.StreamClosedError()
            return self._fail(error)
        except HTTPClientError as e:
            return self._fail(e)
        except Exception as e:  # noqa: BLE001 - connection refused, DNS, TLS...: all a 502
            return self._fail(e)
        if self._finished:
            return
        content_type = self._upstream_headers.get("Content-Type") or "application/octet-stream"
        self.finish(set_content_type=content_type)

    def _fail(self, error: Exception) -> None:
        if self._headers_written:
            # Part of the answer is out: a short body is all that can tell the browser.
            self.request.connection.close()  # type: ignore[attr-defined]
            return
        self.clear()
        self._status_line = None
        self._upstream_headers = httputil.HTTPHeaders()
        reason = str(error) or type(error).__name__
        if isinstance(error, iostream.StreamClosedError) or "Stream closed" in reason:
            reason = "the connection was closed before the manager answered"
        raise web.HTTPError(502, f"the Backend.AI manager at {self._upstream.endpoint} cannot be reached: {reason}")

    async def get(self, *args: Any) -> None:
        await self._relay()

    async def head(self, *args: Any) -> None:
        await self._relay()

    async def post(self, *args: Any) -> None:
        await self._relay()

    async def put(self, *args: Any) -> None:
        await self._relay()

    async def patch(self, *args: Any) -> None:
        await self._relay()

    async def delete(self, *args: Any) -> None:
        if proxy.is_own_session(getattr(self, "_rest", ""), os.environ) and self._fetch is not None:
            # Terminating the session this server runs in: its container is stopped before the
            # manager's answer could come back through it, so the answer is given now and the
            # manager's, when it comes, goes to the log (the panels see the status change).
            fetch, log = self._fetch, self.log
            _detached.add(fetch)

            def done(f: asyncio.Future) -> None:
                _detached.discard(f)
                response = None if f.cancelled() or f.exception() else f.result()
                if response is None or response.code >= 400:
                    log.warning("Terminating this session failed: %s", response.code if response else f)

            fetch.add_done_callback(done)
            self.set_status(202)
            self.finish({"status": "TERMINATING", "reason": "this session is being terminated"})
            return
        await self._relay()

    async def options(self, *args: Any) -> None:  # type: ignore[override]
        await self._relay()
