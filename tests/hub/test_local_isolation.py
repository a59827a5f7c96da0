"""The local backend never runs sessions as root, and as root it isolates users from each other.

As root (CI), the checks run *inside* a real session: ``nsenter`` into its process's mount
namespace and ``setpriv`` to its process's own uid and gids, so what is refused here is what
that session's code is refused. As any other user the backend is a single-user demo that
says so; that decision is tested without a hub.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from jupyter_backendai.core.accounts import account_name, closed_ancestor, isolates_users
from jupyter_backendai.db import admin
from jupyter_backendai.db import folders as folder_db
from jupyter_backendai.db import models as m
from testing.sessions import ProductDB, hub_config, spawn, stop, wait_gone, wait_ready, wait_status

AS_ROOT = os.geteuid() == 0


# --- the pure decision -----------------------------------------------------------------------------


def test_account_names_are_valid_and_distinct():
    assert account_name("jupyter-", "alice") == "jupyter-alice"
    changed = [account_name("jupyter-", n) for n in ("Ann.B", "ann-b", "ann@b", "x" * 40)]
    assert len(set(changed)) == 4 and all(len(n) <= 32 for n in changed)
    assert all(n.startswith("jupyter-") and n == n.lower() for n in changed)
    assert account_name("", "1st") .startswith("_")  # fmt: skip
    with pytest.raises(ValueError, match="prefix"):
        account_name("Bad prefix", "alice")


def test_only_root_isolates_and_closed_directories_are_found():
    assert isolates_users(0) and not isolates_users(1000)
    modes = {"/": 0o755, "/root": 0o700, "/root/.pyenv": 0o755}
    assert closed_ancestor("/root/.pyenv", modes) == "/root"
    assert closed_ancestor("/srv/x", {"/": 0o755, "/srv": 0o711, "/srv/x": 0o711}) is None


def test_a_hub_that_is_not_root_says_single_user_demo(monkeypatch, tmp_path):
    """The spawn form and the log of a non-root hub: a single-user demo, with the reason."""
    from jinja2 import Environment, FileSystemLoader

    from jupyter_backendai.hub import TEMPLATES, first_run
    from jupyter_backendai.hub.local import WARNING, LocalSessionSpawner

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert LocalSessionSpawner().isolates_users is False
    assert "single-user demo" in WARNING and "NOT isolate users" in WARNING
    monkeypatch.setattr(first_run, "docker_problem", lambda image: "no Docker engine answers (DockerException)")
    pdb = ProductDB(tmp_path)
    try:
        backend, reason = first_run.choose(pdb.url)
    finally:
        pdb.close()
    assert backend == "local"
    assert "because no Docker engine answers" in reason and "single-user demo" in reason

    env = Environment(loader=FileSystemLoader(TEMPLATES))
    ns = {"backend": "local", "isolates_users": False, "backend_reason": reason, "images": [], "groups": []}
    html = env.get_template("spawn_form.html").render(**ns)
    assert "Single-user demo." in html and "not isolate users" in html and "no Docker engine answers" in html
    ns["isolates_users"] = True
    assert "Single-user demo" not in env.get_template("spawn_form.html").render(**ns)


# --- as root: a real hub, real sessions -------------------------------------------------------------


def as_session(pid: int, *command: str) -> subprocess.CompletedProcess:
    """Run ``command`` in the session process's mount namespace with its uid and groups."""
    proc = psutil.Process(pid)
    uid, gid = proc.uids().real, proc.gids().real
    groups = ",".join(str(g) for g in os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={groups}",
         "--", *command],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@pytest.mark.skipif(not AS_ROOT, reason="accounts of their own need a hub running as root")
