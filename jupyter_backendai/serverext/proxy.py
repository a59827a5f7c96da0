"""What the server extension forwards, and where: pure functions, no I/O.

The extension is a same-origin reverse proxy in front of the manager. These functions decide
which manager it talks to and how it authenticates (a JupyterHub API token, or Backend.AI's
keypair signing), map a request path under ``<base_url>backendai/`` to the manager's URL,
choose the headers that pass each way, and rewrite a ``Location`` that points into the
manager so that tus clients keep talking to the extension. The manager's transfer token
(``?token=``) is spelled ``?transfer_token=`` on the extension's side (see
:data:`TRANSFER_TOKEN_PARAM`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..client.config import ConfigurationError, discover_endpoint, host_header
from ..core import signing

#: The extension's URL segment under the server's base URL.
URL_SEGMENT = "backendai"

#: Request headers passed to the manager. Never the browser's cookies or its Authorization
#: (that is the user's Jupyter token, not a manager credential).
REQUEST_HEADERS = (
    "Accept",
    "Content-Type",
    "Content-Length",
    "Range",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-Range",
    "Tus-Resumable",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Concat",
)

#: Response headers passed back to the browser (``Location`` separately, rewritten).
RESPONSE_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "Content-Disposition",
    "Content-Encoding",
    "Accept-Ranges",
    "Cache-Control",
    "ETag",
    "Last-Modified",
    "Retry-After",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
)


class NotConfigured(Exception):
    """No manager to forward to; the message names the setting to set."""


class BadPath(ValueError):
    """A path the extension will not forward (dot segments, backslashes)."""


@dataclass(frozen=True)
class Upstream:
    """The manager and the credential every forwarded request carries."""

    mode: str  # "hub" (JupyterHub API token) or "keypair" (HMAC signing)
    endpoint: str  # base URL, no trailing slash
    token: str | None = field(default=None, repr=False)
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return host_header(self.endpoint)

    @property
    def path_prefix(self) -> str:
        """The endpoint's path without its trailing slash ('' for a manager at the root)."""
        return urllib.parse.urlsplit(self.endpoint).path.rstrip("/")

    def url(self, rest: str, query: str = "") -> str:
        """The manager's URL for ``rest`` (already percent-encoded, no leading slash)."""
        return f"{self.endpoint}/{rest}" + (f"?{query}" if query else "")

    def auth_headers(self, method: str, url: str, content_type: str, date: dt.datetime) -> dict[str, str]:
        """``Authorization`` (and for signing ``Date``, ``X-BackendAI-Version``, ``Content-Type``)."""
        if self.mode == "hub":
            return {"Authorization": f"token {self.token}"}
        assert self.access_key and self.secret_key
        parts = urllib.parse.urlsplit(url)
        path_with_query = parts.path + (f"?{parts.query}" if parts.query else "")
        return signing.headers(
            self.access_key, self.secret_key, method, path_with_query, self.host, content_type=content_type, date=date
        )


def resolve_upstream(
    *,
    mode: str = "auto",
    endpoint: str = "",
    access_key: str = "",
    secret_key: str = "",
    api_token: str = "",
    environ: Mapping[str, str],
) -> Upstream:
    """The manager and credential from the extension's settings (already defaulted from the env).

    ``auto``: a complete keypair wins (whoever configured one means it), else the hub token
    (inside a JupyterHub session), else :class:`NotConfigured`.
    """
    if mode not in ("auto", "hub", "keypair"):
        raise NotConfigured(f"c.BackendAIExtension.mode must be auto, hub or keypair, not {mode!r}")
    if bool(access_key) != bool(secret_key) and mode != "hub":
        missing = "secret_key ($BACKENDAI_SECRET_KEY)" if access_key else "access_key ($BACKENDAI_ACCESS_KEY)"
        raise NotConfigured(f"the Backend.AI keypair is incomplete: set c.BackendAIExtension.{missing} too")
    if mode == "keypair" or (mode == "auto" and access_key and secret_key):
        if not (access_key and secret_key):
            raise NotConfigured(
                "keypair mode needs c.BackendAIExtension.access_key and secret_key"
                " (or $BACKENDAI_ACCESS_KEY and $BACKENDAI_SECRET_KEY)"
            )
        chosen = "keypair"
    elif api_token:
        chosen = "hub"
    else:
        raise NotConfigured(
            "the Backend.AI server extension has no credentials: set c.BackendAIExtension.access_key and"
            " c.BackendAIExtension.secret_key (or $BACKENDAI_ACCESS_KEY and $BACKENDAI_SECRET_KEY), or run"
            " inside a JupyterHub session ($JUPYTERHUB_API_TOKEN)"
        )
    # Outside a hub the client's fallbacks (derived from $JUPYTERHUB_API_URL) do not apply.
    env = environ if chosen == "hub" else {k: v for k, v in environ.items() if not k.startswith("JUPYTERHUB_")}
    try:
        url = discover_endpoint(endpoint or None, env)
    except ConfigurationError as e:
        if "not an http(s) URL" in str(e):
            raise NotConfigured(f"c.BackendAIExtension.endpoint: {e}") from None
        raise NotConfigured(
            "the Backend.AI server extension has no manager endpoint: set c.BackendAIExtension.endpoint"
            " (or $BACKENDAI_ENDPOINT), e.g. https://hub.example.org/services/backendai"
        ) from None
    if chosen == "hub":
        return Upstream("hub", url, token=api_token)
    return Upstream("keypair", url, access_key=access_key, secret_key=secret_key)


