"""Where the product's database and folder storage are: one home for their defaults and variables.

Every part that opens the database (the hub's spawners, authenticator and provisioning, the
manager service, the operator CLI, the first start of ``jupyterhub_config.py``) takes its URL
from :func:`default_db_url` unless configured, and every part that touches the folders takes
their directory from :func:`default_storage_root`, so that they all agree without being told
twice:

* ``$BACKENDAI_DB_URL``, else ``sqlite:///jupyter_backendai.sqlite`` in the working directory;
* ``$BACKENDAI_STORAGE``, else ``./backendai-storage``, made absolute.

The traits of :class:`DatabaseSettings` and :class:`StorageSettings` are mixed into each
configurable class, so ``c.DockerSessionSpawner.db_url`` or ``--ManagerApp.storage_root=``
keep working, and ``c.DatabaseSettings.db_url`` / ``c.StorageSettings.storage_root`` set them
for every part in the process at once. Nothing here opens the database (see
:class:`jupyter_backendai.db.engine.Database`).
"""

from __future__ import annotations

import os

from traitlets import Unicode, default, validate
from traitlets.config import Configurable

ENV_DB_URL = "BACKENDAI_DB_URL"
DEFAULT_DB_URL = "sqlite:///jupyter_backendai.sqlite"
ENV_STORAGE = "BACKENDAI_STORAGE"
DEFAULT_STORAGE = "backendai-storage"


def default_db_url() -> str:
    """``$BACKENDAI_DB_URL``, else the SQLite file in the working directory."""
    return os.environ.get(ENV_DB_URL, "").strip() or DEFAULT_DB_URL


def default_storage_root() -> str:
    """``$BACKENDAI_STORAGE``, else ``./backendai-storage``; absolute either way."""
    return os.path.abspath(os.environ.get(ENV_STORAGE, "").strip() or DEFAULT_STORAGE)


class DatabaseSettings(Configurable):
    """The product's database, for every part that opens it."""

    # None until set or asked for, so that setting it empty goes through the validator too.
    db_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help=f"""SQLAlchemy URL of the product's database, e.g. ``postgresql://user:password@host/db``
        (default: ``${ENV_DB_URL}``, else ``{DEFAULT_DB_URL}`` in the working directory; empty
        means that default). In a configuration file, ``c.DatabaseSettings.db_url`` sets it for
        every part at once (the hub's spawners, authenticator and provisioning).""",
    )

    @default("db_url")
    def _default_db_url(self) -> str:
        return default_db_url()

    @validate("db_url")
    def _valid_db_url(self, proposal) -> str:
        # Empty stands for the default, as ``--db-url=`` always did on the command line.
        return (proposal.value or "").strip() or default_db_url()


class StorageSettings(Configurable):
    """The folder storage's directory, for every part that reads or writes folders."""

    storage_root = Unicode(
        None,
        allow_none=True,
        config=True,
        help=f"""Directory of the folder storage: one directory per storage host under it (default:
        ``${ENV_STORAGE}``, else ``./{DEFAULT_STORAGE}``; a relative path is taken from the working
        directory). The hub, its sessions and the manager service must see the same directory.
        In a configuration file, ``c.StorageSettings.storage_root`` sets it for every part at once.""",
    )

    @default("storage_root")
    def _default_storage_root(self) -> str:
        return default_storage_root()

    @validate("storage_root")
    def _valid_storage_root(self, proposal) -> str:
        # Absolute: folders are bind-mounted from it, and the processes may not share a directory.
        value = (proposal.value or "").strip()
        return os.path.abspath(value) if value else default_storage_root()
