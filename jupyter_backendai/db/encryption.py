"""Secrets at rest: keypair secret keys, SSH private keys and registry passwords are stored
encrypted with the operator's key, so that a copy of the database alone reveals none of them.

Where the key comes from is decided here and only here; the hub, the manager service and the
operator CLI all follow it:

1. ``$BACKENDAI_DB_KEY``: the key itself, 32 bytes in URL-safe base64 (what
   ``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``
   prints);
2. else the file named by ``$BACKENDAI_DB_KEY_FILE``;
3. else ``jupyter_backendai_secret.key`` in the current directory, beside JupyterHub's
   ``jupyterhub_cookie_secret``.

(Not ``$BACKENDAI_SECRET_KEY``: Backend.AI's clients and this project's server extension read
that name as a keypair's secret key.)

A key file is created, mode 0600, when the schema is created or upgraded (the hub's first start,
``jupyter-backendai db upgrade``) and the database holds no encrypted value yet; a database that
does is never given a fresh key by accident. Every process that opens the database checks at
start that its key decrypts what is stored, and names the key's source when it does not.

Stored values are ``fernet:`` followed by a Fernet token (AES-128-CBC with HMAC-SHA256). The
marker makes a value say what it is: migration 0006 encrypts the values written in clear before
it and skips those it already encrypted, and the start-up check finds an encrypted value to try
the key on. A value without the marker is read as it is (one written by hand into the database,
say); the next write of that row encrypts it.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Text, TypeDecorator, inspect, text

from .engine import DatabaseError

log = logging.getLogger(__name__)

ENV_KEY = "BACKENDAI_DB_KEY"
ENV_KEY_FILE = "BACKENDAI_DB_KEY_FILE"
DEFAULT_KEY_FILE = "jupyter_backendai_secret.key"
MARKER = "fernet:"

#: (table, column): every secret column, for the migration and the start-up check.
SECRET_COLUMNS = (("keypairs", "secret_key"), ("ssh_keypairs", "private_key"), ("container_registries", "password"))

# Where an engine keeps its keyring (a dialect belongs to one engine; a type decorator sees it).
_DIALECT_ATTR = "backendai_keyring"


class SecretKeyError(DatabaseError):
    """The key for the database's secrets is missing, malformed, or not the one they were encrypted with."""


@dataclass(frozen=True)
class KeySource:
    """Where a key comes from: ``value`` (an environment variable's) or ``path`` (a file's)."""

    description: str
    path: Path | None = None
    value: str | None = None


def key_source(environ: os._Environ | dict[str, str] | None = None, cwd: Path | str | None = None) -> KeySource:
    """The source the rule picks (see the module's docstring); files are made absolute now."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_KEY):
        return KeySource(f"${ENV_KEY}", value=environ[ENV_KEY])
    base = Path(cwd or os.getcwd())
    if environ.get(ENV_KEY_FILE):
        path = base / os.path.expanduser(environ[ENV_KEY_FILE])
        return KeySource(f"the key file {path} (${ENV_KEY_FILE})", path=path)
    path = base / DEFAULT_KEY_FILE
    return KeySource(f"the key file {path} (the default: no ${ENV_KEY} or ${ENV_KEY_FILE} is set)", path=path)


def key_environment(source: KeySource | None = None) -> dict[str, str]:
    """Environment that makes a process started elsewhere (the manager service, whose
    environment JupyterHub does not inherit) find the same key."""
    source = source or key_source()
    return {ENV_KEY: source.value} if source.value is not None else {ENV_KEY_FILE: str(source.path)}


def _fernet(key: str, source: KeySource) -> Fernet:
    try:
        return Fernet(key.strip())
    except (ValueError, TypeError):
        raise SecretKeyError(
            f"{source.description} does not hold a key for the database's secrets: it must be 32 bytes in URL-safe"
            " base64 (44 characters, as Fernet.generate_key() makes)"
        ) from None


def _read_key_file(source: KeySource) -> Fernet | None:
    assert source.path is not None
    try:
        mode = source.path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SecretKeyError(f"cannot read {source.description}: {e.strerror}") from None
    # As JupyterHub refuses a cookie secret file that others may read: the key is worth as much.
    if mode & (stat.S_IRWXO):
        raise SecretKeyError(f"{source.description} can be read or written by anybody; chmod 600 it")
    try:
        return _fernet(source.path.read_text(encoding="ascii"), source)
    except (OSError, UnicodeDecodeError) as e:
        raise SecretKeyError(f"cannot read {source.description}: {getattr(e, 'strerror', None) or e}") from None


def create_key_file(path: Path) -> None:
    """Write a new key to ``path``, readable by its owner only; an existing file is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process of the same installation made it first
    with os.fdopen(fd, "wb") as f:
        f.write(Fernet.generate_key() + b"\n")
    # The key itself is never logged.
    log.info("jupyter-backendai: created %s, the key of the database's secrets; keep it with the database", path)


