"""The extension application: its settings (traitlets) and its routes under the server's base URL."""

from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from traitlets import Bool, CaselessStrEnum, Float, Integer, Unicode, default

from .._version import __version__
from ..core.lifecycle import WARNING_ENV
from . import proxy

GiB = 1024**3


def _env(*names: str) -> str:
    return next((os.environ[n] for n in names if os.environ.get(n)), "")


class BackendAIExtension(ExtensionApp):
    """Same-origin endpoints under ``<base_url>backendai/`` that forward to the manager.

    Inside a JupyterHub session it needs no configuration (``$BACKENDAI_ENDPOINT`` and
    ``$JUPYTERHUB_API_TOKEN`` come from the hub). In a JupyterLab elsewhere, set the
    endpoint and a keypair, e.g. in ``jupyter_server_config.py``::

        c.BackendAIExtension.endpoint = "https://hub.example.org/services/backendai"
        c.BackendAIExtension.access_key = "AKIA..."
        c.BackendAIExtension.secret_key = "..."
    """

    name = "backendai"
    version = __version__
    load_other_extensions = True

    endpoint = Unicode(
        config=True,
        help="""The manager's base URL, e.g. https://hub.example.org/services/backendai.
        Default: $BACKENDAI_ENDPOINT (or $BACKEND_ENDPOINT); inside a JupyterHub session, when
        neither is set, it is derived from $JUPYTERHUB_PUBLIC_URL or $JUPYTERHUB_API_URL.""",
    )

    @default("endpoint")
    def _default_endpoint(self) -> str:
        return _env("BACKENDAI_ENDPOINT", "BACKEND_ENDPOINT")

    access_key = Unicode(
        config=True,
        help="""Access key of the Backend.AI keypair that signs every forwarded request (HMAC-SHA256).
        Default: $BACKENDAI_ACCESS_KEY when $BACKENDAI_SECRET_KEY is set too, else $BACKEND_ACCESS_KEY.""",
    )

    @default("access_key")
    def _default_access_key(self) -> str:
        if os.environ.get("BACKENDAI_SECRET_KEY"):
            return os.environ.get("BACKENDAI_ACCESS_KEY", "")
        return _env("BACKEND_ACCESS_KEY") if os.environ.get("BACKEND_SECRET_KEY") else ""

    secret_key = Unicode(
        config=True,
        help="""Secret key of that keypair (never sent, logged or shown; it only signs).
        Default: $BACKENDAI_SECRET_KEY, else $BACKEND_SECRET_KEY.""",
    )

    @default("secret_key")
    def _default_secret_key(self) -> str:
        return _env("BACKENDAI_SECRET_KEY", "BACKEND_SECRET_KEY")

    api_token = Unicode(
        config=True,
        help="""JupyterHub API token sent as 'Authorization: token ...' in hub mode.
        Default: $JUPYTERHUB_API_TOKEN (what the hub gives every session).""",
    )

    @default("api_token")
    def _default_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    mode = CaselessStrEnum(
        ["auto", "hub", "keypair"],
        default_value="auto",
        config=True,
        help="""How to authenticate to the manager: 'keypair' (sign with access_key/secret_key),
        'hub' (the JupyterHub API token), or 'auto': the keypair when both keys are set, else the
        hub token.""",
    )

    connect_timeout = Float(20.0, config=True, help="Seconds to wait for a connection to the manager.")

    request_timeout = Float(
        0.0,
        config=True,
        help="""Seconds a whole forwarded request may take; 0 for no limit (uploads and downloads
        of large files take as long as they take; the browser can always cancel).""",
    )

    max_connections = Integer(
        64, config=True, help="Requests to the manager in flight at once; more wait for a free connection."
    )

    max_request_body = Integer(
        64 * GiB,
        config=True,
        help="""Largest request body forwarded, in bytes: 64 GiB by default (a tus PATCH can carry a whole file). Bodies are
        streamed, never held in memory; the manager applies its own limits too.""",
    )

    app_start_timeout = Float(
        60.0,
        config=True,
        help="""Seconds an app of the session (TensorBoard, an app of the image's service-ports label)
        may take from its start to answering HTTP before opening it fails.""",
    )

    validate_cert = Bool(True, config=True, help="Verify the manager's TLS certificate (https endpoints).")

    ca_certs = Unicode(
        config=True, help="A CA bundle (PEM file) to verify the manager's certificate with; default: the system's."
    )

    lifetime_warning = Float(
        config=True,
        help="""Seconds before the session's end (its policy's maximum lifetime) from which the lab
        shows a warning that the session is about to end. Default: $BACKENDAI_LIFETIME_WARNING,
        which the hub sets from its own setting (SessionSpawnerMixin.lifetime_warning), else 600.""",
    )

    @default("lifetime_warning")
    def _default_lifetime_warning(self) -> float:
        try:
            return max(0.0, float(os.environ.get(WARNING_ENV, "")))
        except ValueError:
            return 600.0

    _http: SimpleAsyncHTTPClient | None = None

    def upstream(self) -> proxy.Upstream:
        """The manager and credential to use now (:class:`proxy.NotConfigured` when there is none)."""
        return proxy.resolve_upstream(
            mode=self.mode,
            endpoint=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            api_token=self.api_token,
            environ=os.environ,
        )

    @property
    def http(self) -> SimpleAsyncHTTPClient:
        # Made on first use, on the running loop (the server is initialised before its loop runs).
        if self._http is None:
            self._http = SimpleAsyncHTTPClient(
                force_instance=True,
                max_clients=self.max_connections,
                # Responses are streamed to the browser chunk by chunk, whatever their size.
                max_body_size=1 << 62,
                defaults={"connect_timeout": self.connect_timeout, "request_timeout": self.request_timeout},
            )
        return self._http

    def initialize_settings(self) -> None:
        self.clock = proxy.UniqueClock()
        try:
            upstream = self.upstream()
        except proxy.NotConfigured as e:
            self.log.warning("Backend.AI server extension: %s", e)
        else:
            self.log.info("Backend.AI server extension: %s mode, manager at %s", upstream.mode, upstream.endpoint)

    #: The session's apps (:mod:`.apps`), set up with the handlers.
    apps = None

    def _add_app_handlers(self, prefix: str) -> None:
        from .apps import Apps, app_routes

        taken = frozenset((self.serverapp.config.get("ServerProxy", {}) or {}).get("servers", {}) or {})
        self.apps = Apps.from_environ(timeout=self.app_start_timeout, taken=taken, log=self.log)
        if self.apps.error:
            self.log.warning("Backend.AI server extension: %s", self.apps.error)
        # Before the catch-all route to the manager, which a later group of routes would follow.
        routes = app_routes(prefix, {"name": self.name, "prefix": prefix}) + self.apps.routes(self.serverapp.base_url)
        self.serverapp.web_app.add_handlers(".*$", routes)

    def initialize_handlers(self) -> None:
        from .handlers import ConfigHandler, ProxyHandler, SessionInfoHandler

        self._add_app_handlers(proxy.url_prefix(self.serverapp.base_url))

        # Routes are added here rather than through self.handlers, which would join the raw
        # base URL into a regular expression: base URLs with spaces, non-ASCII, '%', '.' or
        # '+' need the encoded, escaped prefix (see proxy.url_prefix).
        prefix = proxy.url_prefix(self.serverapp.base_url)
        kwargs = {"name": self.name, "prefix": prefix}
        self.serverapp.web_app.add_handlers(
            ".*$",
            [
                (proxy.route_pattern(prefix, "_ext/config"), ConfigHandler, kwargs),
                (proxy.route_pattern(prefix, "_ext/session"), SessionInfoHandler, kwargs),
                (proxy.route_pattern(prefix, ".*"), ProxyHandler, kwargs),
            ],
        )

    async def stop_extension(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
