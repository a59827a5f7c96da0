"""Engines and sessions: SQLite (WAL, foreign keys on) by default, any SQLAlchemy URL otherwise.

:class:`Database` is the handle the hub and the manager hold: a session factory on one URL and
:meth:`Database.run`, which does a unit of work in one transaction on a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from ..settings import DEFAULT_DB_URL, ENV_DB_URL, default_db_url

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_DB_URL", "ENV_DB_URL", "Database", "DatabaseError", "connect", "make_engine", "upgrade"]

T = TypeVar("T")
MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseError(RuntimeError):
    """The database cannot be used as asked (bad URL, schema too old or too new)."""


def resolve_url(url: str | None = None) -> str:
    """The URL to use: the argument, else :func:`~jupyter_backendai.settings.default_db_url`."""
    url = url or default_db_url()
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"not a database URL: {url!r} (example: sqlite:///backendai.sqlite)") from None
    # "postgresql://" would pick psycopg2, which is not a dependency; psycopg 3 is.
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets the hub, the manager service and the CLI read while one of them writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit, and still never corrupts the
    # file: a power cut may lose the last commits only. FULL made every commit wait for the disk
    # while it held the write lock: a thousand sessions starting at once queued on it.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str | None = None, *, keyring=None, **kwargs) -> Engine:
    """An engine on ``url``; its secret columns use ``keyring`` (an
    :class:`~.encryption.Keyring`), by default the key that :func:`.encryption.key_source` finds."""
    from .encryption import attach

    url = resolve_url(url)
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as e:
        raise DatabaseError(f"cannot use database {make_url(url).render_as_string()}: {e}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    attach(engine, keyring)
    return engine


def connect(url: str | None = None, *, check_schema: bool = True, **kwargs) -> sessionmaker:
    """A session factory on ``url``; refuses a database whose schema is not current, or whose
    secrets the key at hand does not decrypt (see :mod:`.encryption`)."""
    from . import encryption

    engine = make_engine(url, **kwargs)
    if check_schema:
        check_current(engine)
        encryption.check(engine)
    return sessionmaker(engine, expire_on_commit=False)


class Database:
    """The product's database as one process uses it: a session factory on ``url``, opened on
    first use, and :meth:`run` for async code.

    :meth:`shared` hands every part of a process (the hub's spawners, its authenticator and
    provisioning) the same handle per URL, so that they share one engine and its connections.
    """

    #: How many shared handles a process keeps; the least recently asked for is let go (a test
    #: process opens many databases one after another, a hub one).
    KEEP = 8
    _shared: ClassVar[OrderedDict[str, Database]] = OrderedDict()
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, url: str | None = None, *, check_schema: bool = True) -> None:
        self.url = url or default_db_url()
        self.check_schema = check_schema
        self._factory: sessionmaker | None = None
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, url: str | None = None) -> Database:
        """The process's handle on ``url`` (made on first use)."""
        url = url or default_db_url()
        with cls._shared_lock:
            handle = cls._shared.get(url)
            if handle is None:
                handle = cls._shared[url] = cls(url)
            cls._shared.move_to_end(url)
            while len(cls._shared) > cls.KEEP:
                _, old = cls._shared.popitem(last=False)
                old.dispose()  # its checked-out connections stay valid; only idle ones close
        return handle

    def open(self) -> Database:
        """Connect now: :class:`DatabaseError` when the URL, the schema or the key is wrong."""
        self.factory  # noqa: B018 - connecting is the point
        return self

    @property
    def factory(self) -> sessionmaker:
        """The session factory (connecting, and checking the schema, on first use)."""
        if self._factory is None:
            with self._lock:
                if self._factory is None:
                    self._factory = connect(self.url, check_schema=self.check_schema)
        return self._factory

    @property
    def engine(self) -> Engine:
        return self.factory.kw["bind"]

    def session(self) -> Session:
        """A new session; the caller commits and closes it (``with db.session() as s:``)."""
        return self.factory()

    def transaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(session, *args, **kwargs)`` in one transaction: committed when it returns, rolled
        back when it raises."""
        with self.factory() as db:
            result = fn(db, *args, **kwargs)
            db.commit()
            return result

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`transaction` on a worker thread, so that SQL (and what ``fn`` computes, such as
        password hashes) never blocks the event loop."""
        return await asyncio.to_thread(self.transaction, fn, *args, **kwargs)

    def dispose(self) -> None:
        """Close the idle connections (the handle stays usable: new ones are made on demand)."""
        if self._factory is not None:
            self.engine.dispose()


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)  # type: ignore[arg-type]
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_current(engine: Engine) -> None:
    try:
        current = current_revision(engine)
    except Exception as e:  # an unreachable server, wrong password, ...
        raise DatabaseError(f"cannot open database {engine.url.render_as_string()}: {_first_line(e)}") from None
    if current != head_revision():
        hint = "an empty database" if current is None else f"schema revision {current}"
        raise DatabaseError(f"{engine.url.render_as_string()} holds {hint}; run `jupyter-backendai db upgrade` first")


def upgrade(url: str | Engine | None = None, revision: str = "head") -> str:
    """Bring the schema to ``revision``; returns the revision now in place.

    Creates the key of the database's secrets first when there is none and the database holds
    no encrypted value (the first run), and refuses a key that does not decrypt what is stored.
    """
    from alembic import command

    from . import encryption

    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        encryption.prepare(engine)
    except encryption.SecretKeyError:
        raise
    except Exception as e:  # an unreachable server, wrong password, ...
        raise DatabaseError(f"cannot open database {engine.url.render_as_string()}: {_first_line(e)}") from None
    try:
        command.upgrade(_alembic_config(engine), revision)
        return current_revision(engine) or ""
    except Exception as e:
        raise DatabaseError(f"cannot upgrade {engine.url.render_as_string()}: {_first_line(e)}") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(resolve_url(url))
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())
