"""Secrets at rest: a copy of the database alone reveals no secret key, SSH private key or
registry password; the operator's key decrypts them, another key is refused by name."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from jupyter_backendai.db import admin, connect, sshkeys, upgrade
from jupyter_backendai.db import models as m
from jupyter_backendai.db.encryption import (
    DEFAULT_KEY_FILE,
    ENV_KEY,
    ENV_KEY_FILE,
    MARKER,
    Keyring,
    SecretKeyError,
    key_environment,
    key_source,
)
from jupyter_backendai.db.engine import DatabaseError, _alembic_config, make_engine
from testing.sessions import PASSWORD, PREFIX, ProductDB, start_hub_with_manager

REGISTRY_PASSWORD = "registry-pw-Zq81xT"


def _store_secrets(url: str) -> dict[str, str]:
    """A user (keypair), their SSH key pair and a registry with a password; returns the secrets."""
    factory = connect(url)
    with factory() as db:
        admin.ensure_defaults(db)
        user, keypair = admin.create_user(db, "alice@example.com", PASSWORD)
        ssh = sshkeys.get_or_create(db, user)
        admin.add_registry(
            db, "registry.example", "https://registry.example", username="bot", password=REGISTRY_PASSWORD
        )
        db.commit()
        secrets = {"secret_key": keypair.secret_key, "private_key": ssh.private_key, "password": REGISTRY_PASSWORD}
    factory.kw["bind"].dispose()
    return secrets


def _raw_values(url: str) -> list[str]:
    """The secret columns as the database holds them (plain SQL, no decrypting type)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = [
            *conn.execute(text("SELECT secret_key FROM keypairs")).scalars(),
            *conn.execute(text("SELECT private_key FROM ssh_keypairs")).scalars(),
            *conn.execute(text("SELECT password FROM container_registries")).scalars(),
        ]
    engine.dispose()
    return rows


def _raw_access_key(url: str) -> str:
    engine = make_engine(url)
    with engine.connect() as conn:
        access_key = conn.execute(text("SELECT access_key FROM keypairs")).scalar_one()
    engine.dispose()
    return access_key


def _file_bytes(url: str) -> bytes:
    """Every byte of a SQLite database: the file, its write-ahead log and shared memory."""
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _revealed(secrets: dict[str, str], data: str | bytes) -> list[str]:
    """The secrets (or, for the PEM key, its base64 body's first line) found in ``data``."""
    pem_line = secrets["private_key"].splitlines()[1]
    needles = [secrets["secret_key"], secrets["password"], pem_line]
    if isinstance(data, bytes):
        return [n for n in needles if n.encode() in data]
    return [n for n in needles if n in data]


def test_secrets_are_encrypted_at_rest_and_decrypt_with_the_key(db_url):
    upgrade(db_url)
    secrets = _store_secrets(db_url)

    raw = _raw_values(db_url)
    assert len(raw) == 3 and all(v.startswith(MARKER) for v in raw), raw
    assert _revealed(secrets, "\n".join(raw)) == []
    if db_url.startswith("sqlite"):
        assert _revealed(secrets, _file_bytes(db_url)) == []

    # With the key, every reader sees the values in clear, as before.
    factory = connect(db_url)
    with factory() as db:
        keypair = db.scalar(select(m.KeyPair))
        registry = db.scalar(select(m.ContainerRegistry))
        assert keypair.secret_key == secrets["secret_key"]
        assert db.scalar(select(m.SSHKeyPair)).private_key == secrets["private_key"]
        assert registry.password == REGISTRY_PASSWORD
        # A rewrite stores a new ciphertext, never the value.
        registry.password = "another-pw-77"
        db.commit()
    factory.kw["bind"].dispose()
    assert not any("another-pw-77" in v for v in _raw_values(db_url))