#: What a browser leaves unencoded in a URL path (everything but WHATWG's path percent-encode
#: set: controls, space, ``"#<>?`{}`` and non-ASCII). ``%`` stays: an existing escape is kept.
_PATH_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"#<>?`{}')


def url_prefix(base_url: str) -> str:
    """The extension's path prefix as a browser sends it: ``<base_url>backendai/``.

    Tornado matches routes against the raw request path, so the prefix is encoded the way a
    browser encodes a URL path: a base URL that JupyterHub already encoded
    (``/user/j%C3%BCrgen/``) stays as it is, and a raw one gets its spaces and non-ASCII
    characters encoded.
    """
    base = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    return urllib.parse.quote(base, safe=_PATH_SAFE) + URL_SEGMENT + "/"


def route_pattern(prefix: str, tail: str) -> str:
    """A tornado route matching ``prefix`` literally (base URLs may hold ``.``, ``+``, ``(``...)."""
    return re.escape(prefix) + tail


def forward_path(raw_path: str, prefix: str) -> str:
    """The part of a request path after ``prefix``, checked; still percent-encoded.

    Dot segments are refused, also encoded ones (``%2e%2e``, ``..%2F``, ``..\\``): a browser
    never sends them, and forwarded with the user's credential they could climb out of the
    manager's prefix wherever a proxy in front of it normalises paths.
    """
    if not raw_path.startswith(prefix):
        raise BadPath("the path is not under the extension's prefix")
    rest = raw_path[len(prefix) :]
    for segment in rest.split("/"):
        if any(piece in (".", "..") for piece in re.split(r"[/\\]", urllib.parse.unquote(segment))):
            raise BadPath(f"the path segment {segment!r} is not allowed")
    return rest


#: The extension's name for the manager's ``?token=`` (upload and download URLs). Every Jupyter
#: server reads ``?token=`` as its own login token and refuses a request whose token does not
#: match, whatever its Authorization header says; so the manager's is spelled differently here.
TRANSFER_TOKEN_PARAM = "transfer_token"


def _param_name(piece: str) -> str:
    return urllib.parse.unquote_plus(piece.split("=", 1)[0])


def forward_query(query: str, jupyter_token: str = "") -> str:
    """The query string for the manager: ``transfer_token`` becomes ``token``.

    A ``token`` given as such goes along too (a browser with a login cookie can use the
    manager's URLs unchanged), unless ``transfer_token`` is there as well or it is the Jupyter
    server's own token, which is not the manager's business. Other parameters pass verbatim.
    """
    pieces = [p for p in query.split("&") if p]
    has_transfer = any(_param_name(p) == TRANSFER_TOKEN_PARAM for p in pieces)
    out = []
    for piece in pieces:
        name = _param_name(piece)
        if name == TRANSFER_TOKEN_PARAM:
            out.append("token" + piece[len(piece.split("=", 1)[0]) :])
        elif name == "token":
            value = urllib.parse.unquote_plus(piece.split("=", 1)[1]) if "=" in piece else ""
            if has_transfer or (jupyter_token and hmac.compare_digest(value, jupyter_token)):
                continue
            out.append(piece)
        else:
            out.append(piece)
    return "&".join(out)


def backward_query(query: str) -> str:
    """The manager's ``token`` parameter in a URL it answers, as the extension spells it."""
    return "&".join(
        TRANSFER_TOKEN_PARAM + p[len(p.split("=", 1)[0]) :] if _param_name(p) == "token" else p
        for p in query.split("&")
        if p
    )


def request_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    """The browser's headers that the manager gets (see :data:`REQUEST_HEADERS`)."""
    return {name: incoming[name] for name in REQUEST_HEADERS if incoming.get(name) is not None}


def rewrite_location(location: str, upstream: Upstream, prefix: str) -> str:
    """A ``Location`` into the manager → the same resource under the extension's ``prefix``."""
    target = urllib.parse.urlsplit(location)
    if target.scheme or target.netloc:
        here = urllib.parse.urlsplit(upstream.endpoint)
        if target.scheme != here.scheme or host_header(location) != upstream.host:
            return location  # somewhere else: left alone
    elif not location.startswith("/"):
        return location  # relative: it resolves against the extension's own URL already
    base = upstream.path_prefix
    if target.path != base and not target.path.startswith(base + "/"):
        return location
    rest = target.path[len(base) :].lstrip("/")
    query = backward_query(target.query)
    return prefix + rest + (f"?{query}" if query else "")


class UniqueClock:
    """Strictly increasing request dates: the manager accepts each signature once, and two
    requests to the same path within one clock tick would otherwise be signed identically."""

    def __init__(self) -> None:
        self._last = dt.datetime.min.replace(tzinfo=dt.timezone.utc)

    def now(self) -> dt.datetime:
        now = dt.datetime.now(dt.timezone.utc)
        if now <= self._last:
            now = self._last + dt.timedelta(microseconds=1)
        self._last = now
        return now


def is_own_session(rest: str, environ: Mapping[str, str]) -> bool:
    """Whether ``rest`` (the forwarded path) is ``session/<ref>`` of the session this server runs in.

    ``ref`` is the session's id or name, as the spawner puts them in ``BACKENDAI_SESSION_ID`` and
    ``BACKENDAI_SESSION_NAME``; outside a session neither is set and nothing is "own".
    """
    head, _, ref = rest.strip("/").partition("/")
    if head != "session" or not ref or "/" in ref:
        return False
    ref = urllib.parse.unquote(ref)
    own = {environ.get("BACKENDAI_SESSION_ID", ""), environ.get("BACKENDAI_SESSION_NAME", "")} - {""}
    return ref in own
