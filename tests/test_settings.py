"""One home for where the database and the folder storage are, and one database handle.

Every part (the spawners, the authenticator, provisioning, the manager, the CLI) takes ``db_url``
and ``storage_root`` from :mod:`jupyter_backendai.settings`: the same defaults and variables,
per-class configuration as before, and ``c.DatabaseSettings`` / ``c.StorageSettings`` for all.
:class:`~jupyter_backendai.db.engine.Database` runs a unit of work in one transaction, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import select
from traitlets.config import Config

from jupyter_backendai.cli._base import Command
from jupyter_backendai.db import admin, upgrade
from jupyter_backendai.db import models as m
from jupyter_backendai.db.engine import Database, DatabaseError
from jupyter_backendai.hub.auth import BackendAIAuthenticator
from jupyter_backendai.hub.docker import DockerSessionSpawner
from jupyter_backendai.hub.local import LocalSessionSpawner
from jupyter_backendai.hub.provision import BackendAI
from jupyter_backendai.manager.app import ManagerApp

DB_PARTS = [DockerSessionSpawner, LocalSessionSpawner, BackendAIAuthenticator, BackendAI, ManagerApp, Command]
STORAGE_PARTS = [DockerSessionSpawner, LocalSessionSpawner, ManagerApp]


def _make(cls, config: Config | None = None):
    if cls is ManagerApp:
        ManagerApp.clear_instance()
    return cls(config=config or Config())


def test_every_part_has_the_same_defaults_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKENDAI_DB_URL", raising=False)
    monkeypatch.delenv("BACKENDAI_STORAGE", raising=False)
    assert {_make(cls).db_url for cls in DB_PARTS} == {"sqlite:///jupyter_backendai.sqlite"}
    assert {_make(cls).storage_root for cls in STORAGE_PARTS} == {str(tmp_path / "backendai-storage")}

    monkeypatch.setenv("BACKENDAI_DB_URL", "postgresql://u:p@db.invalid/product")
    monkeypatch.setenv("BACKENDAI_STORAGE", "/srv/folders")
    assert {_make(cls).db_url for cls in DB_PARTS} == {"postgresql://u:p@db.invalid/product"}
    # The spawners used to ignore $BACKENDAI_STORAGE (only the manager read it).
    assert {_make(cls).storage_root for cls in STORAGE_PARTS} == {"/srv/folders"}


def test_one_setting_for_all_and_each_class_still_on_its_own(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = Config()
    config.DatabaseSettings.db_url = "sqlite:///all.sqlite"
    config.StorageSettings.storage_root = "shared"  # relative: taken from the working directory
    config.DockerSessionSpawner.db_url = "sqlite:///docker.sqlite"
    config.ManagerApp.storage_root = "/srv/manager"
    urls = {cls.__name__: _make(cls, config).db_url for cls in DB_PARTS}
    assert urls.pop("DockerSessionSpawner") == "sqlite:///docker.sqlite"
    assert set(urls.values()) == {"sqlite:///all.sqlite"}
    roots = {cls.__name__: _make(cls, config).storage_root for cls in STORAGE_PARTS}
    assert roots == {
        "DockerSessionSpawner": str(tmp_path / "shared"),
        "LocalSessionSpawner": str(tmp_path / "shared"),
        "ManagerApp": "/srv/manager",
    }
    # The mixin in between still reads its old section, as documented for the spawners.
    config = Config()
    config.SessionSpawnerMixin.db_url = "sqlite:///mixin.sqlite"
    assert _make(LocalSessionSpawner, config).db_url == "sqlite:///mixin.sqlite"


def test_an_empty_value_means_the_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKENDAI_DB_URL", "sqlite:///from-env.sqlite")
    monkeypatch.delenv("BACKENDAI_STORAGE", raising=False)
    config = Config()
    config.Command.db_url = ""
    config.LocalSessionSpawner.storage_root = ""
    assert _make(Command, config).db_url == "sqlite:///from-env.sqlite"
    assert _make(LocalSessionSpawner, config).storage_root == str(tmp_path / "backendai-storage")


def test_database_runs_work_in_one_transaction(db_url):
    upgrade(db_url)
    database = Database(db_url)

    def create(db, name):
        admin.ensure_defaults(db)
        return admin.create_policy(db, name).name

    def create_then_fail(db, name):
        admin.create_policy(db, name)
        raise admin.Conflict("refused after the write")

    def names(db):
        return sorted(db.scalars(select(m.KeyPairResourcePolicy.name)))

    async def scenario():
        assert await database.run(create, "kept") == "kept"
        with pytest.raises(admin.Conflict, match="refused after the write"):
            await database.run(create_then_fail, "dropped")
        return await database.run(names)

    assert asyncio.run(scenario()) == ["default", "kept"]  # committed once, rolled back once
    database.dispose()


def test_database_is_shared_per_url_and_checks_at_open(tmp_path):
    a = Database.shared(f"sqlite:///{tmp_path / 'a.sqlite'}")
    assert Database.shared(f"sqlite:///{tmp_path / 'a.sqlite'}") is a
    assert Database.shared(f"sqlite:///{tmp_path / 'b.sqlite'}") is not a
    # Nothing is opened until asked; open() says what is wrong at once, as the manager's start does.
    assert not os.path.exists(tmp_path / "c.sqlite")
    with pytest.raises(DatabaseError, match="run `jupyter-backendai db upgrade` first"):
        Database(f"sqlite:///{tmp_path / 'c.sqlite'}").open()
    with pytest.raises(DatabaseError, match="not a database URL"):
        Database("::nonsense::").open()
