"""A Python client of the manager's REST API, for notebooks, widgets and scripts.

Inside a JupyterHub session ``Client()`` finds the manager and the user's token by itself;
elsewhere give it the endpoint and a Backend.AI keypair::

    from jupyter_backendai.client import Client

    with Client("https://hub.example.org/services/backendai", access_key="AK...", secret_key="SK...") as c:
        c.create_folder("data")
        c.upload("data", "big.bin", chunk_size=16 * 1024 * 1024)  # resumes by itself
        c.download("data", "big.bin", "copy.bin")  # completes a partial copy.bin

:class:`AsyncClient` has the same methods as coroutines. Refusals raise :class:`ManagerError`
(``.status``, ``.title``); see :mod:`.config` for how the endpoint and credentials are found.
Progress bars are drawn with ``tqdm`` (a text bar in a terminal, a widget in a notebook).
"""

from __future__ import annotations

from .aio import AsyncClient
from .config import ConfigurationError, Credentials, discover_credentials, discover_endpoint
from .errors import ManagerError, TransferError
from .sync import Client

__all__ = [
    "AsyncClient",
    "Client",
    "ConfigurationError",
    "Credentials",
    "ManagerError",
    "TransferError",
    "discover_credentials",
    "discover_endpoint",
]
