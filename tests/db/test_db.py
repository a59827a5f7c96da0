"""The schema, its migrations and the admin operations, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin, connect, upgrade
from jupyter_backendai.db import models as m
from jupyter_backendai.db.credentials import is_access_key, is_secret_key, verify_password
from jupyter_backendai.db.engine import DatabaseError, head_revision, make_engine, table_names


def test_migrations_match_models(db_url):
    engine = make_engine(db_url)
    assert upgrade(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), m.Base.metadata)
    assert diff == []
    assert {"users", "keypairs", "sessions", "vfolders", "vfolder_invitations", "ssh_keypairs"} <= set(
        table_names(engine)
    )
    # Running it again is a no-op; going down and up again works.
    assert upgrade(engine) == head_revision()
    from alembic import command

    from jupyter_backendai.db.engine import _alembic_config

    command.downgrade(_alembic_config(engine), "base")
    assert "users" not in table_names(engine)
    assert upgrade(engine) == head_revision()
    engine.dispose()


def test_connect_refuses_an_unmigrated_database(db_url):
    with pytest.raises(DatabaseError, match="run `jupyter-backendai db upgrade` first"):
        connect(db_url)


def test_bad_urls():
    with pytest.raises(DatabaseError, match="not a database URL"):
        connect("not a url")
    with pytest.raises(DatabaseError, match="cannot use database"):
        connect("nosuchdialect://x/y")


def test_sqlite_uses_wal_and_foreign_keys(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_defaults_are_idempotent(db):
    assert admin.ensure_defaults(db) == []
    assert db.get(m.Domain, "default") is not None
    assert admin.get_group(db, "default").domain_name == "default"
    sgroup = admin.get_scaling_group(db, "default")
    assert [d.name for d in sgroup.domains] == ["default"]
    assert sgroup.scheduler == m.SchedulerName.FIFO


def test_user_with_keypair_and_groups(db):
    admin.create_domain(db, "lab", total_resource_slots={"cpu": "32", "mem": "128g"})
    admin.create_group(db, "vision", domain="lab")
    admin.create_policy(db, "student", total_resource_slots={"cpu": 4, "mem": "16g"}, max_concurrent_sessions=2)
    user, keypair = admin.create_user(
        db, "Alice@Example.com", "S3cret!pw", domain="lab", groups=["vision"], policy="student", role="admin"
    )
    db.commit()
    db.expire_all()
    user = admin.get_user(db, "alice@example.com")
    assert user.username == "alice" and user.role == m.UserRole.ADMIN and user.is_active
    assert [g.name for g in user.groups] == ["vision"]
    assert verify_password(user.password, "S3cret!pw") and not verify_password(user.password, "wrong")
    assert user.password.startswith("$argon2")
    (kp,) = user.keypairs
    assert kp.access_key == keypair.access_key and is_access_key(kp.access_key) and is_secret_key(kp.secret_key)
    assert kp.is_admin and kp.policy.total_resource_slots == ResourceSlots(cpu=4, mem="16g")
    assert db.get(m.Domain, "lab").total_resource_slots["mem"] == 128 * 1024**3


def test_user_rules(db):
    admin.create_user(db, "bob@example.com", "S3cret!pw")
    with pytest.raises(admin.Conflict, match="already exists"):
        admin.create_user(db, "BOB@example.com", "S3cret!pw", username="other")
    with pytest.raises(admin.Conflict, match="user name 'bob' is taken"):
        admin.create_user(db, "bob@elsewhere.org", "S3cret!pw")
    with pytest.raises(admin.AdminError, match="at least one digit, at least one special character"):
        admin.create_user(db, "carol@example.com", "password")
    with pytest.raises(admin.AdminError, match="invalid role 'root'"):
        admin.create_user(db, "carol@example.com", "S3cret!pw", role="root")
    with pytest.raises(admin.NotFound, match="no group named 'nope'"):
        admin.create_user(db, "carol@example.com", "S3cret!pw", groups=["nope"])
    with pytest.raises(admin.AdminError, match="invalid e-mail"):
        admin.create_user(db, "carol", "S3cret!pw")
    bob = admin.deactivate_user(db, admin.get_user(db, "bob"))
    assert bob.status == m.UserStatus.INACTIVE and not bob.is_active


def test_keypair_used_by_a_session_cannot_be_deleted(db):
    user, kp = admin.create_user(db, "dave@example.com", "S3cret!pw")
    spare = admin.create_keypair(db, user)
    db.add(
        m.Session(
            name="s1",
            user_id=user.id,
            access_key=kp.access_key,
            domain_name="default",
            scaling_group="default",
            image="session:local",
            requested_slots=ResourceSlots(cpu=1),
        )
    )
    db.flush()
    with pytest.raises(admin.Conflict, match="ran 1 session"):
        admin.delete_keypair(db, kp)
    admin.delete_keypair(db, spare)
    assert db.get(m.KeyPair, spare.access_key) is None


def test_explicit_keys_are_checked(db):
    user, _ = admin.create_user(db, "erin@example.com", "S3cret!pw")
    with pytest.raises(admin.AdminError, match="access key is 20 characters"):
        admin.create_keypair(db, user, access_key="short")
    kp = admin.create_keypair(db, user, access_key="AKIAABCDEFGHIJKLMNOP", secret_key="x" * 40)
    assert kp.secret_key == "x" * 40
    with pytest.raises(admin.Conflict):
        admin.create_keypair(db, user, access_key="AKIAABCDEFGHIJKLMNOP")


def test_unique_constraints_hold_in_the_database(db):
    admin.create_user(db, "frank@example.com", "S3cret!pw")
    db.commit()
    db.add(m.User(email="frank@example.com", username="frank2", domain_name="default"))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()
    db.add(m.User(email="g@example.com", username="g", domain_name="no-such-domain"))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()


def test_folders_permissions_and_history(db):
    user, kp = admin.create_user(db, "gina@example.com", "S3cret!pw")
    other, _ = admin.create_user(db, "hank@example.com", "S3cret!pw")
    folder = m.VFolder(name=".local", ownership_type=m.FolderOwnership.USER, user_id=user.id, creator=user.email)
    db.add(folder)
    db.flush()
    db.add(m.VFolderPermission(vfolder_id=folder.id, user_id=other.id, permission=m.FolderPermission.READ_ONLY))
    db.add(m.VFolderInvitation(vfolder_id=folder.id, inviter=user.email, invitee=other.email, permission="ro"))
    session = m.Session(
        name="s", user_id=user.id, access_key=kp.access_key, domain_name="default", scaling_group="default", image="i"
    )
    session.history.append(m.SessionStatusChange(status=m.SessionStatus.PENDING, reason="queued"))
    session.history.append(m.SessionStatusChange(status=m.SessionStatus.RUNNING))
    db.add(session)
    db.add(m.SSHKeyPair(user_id=user.id, public_key="ssh-ed25519 AAAA", private_key="-----BEGIN"))
    db.commit()
    db.expire_all()
    assert folder.is_automount
    s = db.scalar(select(m.Session))
    assert [h.status for h in s.history] == [m.SessionStatus.PENDING, m.SessionStatus.RUNNING]
    assert s.history[0].at.tzinfo is not None
    inv = db.scalar(select(m.VFolderInvitation))
    assert inv.state == m.InvitationState.PENDING and inv.permission == m.FolderPermission.READ_ONLY
    # A second ".local" for the same user is refused; another user may have one.
    db.add(m.VFolder(name=".local", ownership_type=m.FolderOwnership.USER, user_id=other.id))
    db.commit()
    db.add(m.VFolder(name=".local", ownership_type=m.FolderOwnership.USER, user_id=user.id))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()


def test_policy_preset_image_registry_scaling_group(db):
    p = admin.create_policy(
        db,
        "gpu",
        total_resource_slots={"cpu": "8", "cuda.shares": "2"},
        idle_timeout=600,
        allowed_vfolder_hosts=["local"],
    )
    assert p.max_concurrent_sessions == 0 and p.total_resource_slots["cuda.shares"] == 2
    admin.update_policy(db, "gpu", total_resource_slots={"mem": "unlimited"}, max_vfolder_count=3)
    assert p.total_resource_slots == {"cpu": 8, "cuda.shares": 2, "mem": ResourceSlots(mem="unlimited")["mem"]}
    with pytest.raises(admin.AdminError, match="idle timeout must be a whole number"):
        admin.update_policy(db, "gpu", idle_timeout=-1)
    user, _ = admin.create_user(db, "ivan@example.com", "S3cret!pw", policy="gpu")
    with pytest.raises(admin.Conflict, match="used by 1 keypair"):
        admin.delete_policy(db, "gpu")

    preset = admin.create_preset(db, "small", {"cpu": 1, "mem": "2g"}, shared_memory="64m")
    assert preset.shared_memory == 64 * 1024**2
    with pytest.raises(admin.AdminError, match="needs at least one resource"):
        admin.create_preset(db, "empty", {})
    with pytest.raises(admin.AdminError, match="cannot ask for unlimited"):
        admin.create_preset(db, "huge", {"cpu": "unlimited"})

    image, created = admin.upsert_image(
        db,
        "registry.example.com:5000/lab/python:3.11",
        labels={
            "ai.backend.resource.min.cpu": "1",
            "ai.backend.resource.min.mem": "256m",
            "ai.backend.service-ports": "jupyter:http:8080,tensorboard:http:6006",
        },
    )
    assert created and image.registry_host == "registry.example.com:5000" and image.name == "lab/python"
    assert image.min_slots == ResourceSlots(cpu=1, mem="256m")
    assert [p["name"] for p in image.service_ports] == ["jupyter", "tensorboard"]
    assert admin.upsert_image(db, "registry.example.com:5000/lab/python:3.11")[1] is False
    assert admin.parse_image_ref("session") == ("local", "session", "latest")
    assert admin.parse_image_ref("localhost:5000/a/b:1") == ("localhost:5000", "a/b", "1")
    with pytest.raises(admin.AdminError, match="invalid service port"):
        admin.upsert_image(db, "x:1", labels={"ai.backend.service-ports": "jupyter:web:x"})

    admin.add_registry(db, "registry.example.com:5000", "https://registry.example.com:5000", username="u", password="p")
    with pytest.raises(admin.AdminError, match="give the scheme"):
        admin.add_registry(db, "other.example.com", "other.example.com")

    sg = admin.create_scaling_group(db, "gpu-nodes", scheduler="drf", pending_timeout=300, agent_selection="dispersed")
    assert sg.scheduler_opts == {"agent_selection": "dispersed"}
    with pytest.raises(admin.AdminError, match="choose one of fifo, lifo, drf"):
        admin.create_scaling_group(db, "x", scheduler="random")
    admin.create_group(db, "team")
    admin.allow_scaling_group(
        db, "gpu-nodes", domains=["default"], groups=[("team", "default")], keypairs=[user.keypairs[0].access_key]
    )
    assert [g.name for g in sg.groups] == ["team"] and len(sg.keypairs) == 1
    admin.allow_scaling_group(db, "gpu-nodes", groups=[("team", "default")], revoke=True)
    assert sg.groups == []
    db.commit()


def test_first_admin_is_in_the_default_project(db_url):
    """The hub's first start makes a superadmin; in no project its Summary said "You are in no project"."""
    from jupyter_backendai.hub.first_run import prepare_database

    password = prepare_database(db_url)
    assert password
    factory = connect(db_url)
    try:
        with factory() as db:
            first = admin.get_user(db, "admin")
            assert first.role == m.UserRole.SUPERADMIN
            assert [(g.domain_name, g.name) for g in first.groups] == [("default", "default")]
    finally:
        factory.kw["bind"].dispose()
    assert prepare_database(db_url) is None  # a second start makes no second admin
