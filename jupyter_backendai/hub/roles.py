"""The hub roles that let users and their sessions call the manager service.

The manager accepts a JupyterHub token only when it holds ``access:services!service=<name>``
(see ``manager.base``), so both the users' own tokens (the ``user`` role) and the sessions'
``$JUPYTERHUB_API_TOKEN`` (the ``server`` role) need it. ``jupyterhub_config.py`` and the
tests' hub configurations load these same roles.
"""

from __future__ import annotations

from typing import Any

#: The manager's service name in ``jupyterhub_config.py``.
SERVICE_NAME = "backendai"


def access_scope(service: str = SERVICE_NAME) -> str:
    return f"access:services!service={service}"


def session_roles(service: str = SERVICE_NAME) -> list[dict[str, Any]]:
    """``c.JupyterHub.load_roles`` entries: the ``user`` and ``server`` roles plus the manager's scope.

    The ``server`` role keeps JupyterHub's own scopes for it (activity reports, access to the
    server itself): overriding a default role replaces its scopes.
    """
    from jupyterhub.roles import get_default_roles

    server_scopes = next(r["scopes"] for r in get_default_roles() if r["name"] == "server")
    return [
        {
            # Users may call the manager (the lab panels and widgets do, with their tokens).
            "name": "user",
            "scopes": ["self", access_scope(service)],
        },
        {
            # A session's own token, which its server extension forwards to the manager.
            "name": "server",
            "scopes": [*server_scopes, access_scope(service)],
        },
    ]
