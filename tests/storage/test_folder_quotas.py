"""Folder capacities: enforced by the storage where it has quotas, advisory elsewhere.

The enforcing filesystems are real ones, made by the test in image files and loop-mounted
under its temporary directory (root, ``mkfs.btrfs``/``btrfs`` and ``mkfs.xfs`` needed; ``.ci/run``
installs them and sets ``BACKENDAI_TEST_REQUIRE_QUOTA_FS=1`` so that a missing one fails): a
btrfs with quotas enabled, written to by a real Docker session, over SFTP with OpenSSH's client,
and through the manager; XFS with project quotas. The advisory capacity is tested on the
temporary directory's own filesystem, which has no quota the store uses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from jupyter_backendai.db import admin, sshkeys
from jupyter_backendai.db import folders as folder_db
from jupyter_backendai.db import models as m
from jupyter_backendai.storage import FolderStore, StorageError
from jupyter_backendai.storage import quota as q
from testing import missing
from testing.browser import LAB_IMAGE, SLOW_MS, open_lab, open_panel
from testing.docker import docker_hub, docker_problem
from testing.hub import CLIENT_HOST, screenshot
from testing.manager import Manager
from testing.sessions import SSH_OPTIONS, ProductDB, spawn, start_hub_with_manager, stop, wait_ready, wait_status

S = m.SessionStatus
MiB = 1024**2


def need(*tools: str) -> None:
    """Root and the tools: fail when CI requires them, skip on a developer's machine."""
    problems = [] if os.geteuid() == 0 else ["root (loop mounts)"]
    problems += [t for t in tools if not shutil.which(t)]
    if problems:
        missing(f"needs {', '.join(problems)}", "quota_fs")


@contextlib.contextmanager
def loop_mount(fstype: str, *, options: str = "") -> Path:
    """A new ``fstype`` filesystem in a sparse image file, loop-mounted in a new directory.

    Not below pytest's temporary tree, which is closed to others: a session's user (uid 1000)
    writes into the folders on it.
    """
    directory = Path(tempfile.mkdtemp(prefix="backendai-quota-"))
    directory.chmod(0o711)
    image, mnt = directory / f"{fstype}.img", directory / "mnt"
    mnt.mkdir()
    try:
        yield from _mounted(image, mnt, fstype, options)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _mounted(image: Path, mnt: Path, fstype: str, options: str):
    with open(image, "wb") as f:
        f.truncate(320 * MiB)  # XFS's smallest; btrfs needs 114 MiB
    mkfs = {"btrfs": ["mkfs.btrfs", "-q"], "xfs": ["mkfs.xfs", "-q"]}[fstype]
    subprocess.run([*mkfs, str(image)], check=True, capture_output=True, timeout=120)
    opts = "loop" + (f",{options}" if options else "")
    done = subprocess.run(["mount", "-o", opts, str(image), str(mnt)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise MountRefused(done.stderr.strip())
    try:
        yield mnt
    finally:
        for _ in range(20):  # a container just removed may hold the mount for a moment
            if subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60).returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)


class MountRefused(Exception):
    """The kernel would not mount the filesystem with those options."""


@pytest.fixture
def btrfs():
    """A btrfs with quotas enabled; yields its mount point."""
    need("mkfs.btrfs", "btrfs")
    with loop_mount("btrfs") as mnt:
        subprocess.run(["btrfs", "quota", "enable", str(mnt)], check=True, capture_output=True, timeout=60)
        yield mnt


