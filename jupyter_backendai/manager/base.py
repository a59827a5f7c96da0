"""The manager's request handling: who is asking, rate limits, JSON in and out, errors.

Three ways in, as DESIGN.md says:

* ``Authorization: token <JupyterHub API token>`` (what the server extension and the widgets
  send): the hub says whose token it is and which scopes it holds; the hub user is the db user
  of the same name. The token must hold ``access:services!service=<this service>`` (or a
  broader scope that implies it): a token made for something narrower, like reading a user's
  name, must not carry its owner's full rights here.
* ``Authorization: BackendAI signMethod=HMAC-SHA256, credential=<AK>:<sig>`` with ``Date`` (or
  ``X-BackendAI-Date``) and ``X-BackendAI-Version``: Backend.AI's keypair signing (its own
  client, the SDK, scripts). Dates more than 15 minutes off are refused, and so is a
  signature seen before (a replay).
* ``?token=<transfer token>`` on upload and download URLs only (see ``transfer_tokens``).

Every authenticated request counts against its keypair's rate limit (requests per 15
minutes, F39; 429 with ``Retry-After`` past it) and its query count. Errors are JSON
``{"type": ..., "title": ..., "status": ...}`` (Backend.AI's shape) with a 4xx for anything the
caller did wrong; a handler never answers a traceback. Any error of the shared hierarchy
(:mod:`jupyter_backendai.errors`: the storage, admin, folder, slot, token and signature errors,
and :class:`APIError`) is answered with its own status and reason, wherever it is raised.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from tornado import web

from ..core import errors, signing
from ..db import launch
from ..db import models as m
from ..db.types import utcnow

log = logging.getLogger("jupyter_backendai.manager")
T = TypeVar("T")

RATE_WINDOW = 900.0  # seconds: Backend.AI's 15 minutes
PROBLEM_TYPES = {
    400: "invalid-api-params",
    401: "auth-failed",
    403: "generic-forbidden",
    404: "object-not-found",
    409: "generic-conflict",
    413: "generic-bad-request",
    429: "too-many-requests",
    503: "service-unavailable",
}


@dataclass(frozen=True)
class Identity:
    """Who is asking: the db user and the keypair the request counts against."""

    user_id: Any
    username: str
    email: str
    role: str
    domain: str
    access_key: str
    via: str  # "hub-token" | "keypair" | "transfer"

    @property
    def is_superadmin(self) -> bool:
        return self.role == m.UserRole.SUPERADMIN.value

    @property
    def is_admin(self) -> bool:
        """A superadmin, or an admin of their own domain."""
        return self.role in (m.UserRole.SUPERADMIN.value, m.UserRole.ADMIN.value)

    def may_administer(self, domain: str) -> bool:
        return self.is_superadmin or (self.role == m.UserRole.ADMIN.value and self.domain == domain)


class RateLimiter:
    """Requests per keypair in a sliding 15-minute window (in this process)."""

    def __init__(self, window: float = RATE_WINDOW):
        self.window = window
        self._seen: dict[str, deque[float]] = {}

    def hit(self, key: str, limit: int, now: float) -> float | None:
        """Count a request; None when allowed, else the seconds until the next one would be."""
        q = self._seen.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        if limit and len(q) >= limit:
            return q[0] + self.window - now
        q.append(now)
        return None


class ReplayGuard:
    """Signatures seen within the allowed clock skew; a second use is a replay."""

    def __init__(self, horizon: float = 2 * signing.MAX_SKEW.total_seconds()):
        self.horizon = horizon
        self._seen: dict[str, float] = {}
        self._order: deque[tuple[float, str]] = deque()

    def seen(self, signature: str, now: float) -> bool:
        while self._order and self._order[0][0] < now - self.horizon:
            _, old = self._order.popleft()
            self._seen.pop(old, None)
        if signature in self._seen:
            return True
        self._seen[signature] = now
        self._order.append((now, signature))
        return False


class APIError(errors.Error, web.HTTPError):
    """A handler's own refusal: any status, a reason for the caller, extra fields and headers.

    Also a tornado ``HTTPError``, so that the status line carries the reason as before.
    """

    def __init__(self, status: int, reason: str, *, headers: dict[str, str] | None = None, **extra: Any):
        web.HTTPError.__init__(self, status, reason=reason[:200].replace("\n", " "))
        self.status = status
        self.title = reason
        self.extra = extra
        self.headers = headers or {}

    def __str__(self) -> str:
        return self.title

    @property
    def for_caller(self) -> bool:
        # Written for the caller also when it is the hub's failure (502) or a timeout.
        return True


def token_grants(scopes: Any, required: str) -> bool:
    """Do a token's expanded scopes (as the hub's ``GET /user`` lists them) imply ``required``?

    JupyterHub's own check, so that a broader scope (``access:services``) counts as it does in
    the hub. A hub too old to list scopes gives none, which grants nothing.
    """
    from jupyterhub.scopes import has_scope

    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        return False
    return bool(has_scope(required, frozenset(scopes)))


def _identity(user: m.User, keypair: m.KeyPair, via: str) -> Identity:
    return Identity(
        user_id=user.id,
        username=user.username,
        email=user.email,
        role=user.role.value,
        domain=user.domain_name,
        access_key=keypair.access_key,
        via=via,
    )


class APIHandler(web.RequestHandler):
    """Base of every manager endpoint. ``public = True`` skips authentication."""

    public = False
    max_body = 1024 * 1024  # JSON bodies; uploads have their own limits

    identity: Identity | None = None

    # --- shared state ----------------------------------------------------------------------

    @property
    def manager(self):
        return self.settings["backendai_manager"]

    @property
    def store(self):
        return self.manager.store

    async def run_db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(db, ...)`` in one transaction on a worker thread."""
        return await self.manager.database.run(fn, *args, **kwargs)

    # --- authentication ----------------------------------------------------------------------

    async def prepare(self):
        self.manager.metrics.request_started(self)
        if self.public:
            return
        self.identity = await self.authenticate()
        if self.identity is None:
            raise APIError(401, "authentication required: a JupyterHub API token or a Backend.AI keypair signature")
        await self.count_request(self.identity)

    async def authenticate(self) -> Identity | None:
        header = self.request.headers.get("Authorization", "")
        if header.startswith("BackendAI "):
            return await self._keypair_identity(header)
        token = None
        if header.lower().startswith(("token ", "bearer ")):
            token = header.split(None, 1)[1].strip()
        if token:
            return await self._hub_identity(token)
        return None

    async def _keypair_identity(self, header: str) -> Identity:
        try:
            access_key, signature = signing.parse_authorization(header)
        except signing.SignatureError as e:
            raise APIError(401, str(e)) from None
        date = self.request.headers.get("X-BackendAI-Date") or self.request.headers.get("Date") or ""
        version = self.request.headers.get("X-BackendAI-Version", "")
        if not version:
            raise APIError(400, "the X-BackendAI-Version header is required")
        if not date:
            raise APIError(401, "a Date or X-BackendAI-Date header is required for a signed request")
        content_type = self.request.headers.get("Content-Type", "")

        def look_up(db):
            keypair = db.get(m.KeyPair, access_key)
            if keypair is None or not keypair.is_active or not keypair.user.is_active:
                return None
            return keypair.secret_key, _identity(keypair.user, keypair, "keypair")

        found = await self.run_db(look_up)
        if found is None:
            raise APIError(401, "unknown or inactive access key")
        secret, identity = found
        try:
            signing.check(
                secret_key=secret,
                signature=signature,
                method=self.request.method,
                path_with_query=self.request.uri,
                date_header=date,
                host=self.request.host,
                content_type=content_type,
                version=version,
                now=dt.datetime.now(dt.timezone.utc),
            )
        except signing.SignatureError as e:
            raise APIError(401, str(e)) from None
        if self.manager.replays.seen(signature, time.monotonic()):
            raise APIError(401, "this signature was already used (a replayed request)")
        return identity

    async def _hub_identity(self, token: str) -> Identity:
        model = await self.manager.hub_user_for_token(token)
        if model is None:
            raise APIError(401, "the JupyterHub token is not valid")
        name = model.get("name")
        if model.get("kind") == "service" or not name:
            raise APIError(403, "service tokens cannot act for a user here")
        required = self.manager.required_token_scope
        if not token_grants(model.get("scopes"), required):
            raise APIError(
                403,
                f"this JupyterHub token lacks the scope {required!r}; "
                "create a token with that scope (or use a session's own token)",
            )

        def look_up(db):
            user = db.scalar(select(m.User).where(m.User.username == name))
            if user is None or not user.is_active:
                return None
            keypair = launch.main_keypair(db, user)
            return _identity(user, keypair, "hub-token") if keypair else None

        identity = await self.run_db(look_up)
        if identity is None:
            raise APIError(403, f"the hub user {name!r} has no active account with an active keypair")
        return identity

    async def count_request(self, identity: Identity) -> None:
        def count(db):
            keypair = db.get(m.KeyPair, identity.access_key)
            keypair.num_queries = (keypair.num_queries or 0) + 1
            keypair.last_used = utcnow()
            return keypair.rate_limit

        limit = await self.run_db(count)
        wait = self.manager.rate_limiter.hit(identity.access_key, limit, time.monotonic())
        if wait is not None:
            raise APIError(
                429,
                f"rate limit of {limit} requests per 15 minutes reached for this keypair",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )

    # --- permissions ---------------------------------------------------------------------------

    def require_superadmin(self) -> Identity:
        if not self.identity or not self.identity.is_superadmin:
            raise APIError(403, "this needs a superadmin")
        return self.identity

    def require_admin(self, domain: str | None = None) -> Identity:
        ident = self.identity
        if not ident or not ident.is_admin:
            raise APIError(403, "this needs an administrator")
        if domain is not None and not ident.may_administer(domain):
            raise APIError(403, f"you administer domain {ident.domain!r}, not {domain!r}")
        return ident

    # --- JSON ------------------------------------------------------------------------------------

    def json_body(self) -> dict[str, Any]:
        """The request's JSON object (Backend.AI's client sends one even on GET); {} when empty."""
        body = self.request.body or b""
        if len(body) > self.max_body:
            raise APIError(413, f"the request body is larger than {self.max_body} bytes")
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise APIError(400, "the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise APIError(400, "the request body must be a JSON object")
        return data

    def param(
        self, data: dict[str, Any], name: str, *aliases: str, default: Any = None, kind: type | None = None
    ) -> Any:
        """A field from the body, else from the query string; checked against ``kind``."""
        value = default
        for key in (name, *aliases):
            if key in data:
                value = data[key]
                break
            arg = self.get_query_argument(key, None)
            if arg is not None:
                value = arg
                break
        if kind is int and isinstance(value, bool):
            raise APIError(400, f"{name!r} must be a whole number, not {value!r}")
        if value is not None and kind is not None and not isinstance(value, kind):
            if kind is int and isinstance(value, str) and value.lstrip("-").isdigit():
                return int(value)
            if kind is bool and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            raise APIError(400, f"{name!r} must be a {kind.__name__}")
        return value

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(data, default=str))

    # --- errors --------------------------------------------------------------------------------

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        extra: dict[str, Any] = {}
        if isinstance(exc, errors.Error) and exc.for_caller:
            # tornado answers 500 to anything that is not its own HTTPError; the error knows better.
            if status_code != exc.status:
                status_code = exc.status
                self.set_status(status_code)
            title = str(exc)
            extra = getattr(exc, "extra", extra)
            for name, value in getattr(exc, "headers", {}).items():
                self.set_header(name, value)
        elif isinstance(exc, web.HTTPError):
            title = exc.log_message or exc.reason or self._reason
        else:
            title = "internal error; the server log has the details"
        self.set_header("Content-Type", "application/json; charset=utf-8")
        # Backend.AI's problem type URIs: its client reads "type" on every error.
        kind = PROBLEM_TYPES.get(status_code, "generic-bad-request" if status_code < 500 else "internal-server-error")
        body = {"type": f"https://api.backend.ai/probs/{kind}", "title": title, "status": status_code, **extra}
        self.finish(json.dumps(body, default=str))

    def log_exception(self, typ, value, tb):
        if isinstance(value, errors.Error) and value.for_caller:
            return  # an expected refusal: its answer says it all
        super().log_exception(typ, value, tb)

    def on_finish(self):
        self.manager.metrics.request_finished(self)