@pytest.mark.skipif(shutil.which("nsenter") is None or shutil.which("setpriv") is None, reason="util-linux")
def test_root_hub_runs_each_user_as_an_account_of_their_own(make_hub, tmp_path):
    pdb = ProductDB(tmp_path)
    try:
        pdb.setup(lambda db: admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"}))
        pdb.setup(lambda db: admin.upsert_image(db, "python-local:3", installed=True))
        pdb.user("alice@example.com")
        pdb.user("bob@example.com")
        pdb.folder("alice", "mine")
        bob_folder = pdb.folder("bob", "secret")

        def share(db):  # bob shares "lent" with alice read-only
            bob, alice = admin.get_user(db, "bob"), admin.get_user(db, "alice")
            lent = folder_db.create_folder(db, bob, "lent")
            (inv,) = folder_db.invite(db, bob, lent, ["alice@example.com"], "ro")
            folder_db.accept_invitation(db, alice, inv.id)
            return str(lent.id)

        lent_folder = pdb.setup(share)
        hub = make_hub(
            hub_config(pdb, "backendai-local", "c.LocalSessionSpawner.agent_capacity = {'cpu': 4, 'mem': '8g'}")
        )
        for user, folders in (("alice", ["mine", "lent"]), ("bob", ["secret", "lent"])):
            assert spawn(hub, user, "s", preset="small", folders=folders).status_code in (201, 202)
        for user in ("alice", "bob"):
            wait_ready(hub, user, "s")
        alice_session = wait_status(pdb, "alice", "s", m.SessionStatus.RUNNING)
        bob_session = wait_status(pdb, "bob", "s", m.SessionStatus.RUNNING)
        alice_pid, bob_pid = int(alice_session.container_id), int(bob_session.container_id)

        # Each user's processes run as their own account, never uid 0, and not as each other.
        alice_uid = psutil.Process(alice_pid).uids()
        bob_uid = psutil.Process(bob_pid).uids()
        assert set(alice_uid) == {pwd.getpwnam("jupyter-alice").pw_uid} and 0 not in alice_uid
        assert set(bob_uid) == {pwd.getpwnam("jupyter-bob").pw_uid} and alice_uid != bob_uid
        assert "--allow-root" not in psutil.Process(alice_pid).cmdline()

        def folder_path(folder_id: str) -> Path:
            hexid = folder_id.replace("-", "")
            return pdb.storage_root / "local" / hexid[:2] / hexid

        (folder_path(bob_folder) / "plans.txt").write_text("bob's")
        # each user's directory also holds the sessions' root-only log files
        homes = {u: next(d for d in (pdb.sessions_root / u).iterdir() if d.is_dir()) for u in ("alice", "bob")}
        refused = {
            "the product database": tmp_path / "backendai.sqlite",
            "the cookie secret": hub.dir / "jupyterhub_cookie_secret",
            "the hub's database": hub.dir / "jupyterhub.sqlite",
            "bob's folder": folder_path(bob_folder) / "plans.txt",
            "bob's session home": homes["bob"] / "id_container",
        }
        for what, path in refused.items():
            assert path.exists(), what
            answer = as_session(alice_pid, "cat", str(path))
            assert answer.returncode != 0 and "Permission denied" in answer.stderr, (what, answer)
        assert as_session(alice_pid, "ls", str(homes["bob"])).returncode != 0
        assert as_session(alice_pid, "ls", str(pdb.storage_root)).returncode != 0

        # Her own folder: read and write, from her home, and the file is in the folder's storage.
        home = homes["alice"]
        wrote = as_session(alice_pid, "sh", "-c", f"echo hi > {home}/mine/note.txt && cat {home}/mine/note.txt")
        assert wrote.returncode == 0 and wrote.stdout == "hi\n", wrote
        assert as_session(alice_pid, "cat", f"{home}/id_container").returncode == 0
        stored = list(pdb.storage_root.rglob("note.txt"))
        assert len(stored) == 1 and stored[0].read_text() == "hi\n"
        # A folder shared read-only: readable, not writable, even where its owner may write.
        (folder_path(lent_folder) / "shared.txt").write_text("lent")
        assert as_session(alice_pid, "cat", f"{home}/lent/shared.txt").stdout == "lent"
        denied = as_session(alice_pid, "sh", "-c", f"echo x > {home}/lent/new.txt")
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied

        for user in ("alice", "bob"):
            stop(hub, user, "s")
            wait_gone(hub, user, "s")
        # The folders' data outlives the sessions; the homes do not.
        assert stored[0].read_text() == "hi\n" and not home.exists()
    finally:
        pdb.close()
