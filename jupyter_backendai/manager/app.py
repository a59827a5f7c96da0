"""The manager service: a tornado application on the product's database and folder storage.

Runs as a JupyterHub-managed service at ``/services/backendai/`` (``jupyterhub_config.py``
declares it) or on its own (``jupyter-backendai-manager --port 8090``) for keypair clients.
Each concern is a module with a ``handlers`` list of ``(path, HandlerClass)`` relative to
the service's base URL; :data:`HANDLER_MODULES` lists them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import time
from typing import Any

from tornado import httpserver, web
from traitlets import Bytes, Float, Integer, Unicode, default
from traitlets.config import Application

from .._version import __version__
from ..core.throttle import LoginThrottle
from ..db.engine import Database, DatabaseError
from ..settings import DatabaseSettings, StorageSettings
from . import (
    api_launch,
    api_openapi,
    api_queue,
    api_resources,
    api_root,
    api_sessions,
    api_transfer,
)
from .admin import agents as admin_agents
from .admin import domains as admin_domains
from .admin import groups as admin_groups
from .admin import images as admin_images
from .admin import keypairs as admin_keypairs
from .admin import maintenance as admin_maintenance
from .admin import policies as admin_policies
from .admin import presets as admin_presets
from .admin import registries as admin_registries
from .admin import scaling_groups as admin_scaling_groups
from .admin import settings as admin_settings
from .admin import users as admin_users
from .base import APIHandler, RateLimiter, ReplayGuard
from .folders import files as folder_files
from .folders import lifecycle as folder_lifecycle
from .folders import sharing as folder_sharing
from .folders import usage as folder_usage
from .gql import handler as gql_handler
from .metrics import Metrics, MetricsHandler

#: The modules with a ``handlers`` list, in routing order. They are imported above, so
#: that a module that is missing or fails to import stops the manager at start instead of leaving
#: its part of the API silently absent.
HANDLER_MODULES = [
    api_root,
    folder_lifecycle,
    folder_usage,
    folder_files,
    folder_sharing,
    api_transfer,
    api_sessions,
    api_queue,
    api_resources,
    api_launch,
    admin_users,
    admin_keypairs,
    admin_policies,
    admin_images,
    admin_registries,
    admin_presets,
    admin_agents,
    admin_scaling_groups,
    admin_domains,
    admin_groups,
    admin_settings,
    admin_maintenance,
    gql_handler,
    api_openapi,
]

log = logging.getLogger("jupyter_backendai.manager")


class NotFoundHandler(APIHandler):
    public = True

    async def prepare(self):
        await super().prepare()
        from .base import APIError

        raise APIError(404, f"no such endpoint: {self.request.method} {self.request.path}")


class ManagerApp(DatabaseSettings, StorageSettings, Application):
    """``jupyter-backendai-manager``: the REST API for folders, transfers, sessions, resources, admin."""

    name = "jupyter-backendai-manager"
    version = __version__

    ip = Unicode(
        "127.0.0.1",
        config=True,
        help="Address to listen on (loopback by default: the hub's proxy forwards to it).",
    )
    port = Integer(config=True, help="Port to listen on (default: from $JUPYTERHUB_SERVICE_URL, else 8090).")

    @default("port")
    def _default_port(self):
        from urllib.parse import urlparse

        url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        return urlparse(url).port if url and urlparse(url).port else 8090

    base_url = Unicode(config=True, help="URL prefix of every route (default: $JUPYTERHUB_SERVICE_PREFIX, else /).")

    @default("base_url")
    def _default_base_url(self):
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")

    hub_api_url = Unicode(config=True, help="The hub's REST API (default: $JUPYTERHUB_API_URL).")

    @default("hub_api_url")
    def _default_hub_api_url(self):
        return os.environ.get("JUPYTERHUB_API_URL", "")

    hub_api_token = Unicode(
        config=True, help="This service's token for the hub's API (default: $JUPYTERHUB_API_TOKEN). Never logged."
    )

    @default("hub_api_token")
    def _default_hub_api_token(self):
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    service_name = Unicode(
        config=True,
        help="""This service's name in the hub (default: $JUPYTERHUB_SERVICE_NAME, else ``backendai``).

        A JupyterHub token is accepted only when it holds ``access:services!service=<this name>``
        (or a broader scope such as ``access:services``); any other token is refused with 403,
        whatever its owner may do. ``jupyterhub_config.py`` gives the scope to the hub's ``user``
        and ``server`` roles (``hub/roles.py``), so users' tokens and sessions' own tokens carry it.""",
    )

    @default("service_name")
    def _default_service_name(self):
        return os.environ.get("JUPYTERHUB_SERVICE_NAME") or "backendai"

    @property
    def required_token_scope(self) -> str:
        return f"access:services!service={self.service_name}"

    trusted_proxy_count = Integer(
        1,
        config=True,
        help="""How many proxies in front of the manager append the client's address to
        ``X-Forwarded-For`` (1: the hub's configurable-http-proxy). The login throttle of
        ``/auth/authorize`` counts per client address, which is the entry this many places from
        the right; ``X-Real-Ip`` and entries further left are the client's own and ignored.""",
    )
    max_failed_logins = Integer(
        10,
        config=True,
        help="""Failed ``/auth/authorize`` attempts (per account, and per client address) that lock
        it for lockout_seconds, as the hub's login does (``BackendAIAuthenticator``).""",
    )
    free_failed_logins = Integer(
        3,
        config=True,
        help="""Failed ``/auth/authorize`` attempts answered without delay; later ones are slowed
        (0.5 s doubling up to ``max_login_delay``), then answered 429 with ``Retry-After``.""",
    )
    failed_login_window = Float(
        900.0, config=True, help="Seconds over which failed attempts are counted (older ones are forgotten)."
    )
    lockout_seconds = Float(
        900.0, config=True, help="Seconds an account or address stays locked after ``max_failed_logins``."
    )
    max_login_delay = Float(8.0, config=True, help="Upper bound of the delay added to slowed attempts, in seconds.")

    transfer_secret = Bytes(
        config=True,
        help="""Key that signs upload and download tokens (the URLs of transfers). Default:
        ``$BACKENDAI_TRANSFER_SECRET``, else random at each start (URLs then end with a restart).""",
    )

    @default("transfer_secret")
    def _default_transfer_secret(self):
        env = os.environ.get("BACKENDAI_TRANSFER_SECRET")
        return env.encode() if env else secrets.token_bytes(32)

    transfer_token_lifetime = Float(3600.0, config=True, help="Seconds an upload or download URL stays valid (1 hour).")
    max_upload_size = Integer(
        64 * 1024**3, config=True, help="Largest single upload, in bytes (64 GiB); larger ones are refused with 413."
    )
    hub_token_cache_seconds = Float(
        60.0,
        config=True,
        help="Seconds a checked JupyterHub token is remembered (a revoked token works at most this long).",
    )
    folder_usage_ttl = Float(
        300.0,
        config=True,
        help="""Seconds a folder's measured size stays fresh. After a folder listing the stalest
        (or never measured) folders it showed are measured in the background, a few per listing,
        so that ``cur_size`` follows what sessions write; 0 turns that off.""",
    )

    # --- runtime ------------------------------------------------------------------------------

    def initialize(self, argv=None):
        super().initialize(argv)
        try:
            self.database = Database(self.db_url).open()
        except DatabaseError as e:
            # A schema to upgrade, a key that does not decrypt the secrets: said in one line at
            # start (the hub's log shows it), not as a traceback, nor later in every request.
            self.log.critical("jupyter-backendai manager: %s", e)
            self.exit(1)
        from ..storage import FolderStore

        self.store = FolderStore(self.storage_root)
        self.rate_limiter = RateLimiter()
        self.replays = ReplayGuard()
        self.login_throttle = LoginThrottle(
            max_failures=self.max_failed_logins,
            free_failures=self.free_failed_logins,
            window=self.failed_login_window,
            lockout=self.lockout_seconds,
            max_delay=self.max_login_delay,
        )
        self.metrics = Metrics()
        self.started = time.time()
        self._token_cache: dict[str, tuple[float, Any]] = {}

    def make_app(self) -> web.Application:
        prefix = "/" + self.base_url.strip("/")
        prefix = "" if prefix == "/" else prefix
        routes: list[Any] = []
        for module in HANDLER_MODULES:
            routes += [(prefix + path, handler, *rest) for path, handler, *rest in module.handlers]
        routes.append((prefix + "/metrics", MetricsHandler))
        routes.append((prefix + "/.*", NotFoundHandler))
        return web.Application(
            routes,
            backendai_manager=self,
            default_handler_class=NotFoundHandler,
            websocket_ping_interval=None,
        )

    async def hub_user_for_token(self, token: str) -> dict | None:
        """The hub's model of the token's owner (cached briefly), or None for a bad token."""
        now = time.monotonic()
        cached = self._token_cache.get(token)
        if cached and now - cached[0] < self.hub_token_cache_seconds:
            return cached[1]
        if not self.hub_api_url:
            return None
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        try:
            response = await AsyncHTTPClient().fetch(
                self.hub_api_url.rstrip("/") + "/user", headers={"Authorization": f"token {token}"}, request_timeout=10
            )
            import json

            model = json.loads(response.body)
        except HTTPClientError as e:
            if e.code in (401, 403, 404):
                model = None
            else:
                raise
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[token] = (now, model)
        return model

    def start(self):
        app = self.make_app()
        # Small for every request: tornado buffers a body before the handler runs. The tus upload
        # handler streams its body and raises the limit for itself (up to max_upload_size).
        server = httpserver.HTTPServer(app, xheaders=True, max_body_size=16 * 1024 * 1024)
        server.listen(self.port, self.ip)
        self.log.info("jupyter-backendai manager listening on http://%s:%s%s", self.ip, self.port, self.base_url)
        loop = asyncio.get_event_loop()
        # The hub stops its services with SIGINT, then SIGTERM: an ordinary end, not a traceback.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, loop.stop)
        try:
            loop.run_forever()
        finally:
            server.stop()
            self.log.info("jupyter-backendai manager stopped")


def main(argv=None):
    ManagerApp.launch_instance(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