def test_another_key_is_refused_naming_its_source(db_url, monkeypatch):
    upgrade(db_url)
    _store_secrets(db_url)
    other = Fernet.generate_key().decode()

    with pytest.raises(SecretKeyError, match=r"the key from the key given to make_engine does not decrypt keypairs"):
        connect(db_url, keyring=Keyring(other))

    monkeypatch.setenv(ENV_KEY, other)
    for attempt in (connect, upgrade):
        with pytest.raises(SecretKeyError, match=r"key from \$BACKENDAI_DB_KEY does not decrypt keypairs.secret_key"):
            attempt(db_url)
    # A key that is not a key at all says so, and where it came from.
    monkeypatch.setenv(ENV_KEY, "not-a-key")
    with pytest.raises(SecretKeyError, match=r"\$BACKENDAI_DB_KEY does not hold a key .*\(44 characters"):
        connect(db_url)


def test_a_missing_key_is_refused_and_never_replaced(db_url, tmp_path, monkeypatch):
    upgrade(db_url)
    _store_secrets(db_url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv(ENV_KEY)
    expected = rf"no key for the database's secrets: the key file {elsewhere / DEFAULT_KEY_FILE} \(the default"
    with pytest.raises(SecretKeyError, match=expected):
        connect(db_url)
    # `db upgrade` in the wrong directory does not make a new key for a database that has secrets.
    with pytest.raises(SecretKeyError, match=expected):
        upgrade(db_url)
    assert not (elsewhere / DEFAULT_KEY_FILE).exists()


def test_first_upgrade_creates_a_private_key_file_that_the_cli_finds(tmp_path, monkeypatch):
    """The default: ./jupyter_backendai_secret.key, mode 0600, made once, read by the CLI there."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.chdir(site)
    monkeypatch.delenv(ENV_KEY)
    url = f"sqlite:///{site / 'backendai.sqlite'}"
    upgrade(url)
    key_file = site / DEFAULT_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_bytes().strip())  # a valid key
    first = key_file.read_bytes()
    secrets = _store_secrets(url)
    upgrade(url)
    assert key_file.read_bytes() == first
    assert _revealed(secrets, _file_bytes(url)) == []
    assert key_environment(key_source()) == {ENV_KEY_FILE: str(key_file)}

    env = {k: v for k, v in os.environ.items() if k not in (ENV_KEY, ENV_KEY_FILE)}
    access_key = _raw_access_key(url)

    def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "jupyter_backendai.cli", *args, "--db-url", url]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)

    shown = cli(site, "keypair", "show", access_key, "--show-secret", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["secret_key"] == secrets["secret_key"]
    # From another directory the CLI names the key file it looked for, in one line, exit 2.
    other = tmp_path / "other"
    other.mkdir()
    refused = cli(other, "keypair", "list")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: no key for the database's secrets: the key file ")
    assert str(other / DEFAULT_KEY_FILE) in refused.stderr and "Traceback" not in refused.stderr
    # A key file that anybody may read is refused, as JupyterHub refuses such a cookie secret.
    key_file.chmod(0o644)
    with pytest.raises(SecretKeyError, match=r"can be read or written by anybody; chmod 600 it"):
        connect(url)


def test_migration_encrypts_what_earlier_versions_stored_in_clear(db_url):
    from alembic import command

    engine = make_engine(db_url)
    upgrade(engine)
    secrets = _store_secrets(db_url)
    # Down to 0005: the values go back in clear, as that version wrote and reads them.
    command.downgrade(_alembic_config(engine), "0005")
    assert sorted(_raw_values(db_url)) == sorted(secrets.values())
    access_key = _raw_access_key(db_url)
    factory = connect(db_url, check_schema=False)
    clear = {"secret_key": "S" * 40, "private_key": "-----BEGIN KEY-----\nclearprivatebody\n", "password": "clear-pw"}
    with engine.begin() as conn:
        # As version 0005 wrote them: in clear; and a keypair in a resource group (SQLite's
        # table rebuild must keep the rows that refer to the keypair).
        conn.execute(text("UPDATE keypairs SET secret_key = :v"), {"v": clear["secret_key"]})
        conn.execute(text("UPDATE ssh_keypairs SET private_key = :v"), {"v": clear["private_key"]})
        conn.execute(text("UPDATE container_registries SET password = :v"), {"v": clear["password"]})
        conn.execute(text("INSERT INTO sgroups_for_keypairs VALUES ('default', :a)"), {"a": access_key})

    upgrade(engine)
    raw = _raw_values(db_url)
    assert all(v.startswith(MARKER) for v in raw) and not any(c in "\n".join(raw) for c in clear.values())
    with factory() as db:
        assert db.scalar(select(m.KeyPair)).secret_key == clear["secret_key"]
        assert db.scalar(select(m.SSHKeyPair)).private_key == clear["private_key"]
        assert db.scalar(select(m.ContainerRegistry)).password == clear["password"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT access_key FROM sgroups_for_keypairs")).scalars().all() == [access_key]

    # Down again: the values are back in clear for the older version.
    command.downgrade(_alembic_config(engine), "0005")
    assert sorted(_raw_values(db_url)) == sorted(clear.values())
    factory.kw["bind"].dispose()
    engine.dispose()


def test_the_manager_refuses_to_start_with_another_key(tmp_path, monkeypatch):
    from testing.manager import Manager

    pdb = ProductDB(tmp_path)
    pdb.user("alice@example.com")
    monkeypatch.setenv(ENV_KEY, Fernet.generate_key().decode())
    with pytest.raises(RuntimeError, match="the manager exited") as refused:
        Manager(tmp_path, pdb)
    log = (tmp_path / "manager.log").read_text()
    assert "key from $BACKENDAI_DB_KEY does not decrypt keypairs.secret_key" in log
    assert "Traceback" not in log, refused.value
    pdb.close()


def test_the_hub_passes_its_key_file_to_the_manager(make_hub, tmp_path, monkeypatch):
    """The hub's service gets the key the hub found (JupyterHub passes services no environment of
    its own): keypair sign-in through the manager decrypts the secret key with it."""
    key_file = tmp_path / "keys" / "db.key"
    monkeypatch.delenv(ENV_KEY)
    monkeypatch.setenv(ENV_KEY_FILE, str(key_file))
    (tmp_path / "product").mkdir()
    pdb = ProductDB(tmp_path / "product")
    assert key_file.exists()
    pdb.user("alice@example.com")
    hub = start_hub_with_manager(make_hub, pdb)
    r = requests.post(
        f"{hub.url}{PREFIX}/auth/authorize",
        json={"type": "keypair", "domain": "default", "username": "alice@example.com", "password": PASSWORD},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    with pdb() as db:
        keypair = next(k for k in admin.get_user(db, "alice@example.com").keypairs if k.is_active)
    assert r.json()["data"]["secret_key"] == keypair.secret_key
    pdb.close()


def test_bad_key_sources_raise_database_errors():
    assert issubclass(SecretKeyError, DatabaseError)  # the CLI and the hub print these in one line
    with pytest.raises(SecretKeyError, match="the key given to make_engine does not hold a key"):
        Keyring("short")


def test_the_hub_refuses_to_start_with_another_key(tmp_path):
    """jupyterhub_config.py stops the hub with one line naming the key, before anything starts."""
    url = f"sqlite:///{tmp_path / 'backendai.sqlite'}"
    upgrade(url)
    _store_secrets(url)
    config = Path(__file__).parents[2] / "jupyterhub_config.py"
    env = {**os.environ, ENV_KEY: Fernet.generate_key().decode(), "BACKENDAI_DB_URL": url, "BACKENDAI_BACKEND": "local"}
    hub = subprocess.run(
        [sys.executable, "-m", "jupyterhub", "-f", str(config)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert hub.returncode == 1
    last = hub.stderr.strip().splitlines()[-1]
    assert last.startswith("jupyter-backendai: the key from $BACKENDAI_DB_KEY does not decrypt keypairs.secret_key")
    assert "Traceback" not in hub.stderr
