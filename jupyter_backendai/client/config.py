"""Where the manager is and how to authenticate to it, from arguments or the environment.

Discovery, in order (the first that applies wins):

* endpoint: the ``endpoint`` argument; ``$BACKENDAI_ENDPOINT`` (or Backend.AI's own
  ``$BACKEND_ENDPOINT``); ``$JUPYTERHUB_PUBLIC_URL`` + ``services/backendai`` when the hub
  publishes its public URL; else, inside a JupyterHub session, the scheme and host of
  ``$JUPYTERHUB_API_URL`` with ``$JUPYTERHUB_BASE_URL`` + ``services/backendai/``. The last is
  only a guess (the hub's API address is not always the proxy's), so deployments where it is
  wrong should set ``$BACKENDAI_ENDPOINT`` in the session's environment.
* credentials: explicit ``access_key`` and ``secret_key`` (Backend.AI HMAC signing); an explicit
  ``token``; ``$BACKEND_ACCESS_KEY`` with ``$BACKEND_SECRET_KEY`` (the names Backend.AI's client
  reads, used only when both are set); ``$JUPYTERHUB_API_TOKEN`` (what a session has). Keys
  come before tokens because a script given keys means them, whereas a token in the environment
  is merely there.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

SERVICE_PATH = "services/backendai"


class ConfigurationError(ValueError):
    """No endpoint or no credentials could be found; the message says what to set."""


@dataclass(frozen=True)
class Credentials:
    """Either a keypair (signed requests) or a JupyterHub API token (``Authorization: token``)."""

    access_key: str | None = None
    secret_key: str | None = None
    token: str | None = None

    @property
    def signed(self) -> bool:
        return self.access_key is not None

    def __repr__(self) -> str:  # never show a secret in a traceback or a notebook
        return f"Credentials(access_key={self.access_key!r}, token={'***' if self.token else None})"


def discover_endpoint(endpoint: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The manager's base URL, without a trailing slash."""
    env = os.environ if environ is None else environ
    url = endpoint or env.get("BACKENDAI_ENDPOINT") or env.get("BACKEND_ENDPOINT")
    if not url and env.get("JUPYTERHUB_PUBLIC_URL"):
        url = env["JUPYTERHUB_PUBLIC_URL"].rstrip("/") + "/" + SERVICE_PATH
    if not url and env.get("JUPYTERHUB_API_URL"):
        api = urllib.parse.urlsplit(env["JUPYTERHUB_API_URL"])
        base = "/" + env.get("JUPYTERHUB_BASE_URL", "/").strip("/")
        base = "" if base == "/" else base
        url = f"{api.scheme}://{api.netloc}{base}/{SERVICE_PATH}"
    if not url:
        raise ConfigurationError(
            "no manager endpoint: pass endpoint=... or set $BACKENDAI_ENDPOINT (inside a JupyterHub session"
            " it is derived from $JUPYTERHUB_API_URL)"
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"the endpoint {url!r} is not an http(s) URL")
    return url.rstrip("/")


def discover_credentials(
    access_key: str | None = None,
    secret_key: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """The credentials to use (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    if (access_key is None) != (secret_key is None):
        raise ConfigurationError("access_key and secret_key go together: pass both or neither")
    if access_key is not None and secret_key is not None:
        return Credentials(access_key=access_key, secret_key=secret_key)
    if token:
        return Credentials(token=token)
    if env.get("BACKEND_ACCESS_KEY") and env.get("BACKEND_SECRET_KEY"):
        return Credentials(access_key=env["BACKEND_ACCESS_KEY"], secret_key=env["BACKEND_SECRET_KEY"])
    if env.get("JUPYTERHUB_API_TOKEN"):
        return Credentials(token=env["JUPYTERHUB_API_TOKEN"])
    raise ConfigurationError(
        "no credentials: pass access_key= and secret_key= (or token=), or run inside a JupyterHub session"
        " ($JUPYTERHUB_API_TOKEN)"
    )


def host_header(url: str) -> str:
    """The ``Host`` a request to ``url`` carries (and the server signs with): no default port."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if parts.port in (None, default) else f"{host}:{parts.port}"
