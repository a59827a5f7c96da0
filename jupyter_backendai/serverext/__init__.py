"""The jupyter-server extension: same-origin endpoints under ``<base_url>backendai/`` that forward
to the manager, for the JupyterLab panels.

Installing the package enables it (``etc/jupyter/jupyter_server_config.d/jupyter_backendai.json``);
``jupyter server extension list`` shows it. Settings: :class:`.app.BackendAIExtension`.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import BackendAIExtension

    return [{"module": "jupyter_backendai.serverext", "app": BackendAIExtension}]
