"""Databases for tests and benchmarks: a PostgreSQL database of one's own, a key for the secrets.

``BACKENDAI_TEST_POSTGRES_URL`` names a PostgreSQL server and a role that may create databases;
:func:`postgres_database` makes one there and drops it afterwards. Without a server the test is
skipped, unless ``BACKENDAI_TEST_REQUIRE_POSTGRES=1`` (CI) turns that into a failure.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator

from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from jupyter_backendai.db.encryption import ENV_KEY, ENV_KEY_FILE
from jupyter_backendai.db.engine import make_engine, resolve_url
from testing import missing

PG_URL = os.environ.get("BACKENDAI_TEST_POSTGRES_URL", "")


def _pg_admin_url() -> str:
    return resolve_url(PG_URL)


@contextlib.contextmanager
def postgres_database(prefix: str = "jba_test") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards (skips, or fails in CI, without a server)."""
    if not PG_URL:
        missing("BACKENDAI_TEST_POSTGRES_URL does not name a server (set it to run against PostgreSQL)", "postgres")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as e:  # noqa: BLE001 - any failure to reach the server
        admin.dispose()
        missing(f"PostgreSQL at {make_url(PG_URL).render_as_string()} failed: {e}", "postgres")
    url = make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        _drop_database(admin, name)
        admin.dispose()


def _drop_database(admin, name: str) -> None:
    # FORCE cannot end an autovacuum worker without pg_signal_backend (which .ci/run grants); one
    # that has just started on the test database makes it fail now and then, and is gone soon.
    for attempt in range(20):
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except DBAPIError as e:
            if "pg_signal_backend" not in str(e) or attempt == 19:
                raise
            time.sleep(0.25)


def use_fresh_db_key() -> None:
    """A new key for the database's secrets in this process's environment, inherited by the hubs,
    managers and CLIs the run starts, so that none of them writes a key file where the run began."""
    os.environ.pop(ENV_KEY_FILE, None)
    os.environ[ENV_KEY] = Fernet.generate_key().decode()