def as_session_user(*command: str) -> subprocess.CompletedProcess:
    """Run as uid 1000 without capabilities, as a session's processes do."""
    return subprocess.run(
        ["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", *command],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def write_mib(path: Path, mib: int) -> subprocess.CompletedProcess:
    return as_session_user("dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "conv=fsync")


def sync(path: Path) -> None:
    # btrfs counts qgroup usage at each transaction commit: a sync makes it current.
    subprocess.run(["sync", "-f", str(path)], check=True, timeout=60)


# --- which mechanism, from the mount table (pure) -------------------------------------------------

MOUNTINFO = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
40 22 7:0 / /srv/folders rw,relatime shared:20 - xfs /dev/loop0 rw,attr2,inode64,logbufs=8,logbsize=32k,prjquota
41 22 7:1 / /srv/plain\040xfs rw,relatime - xfs /dev/loop1 rw,attr2,inode64,noquota
42 22 7:2 / /srv/acct rw,relatime - xfs /dev/loop2 rw,attr2,inode64,pqnoenforce
43 22 0:44 / /srv/b rw,relatime shared:30 - btrfs /dev/loop3 rw,space_cache=v2,subvolid=5,subvol=/
44 22 8:2 / /srv/e4 rw,relatime - ext4 /dev/sdb1 rw,prjquota
45 22 0:50 / /srv/nfs rw,relatime - nfs4 server:/export rw,vers=4.2
46 40 0:51 / /srv/folders/scratch rw - tmpfs tmpfs rw,size=1024k
47 22 8:1 / /srv/folders2 rw,relatime - ext4 /dev/sda1 rw
this line is not a mount
"""


def test_the_mechanism_follows_the_filesystem_and_its_mount_options():
    mounts = q.parse_mountinfo(MOUNTINFO)
    assert len(mounts) == 9
    by_point = {m.mount_point: m for m in mounts}
    assert "/srv/plain xfs" in by_point  # octal escapes decoded
    assert by_point["/srv/folders"].source == "/dev/loop0" and "prjquota" in by_point["/srv/folders"].options
    assert "logbsize" in by_point["/srv/folders"].options  # values dropped

    def kind(path: str, *, root: bool = True, btrfs_quotas: bool = False) -> tuple[str, str]:
        return q.choose(q.mount_of(path, mounts), root=root, btrfs_quotas=btrfs_quotas)

    assert kind("/srv/folders/local/ab") == ("xfs", "xfs at /srv/folders")
    assert kind("/srv/folders")[0] == "xfs"
    # The deepest mount point wins, and only whole path components count.
    assert kind("/srv/folders/scratch/x")[0] == "advisory" and "tmpfs" in kind("/srv/folders/scratch/x")[1]
    assert kind("/srv/folders2/x") == ("advisory", "ext4 at /srv/folders2 is not mounted with the prjquota option"
                                       " (and needs the quota and project features)")  # fmt: skip
    assert "not mounted with the prjquota option" in kind("/srv/plain xfs/local")[1]
    assert "does not enforce" in kind("/srv/acct/local")[1]
    assert kind("/srv/e4/local")[0] == "ext4"
    assert kind("/srv/b/local", btrfs_quotas=True)[0] == "btrfs"
    assert "btrfs quota enable" in kind("/srv/b/local")[1]
    assert "nfs4" in kind("/srv/nfs/x")[1]
    assert "needs root" in kind("/srv/folders/local", root=False)[1]
    assert kind("/elsewhere")[0] == "advisory"  # the root mount: ext4 without prjquota
    assert q.choose(None, root=True)[0] == "advisory"
    # Mounted twice at one point: the later one is what the path reaches.
    stacked = q.parse_mountinfo(MOUNTINFO + "48 22 7:9 / /srv/e4 rw - xfs /dev/loop9 rw,prjquota\n")
    assert q.mount_of("/srv/e4/local", stacked).source == "/dev/loop9"


# --- btrfs: quota groups --------------------------------------------------------------------------


def test_btrfs_folders_are_subvolumes_held_to_their_capacity(btrfs):
    store = FolderStore(btrfs / "storage")
    limits = store.quota("local")
    assert isinstance(limits, q.BtrfsQgroups) and limits.enforced, limits.describe()
    fid = uuid.uuid4()
    path = store.create("local", fid, capacity=5 * MiB)
    assert path.stat().st_ino == 256 and path.stat().st_uid == 1000  # a subvolume's root, the session user's

    done = write_mib(path / "big", 10)
    assert done.returncode != 0 and "Disk quota exceeded" in done.stderr, done.stderr
    sync(path)
    used, entries = store.quota_usage("local", fid)
    assert 4 * MiB < used <= 5 * MiB and entries is None

    # A larger capacity holds from now on, for the same folder.
    assert store.set_capacity("local", fid, 12 * MiB) is True
    assert write_mib(path / "more", 6).returncode == 0
    assert write_mib(path / "too-much", 6).returncode != 0
    # No capacity: no limit.
    store.set_capacity("local", fid, None)
    assert write_mib(path / "unlimited", 8).returncode == 0

    # A folder that was a plain directory before quotas stays one: advisory for it alone.
    older = uuid.uuid4()
    plain = store.path("local", older)
    plain.mkdir(parents=True)
    assert store.ensure("local", older, capacity=MiB) == plain and store.set_capacity("local", older, MiB) is False
    assert store.quota_usage("local", older) is None

    store.delete("local", fid)
    assert not path.exists()
    # Creating fails cleanly when it exists already.
    store.create("local", fid, capacity=MiB)
    with pytest.raises(StorageError, match="already exists"):
        store.create("local", fid, capacity=MiB)


def test_sessions_and_sftp_are_held_to_the_folders_capacity(make_hub, pdb, tmp_path, btrfs, client_netns):
    """A real session writes into its folder and a real sftp client uploads into it: both stop at 5 MiB."""
    if problem := docker_problem():
        missing(problem, "docker")
    pdb.storage_root = btrfs / "storage"  # before the hub is configured
    pdb.user("sam@example.com", policy="student")
    folder_id = pdb.setup(
        lambda db: folder_db.create_folder(db, admin.get_user(db, "sam"), "data", quota=5 * MiB).id
    )  # fmt: skip
    hub = docker_hub(make_hub, pdb, extra=f"c.DockerSessionSpawner.ssh_host = {CLIENT_HOST!r}")
    assert spawn(hub, "sam", "q", preset="small", folders=["data"]).status_code in (201, 202)
    wait_ready(hub, "sam", "q", timeout=120)
    session = wait_status(pdb, "sam", "q", S.RUNNING)
    folder = FolderStore(pdb.storage_root).path("local", folder_id)
    assert folder.stat().st_ino == 256  # the spawner made the folder a subvolume with its capacity

    # Inside the session, as its user: 3 MiB fit, the next 4 do not.
    script = (
        "dd if=/dev/zero of=/home/work/data/a bs=1M count=3 conv=fsync 2>&1 && echo first-ok; "
        "dd if=/dev/zero of=/home/work/data/b bs=1M count=4 conv=fsync 2>&1; echo rc=$?"
    )
    done = subprocess.run(["docker", "exec", session.container_id, "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "first-ok" in done.stdout and "Disk quota exceeded" in done.stdout, done.stdout + done.stderr
    assert "rc=0" not in done.stdout
    # Room made again, then SFTP from another machine: a 4 MiB upload does not fit either.
    subprocess.run(["docker", "exec", session.container_id, "rm", "-f", "/home/work/data/b"], check=True, timeout=60)
    key = tmp_path / "id_container"
    key.write_text(pdb.setup(lambda db: sshkeys.get_or_create(db, admin.get_user(db, "sam")).private_key))
    key.chmod(0o600)
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (4 * MiB))
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)
    opts = ["-i", str(key), *SSH_OPTIONS, "-P", str(session.ssh_port)]
    netns = ["ip", "netns", "exec", client_netns]

    def sftp(local: Path, remote: str) -> subprocess.CompletedProcess:
        batch = tmp_path / "batch"
        batch.write_text(f"put {local} {remote}\n")
        return subprocess.run([*netns, "sftp", *opts, "-b", str(batch), f"work@{CLIENT_HOST}"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    deadline = time.monotonic() + 30
    while (done := sftp(small, "/home/work/data/small.bin")).returncode != 0 and time.monotonic() < deadline:
        time.sleep(1)  # sshd may still be starting
    assert done.returncode == 0, done.stderr
    done = sftp(big, "/home/work/data/big.bin")
    # SFTP has no "over quota" status: the server answers a refused write with a plain failure.
    assert done.returncode != 0 and 'write remote "/home/work/data/big.bin": Failure' in done.stderr, done.stderr
    sync(folder)
    used, _ = FolderStore(pdb.storage_root).quota_usage("local", folder_id)
    assert used <= 5 * MiB
    stop(hub, "sam", "q")


def test_the_manager_uses_and_sets_the_storages_quota(tmp_path, btrfs):
    pdb = ProductDB(tmp_path)
    pdb.storage_root = btrfs / "storage"
    pdb.user("alice@example.com")
    pdb.user("bob@example.com")
    service = Manager(tmp_path, pdb)
    try:
        r = service.call("POST", "/folders", "alice", json_body={"name": "data", "quota": 5 * MiB})
        assert r.status_code == 201, r.text
        fid = r.json()["id"]
        path = FolderStore(pdb.storage_root).path("local", fid)
        assert path.stat().st_ino == 256  # made a subvolume with its capacity
        assert write_mib(path / "a", 3).returncode == 0
        sync(path)
        usage = service.call("GET", "/folders/data/usage", "alice").json()
        assert usage["capacity_enforced"] is True and usage["usage_source"] == "quota", usage
        assert usage["storage_quota"] == "btrfs" and 3 * MiB <= usage["used_bytes"] < 4 * MiB
        assert usage["over_capacity"] is False
        # The manager refuses what the storage would refuse, counting the quota's usage.
        r = service.call("POST", "/folders/data/request-upload", "alice", json_body={"path": "b", "size": 3 * MiB})
        assert r.status_code == 413 and "over its capacity" in r.json()["title"], r.text
        assert r.json()["used_bytes"] >= 3 * MiB
        # One that fits arrives whole (copied into the subvolume: a rename cannot cross into it).
        r = service.call("POST", "/folders/data/request-upload", "alice", json_body={"path": "up", "size": MiB})
        assert r.status_code == 200, r.text
        headers = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
        sent = requests.patch(r.json()["url"], data=b"u" * MiB, headers=headers, timeout=60)
        assert sent.status_code == 204, sent.text
        assert (path / "up").stat().st_size == MiB

        # Backend.AI's quota API: read, then raise to 10 MiB; the storage holds the folder to it now.
        quota = service.call("GET", "/folders/_/quota", "alice", params={"id": fid, "folder_host": "local"})
        assert quota.status_code == 200 and quota.json()["limit_bytes"] == 5 * MiB and quota.json()["enforced"]
        body = {"folder_host": "local", "id": fid, "input": {"size_bytes": 10 * MiB}}
        assert service.call("POST", "/folders/_/quota", "bob", json_body=body).status_code == 404  # not his
        changed = service.call("POST", "/folders/_/quota", "alice", json_body=body)
        assert changed.status_code == 200 and changed.json()["size_bytes"] == 10 * MiB, changed.text
        assert write_mib(path / "b", 4).returncode == 0  # 8 MiB now
        assert write_mib(path / "c", 3).returncode != 0
        bad = service.call("POST", "/folders/_/quota", "alice", json_body={"id": fid, "input": {"size_bytes": -1}})
        assert bad.status_code == 400 and "size_bytes" in bad.json()["title"]
        listed = {f["name"]: f for f in service.call("GET", "/folders", "alice").json()}
        assert listed["data"]["quota"] == 10 * MiB and listed["data"]["max_size"] == 10 * MiB

        # Deleting the folder removes its subvolume.
        assert service.call("DELETE", "/folders/data", "alice").status_code == 204
        assert not path.exists()
    finally:
        service.stop()
        pdb.close()


# --- XFS: project quotas --------------------------------------------------------------------------


def test_xfs_project_quotas():
    """XFS mounted with ``prjquota``: each folder its own project, writes past the capacity fail.

    A kernel built without XFS quota support (CONFIG_XFS_QUOTA) refuses that mount; the store
    must then see the same filesystem, mounted without the option, as advisory, while the
    project ids (which XFS keeps whatever the mount) are still given and inherited.
    """
    need("mkfs.xfs")
    try:
        with loop_mount("xfs", options="prjquota") as mnt:
            check_enforced_xfs(mnt)
            return
    except MountRefused as e:
        print(f"this kernel does not mount XFS with prjquota ({e}); checking the advisory fallback")
    with loop_mount("xfs") as mnt:
        store = FolderStore(mnt / "storage")
        limits = store.quota("local")
        assert not limits.enforced and "not mounted with the prjquota option" in limits.reason
        # The project half of the mechanism, on the real filesystem: ids from the counter file,
        # recorded where only root writes, given to what is already in the folder and inherited.
        projects = q.ProjectQuotas("xfs", "unused", str(mnt / "storage" / "local"))
        fid = uuid.uuid4()
        path = store.create("local", fid)
        (path / "old").mkdir()
        (path / "old" / "f").write_text("before the quota")
        os.symlink("/etc/passwd", path / "link")
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(OSError):  # the quotactl(2) half: nothing to set it on here
                projects.apply(fd, 5 * MiB)
            pid = projects.project_of(fd)
            assert pid == q.PROJECT_ID_BASE and q.get_project(fd) == (pid, True)
        finally:
            os.close(fd)
        (path / "new").mkdir()
        for entry in ("old", "old/f", "new"):
            efd = os.open(path / entry, os.O_RDONLY)
            try:
                assert q.get_project(efd)[0] == pid, entry
            finally:
                os.close(efd)
        efd = os.open("/etc/passwd", os.O_RDONLY)
        try:
            assert q.get_project(efd)[0] != pid  # the link was not followed
        finally:
            os.close(efd)
        assert projects.next_project_id() == pid + 1
        # The session user may change the directory's project attribute, not the store's record.
        script = f"import os; os.setxattr({str(path)!r}, {q.PROJECT_XATTR!r}, b'1')"
        assert as_session_user("python3", "-c", script).returncode != 0


def check_enforced_xfs(mnt: Path) -> None:
    store = FolderStore(mnt / "storage")
    limits = store.quota("local")
    assert isinstance(limits, q.ProjectQuotas) and limits.enforced, limits.describe()
    fid = uuid.uuid4()
    path = store.create("local", fid, capacity=5 * MiB)
    done = write_mib(path / "big", 10)
    assert done.returncode != 0 and ("Disk quota exceeded" in done.stderr or "No space left" in done.stderr)
    used, _ = store.quota_usage("local", fid)
    assert 4 * MiB < used <= 5 * MiB
    assert store.set_capacity("local", fid, 12 * MiB) is True
    assert write_mib(path / "more", 6).returncode == 0
    other = store.create("local", uuid.uuid4(), capacity=MiB)
    assert write_mib(other / "f", 2).returncode != 0  # its own project, its own limit
    store.delete("local", fid)
    assert not path.exists()


# --- elsewhere: advisory --------------------------------------------------------------------------


def test_advisory_capacity_refuses_uploads_and_shows_over_capacity(tmp_path):
    """Storage without quotas (the test's own temporary directory): a session's writes are not
    stopped, but the manager measures, refuses uploads and says the folder is over capacity."""
    pdb = ProductDB(tmp_path)
    pdb.user("alice@example.com")
    service = Manager(tmp_path, pdb)
    try:
        store = FolderStore(pdb.storage_root)
        assert not store.quota("local").enforced
        r = service.call("POST", "/folders", "alice", json_body={"name": "small", "quota": 1000})
        assert r.status_code == 201 and r.json()["over_capacity"] is False, r.text
        path = store.path("local", r.json()["id"])
        (path / "from-session.bin").write_bytes(b"s" * 1500)  # what a session may write here
        usage = service.call("GET", "/folders/small/usage", "alice").json()
        assert usage["used_bytes"] == 1500 and usage["over_capacity"] is True, usage
        assert usage["capacity_enforced"] is False and usage["usage_source"] == "measured"
        listed = {f["name"]: f for f in service.call("GET", "/folders", "alice").json()}
        assert listed["small"]["over_capacity"] is True and listed["small"]["cur_size"] == 1500
        r = service.call("POST", "/folders/small/request-upload", "alice", json_body={"path": "x", "size": 1})
        assert r.status_code == 413 and "over its capacity of 1000 B" in r.json()["title"], r.text
        quota = service.call("GET", "/folders/_/quota", "alice", params={"id": "small"}).json()
        assert quota == {"used_bytes": 1500, "limit_bytes": 1000, "enforced": False, "storage_quota": "advisory"}
        # Raised: fits again.
        body = {"id": "small", "input": {"size_bytes": 10_000}}
        assert service.call("POST", "/folders/_/quota", "alice", json_body=body).status_code == 200
        usage = service.call("GET", "/folders/small/usage", "alice").json()
        assert usage["over_capacity"] is False and usage["max_size"] == 10_000
    finally:
        service.stop()
        pdb.close()


@pytest.fixture
def lab_pdb(tmp_path):
    pdb = ProductDB(tmp_path)

    def setup(db) -> None:
        admin.create_policy(db, "student", total_resource_slots={"cpu": 4, "mem": "4g"}, max_concurrent_sessions=3)
        admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"})
        admin.upsert_image(db, LAB_IMAGE, installed=True)

    pdb.setup(setup)
    yield pdb
    pdb.close()


def test_the_lab_shows_a_folder_over_capacity(make_hub, lab_pdb, page):
    """The Data & Storage panel marks the folder a session filled past its (advisory) capacity."""
    pdb = lab_pdb
    pdb.user("alice@example.com", policy="student")

    def folders(db) -> str:
        alice = admin.get_user(db, "alice")
        folder_db.create_folder(db, alice, "roomy", quota=10**6)
        return str(folder_db.create_folder(db, alice, "small", quota=1000).id)

    small = pdb.setup(folders)
    (FolderStore(pdb.storage_root).create("local", small) / "from-session.bin").write_bytes(b"s" * 1500)
    hub = start_hub_with_manager(make_hub, pdb, lab=True, endpoint="direct")
    open_lab(hub, page, "alice")
    open_panel(page, "backendai-storage")
    storage = page.locator("#backendai-storage")
    badge = storage.locator('[data-folder-name="small"] .jp-BackendAI-overCapacity')
    badge.wait_for(timeout=SLOW_MS)
    assert badge.inner_text() == "over capacity"
    assert "advisory" in badge.get_attribute("title")
    storage.locator('[data-folder-name="roomy"] .jp-BackendAI-usageBar').get_by_text("file(s)").wait_for()
    assert storage.locator('[data-folder-name="roomy"] .jp-BackendAI-overCapacity').count() == 0
    screenshot(page, "storage-over-capacity")