class Keyring:
    """The key of one engine's secret columns, read from its source at first use."""

    def __init__(self, key: str | bytes | None = None, *, source: KeySource | None = None) -> None:
        if key is not None:
            key = key.decode("ascii") if isinstance(key, bytes) else key
            self.source = source or KeySource("the key given to make_engine", value=key)
            self._fernet: Fernet | None = _fernet(key, self.source)
        else:
            self.source = source or key_source()
            self._fernet = None

    def has_key(self) -> bool:
        return self._load() is not None

    def _load(self) -> Fernet | None:
        if self._fernet is None:
            if self.source.value is not None:
                self._fernet = _fernet(self.source.value, self.source)
            else:
                self._fernet = _read_key_file(self.source)
        return self._fernet

    def fernet(self) -> Fernet:
        fernet = self._load()
        if fernet is None:
            raise SecretKeyError(
                f"no key for the database's secrets: {self.source.description} does not exist. Run the hub, the"
                f" manager and the CLI in the directory holding {DEFAULT_KEY_FILE} (the hub's first start and"
                f" `jupyter-backendai db upgrade` create it there), or set ${ENV_KEY_FILE} or ${ENV_KEY}"
            )
        return fernet

    def create(self) -> None:
        """Make the key file the source names, when it does not exist yet."""
        if self.source.path is not None and not self.has_key():
            create_key_file(self.source.path)

    def encrypt(self, value: str) -> str:
        return MARKER + self.fernet().encrypt(value.encode()).decode("ascii")

    def decrypt(self, stored: str, where: str = "a secret") -> str:
        if not stored.startswith(MARKER):
            return stored  # written in clear outside the product (see the module's docstring)
        try:
            return self.fernet().decrypt(stored[len(MARKER) :].encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise SecretKeyError(
                f"the key from {self.source.description} does not decrypt {where} in the database: it is not the"
                f" key the database's secrets were encrypted with (keep using the {DEFAULT_KEY_FILE} or"
                f" ${ENV_KEY} the database was first used with)"
            ) from None


def keyring_of(dialect) -> Keyring:
    """The keyring of the engine a dialect belongs to (the rule's, for engines made elsewhere)."""
    ring = getattr(dialect, _DIALECT_ATTR, None)
    if ring is None:
        ring = Keyring()
        setattr(dialect, _DIALECT_ATTR, ring)
    return ring


def attach(engine, keyring: Keyring | None = None) -> Keyring:
    ring = keyring or Keyring()
    setattr(engine.dialect, _DIALECT_ATTR, ring)
    return ring


def first_encrypted(conn) -> tuple[str, str] | None:
    """One stored encrypted value and where it is (``table.column``), or None."""
    tables = set(inspect(conn).get_table_names())
    for table, column in SECRET_COLUMNS:
        if table in tables:
            value = conn.execute(
                text(f"SELECT {column} FROM {table} WHERE {column} LIKE :marker LIMIT 1"), {"marker": MARKER + "%"}
            ).scalar()
            if value is not None:
                return f"{table}.{column}", value
    return None


def check(engine) -> None:
    """Refuse to go on unless the engine's key exists and decrypts what is stored."""
    ring = keyring_of(engine.dialect)
    with engine.connect() as conn:
        found = first_encrypted(conn)
    ring.fernet()
    if found is not None:
        where, value = found
        ring.decrypt(value, where)


def prepare(engine) -> None:
    """Before a schema upgrade: create the key when there is none and nothing is encrypted yet,
    and make sure an existing key decrypts what is stored (one database, one key)."""
    ring = keyring_of(engine.dialect)
    if not ring.has_key():
        with engine.connect() as conn:
            found = first_encrypted(conn)
        if found is not None:
            ring.fernet()  # raises: the database holds secrets and this key is not there
        ring.create()
    check(engine)


class EncryptedText(TypeDecorator):
    """A string column stored encrypted with the engine's key; reads and writes see clear text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return keyring_of(dialect).encrypt(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return keyring_of(dialect).decrypt(value)
