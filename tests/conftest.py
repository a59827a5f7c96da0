"""Shared fixtures: a fresh database per test, on SQLite and (when configured) PostgreSQL.

``BACKENDAI_TEST_POSTGRES_URL`` names a PostgreSQL server and a role that may create
databases; each test gets a database of its own there, dropped afterwards. Without it the
PostgreSQL variants are skipped, unless ``BACKENDAI_TEST_REQUIRE_POSTGRES=1`` (set by CI),
which turns the missing server into a failure.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from jupyter_backendai.db.engine import make_engine, resolve_url
from tests.db_key import use_fresh_db_key

# One key for the database's secrets for the whole run; tests of the key's sources set their own.
use_fresh_db_key()

pytest_plugins = [
    "tests.hub_fixtures",
    "tests.manager_fixtures",
    "tests.swarm_fixtures",
    "tests.k8s_fixtures",
    "tests.registry_helpers",
]

PG_URL = os.environ.get("BACKENDAI_TEST_POSTGRES_URL", "")
REQUIRE_PG = os.environ.get("BACKENDAI_TEST_REQUIRE_POSTGRES", "") not in ("", "0", "false")


def _pg_admin_url() -> str:
    return resolve_url(PG_URL)


@contextlib.contextmanager
def postgres_database(prefix: str = "jba_test") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards (skips, or fails in CI, without a server)."""
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("BACKENDAI_TEST_POSTGRES_URL is not set but PostgreSQL tests are required")
        pytest.skip("set BACKENDAI_TEST_POSTGRES_URL to run against PostgreSQL")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as e:  # noqa: BLE001 - any failure to reach the server
        admin.dispose()
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL at {make_url(PG_URL).render_as_string()} is required but failed: {e}")
        pytest.skip(f"PostgreSQL unavailable: {e}")
    url = make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        _drop_database(admin, name)
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'backendai.sqlite'}"
        return
    with postgres_database() as url:
        yield url


def _drop_database(admin, name: str) -> None:
    # FORCE cannot end an autovacuum worker without pg_signal_backend (which .ci/run grants); one
    # that has just started on the test database makes it fail now and then, and is gone soon.
    import time

    from sqlalchemy.exc import DBAPIError

    for attempt in range(20):
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except DBAPIError as e:
            if "pg_signal_backend" not in str(e) or attempt == 19:
                raise
            time.sleep(0.25)


@pytest.fixture
def db(db_url):
    """An open session on an upgraded database with the defaults in place."""
    from jupyter_backendai.db import admin, connect, upgrade

    upgrade(db_url)
    factory = connect(db_url)
    with factory() as session:
        admin.ensure_defaults(session)
        session.commit()
        yield session
    factory.kw["bind"].dispose()
