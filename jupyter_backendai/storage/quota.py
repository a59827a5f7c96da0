"""Folder capacities that the filesystem enforces, where the storage can.

A folder's capacity (its own quota, or its owner's policy limit: the lower) holds for every
write, from a session's processes and its SSH/SFTP server too, only if the kernel refuses the
write: the manager never sees those bytes. Which mechanism is used depends on the filesystem
that holds a storage host's directory, found by :func:`probe`:

``xfs`` / ``ext4``
    Project quotas, when the filesystem is mounted with ``prjquota`` (ext4 also needs the
    ``project`` and ``quota`` features, ``mkfs.ext4 -O quota,project``). Each folder gets a
    project id of its own, set on its directory with the inherit flag so that everything made
    below belongs to it; the limit is a hard block limit of that project (``quotactl(2)``, what
    ``xfs_quota`` and ``setquota -P`` call). Writes past it fail with ``EDQUOT``. The id is
    recorded on the directory in a ``trusted.`` extended attribute, which only root reads and
    writes (the directory's own project attribute its owner, the session user, may change);
    new ids come from a counter file in the storage host's directory (``.quota-projects``,
    under a lock), so that a hub and a manager sharing the storage never hand out one twice.
``btrfs``
    Quota groups, when quotas are enabled on the filesystem (``btrfs quota enable``). Each
    folder is a subvolume, whose own qgroup carries the limit (``max_rfer``).
``advisory``
    Anything else (ext4 without project quotas, NFS, tmpfs, overlay...), or not running as
    root. The manager measures usage, refuses uploads that would not fit, and shows folders
    over capacity; what sessions write is not stopped.

Everything acts on descriptors of directories the store opened itself (below buckets only
the hub and manager write to), never on a path inside a folder: a session cannot point a
quota operation elsewhere by swapping a directory for a symbolic link. The parsing and the
choice of mechanism are pure functions (:func:`parse_mountinfo`, :func:`mount_of`,
:func:`choose`), tested without any special filesystem.

What each mechanism does not stop, because the kernel allows a file's owner to do it: on
XFS and ext4 the owner of a file may change its project id (``chattr -p``), and on btrfs
anyone may create a subvolume inside a folder, whose qgroup is not the folder's. Both take
deliberate effort; the manager's own measurement (a walk of the folder) still counts such
files, so the folder shows over capacity and takes no uploads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import logging
import os
import stat
import struct
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import StorageError
from .safepath import DIR_FLAGS, _walk_tree

__all__ = [
    "Advisory",
    "BtrfsQgroups",
    "FolderQuota",
    "Mount",
    "ProjectQuotas",
    "choose",
    "mount_of",
    "parse_mountinfo",
    "probe",
]

log = logging.getLogger(__name__)

#: The first project id given to a folder, so that the ids a site may already use for its own
#: projects (small numbers, ``/etc/projid``) stay free.
PROJECT_ID_BASE = 100_000
#: The counter of project ids, in each storage host's directory.
PROJECT_COUNTER = ".quota-projects"
#: Where a folder's project id is recorded, on its directory (only root reads or writes ``trusted.``).
PROJECT_XATTR = "trusted.jupyter_backendai.project"


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``: where, what filesystem, from which device, with which options."""

    mount_point: str
    fstype: str
    source: str
    options: frozenset[str]


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as octal escapes.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and len(field[i + 1 : i + 4]) == 3:
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of ``/proc/self/mountinfo`` in the kernel's order; malformed lines are skipped.

    Options are the per-mount and the filesystem's own (``prjquota`` is among the latter),
    without their values (``logbsize=32k`` → ``logbsize``).
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
            mount_point, mount_opts = fields[4], fields[5]
            fstype, source, super_opts = fields[sep + 1], fields[sep + 2], fields[sep + 3]
        except (ValueError, IndexError):
            continue
        options = frozenset(o.split("=", 1)[0] for o in f"{mount_opts},{super_opts}".split(",") if o)
        mounts.append(Mount(_unescape(mount_point), fstype, _unescape(source), options))
    return mounts


def mount_of(path: str, mounts: Sequence[Mount]) -> Mount | None:
    """The mount that holds ``path`` (absolute, symbolic links resolved): the deepest mount point
    above it, the last one mounted there when several are stacked."""
    best: Mount | None = None
    for mount in mounts:
        mp = mount.mount_point.rstrip("/") or "/"
        if path == mp or path.startswith(mp if mp == "/" else mp + "/"):
            if best is None or len(mp) >= len(best.mount_point.rstrip("/") or "/"):
                best = mount
    return best


def choose(mount: Mount | None, *, root: bool, btrfs_quotas: bool = False) -> tuple[str, str]:
    """``(kind, reason)``: the mechanism for folders on ``mount`` and why (``reason`` for logs and the docs).

    ``root``: whether we run as root (setting limits needs ``CAP_SYS_ADMIN``). ``btrfs_quotas``:
    whether quotas are enabled on that btrfs (not a mount option; the caller looks).
    """
    if mount is None:
        return "advisory", "the filesystem holding the storage could not be found in /proc/self/mountinfo"
    fs = mount.fstype
    if fs == "xfs":
        if "pqnoenforce" in mount.options:
            return "advisory", f"XFS at {mount.mount_point} accounts project quotas but does not enforce them"
        if not mount.options & {"prjquota", "pquota"}:
            return "advisory", f"XFS at {mount.mount_point} is not mounted with the prjquota option"
    elif fs == "ext4":
        if "prjquota" not in mount.options:
            return "advisory", (
                f"ext4 at {mount.mount_point} is not mounted with the prjquota option"
                " (and needs the quota and project features)"
            )
    elif fs == "btrfs":
        if not btrfs_quotas:
            return "advisory", f"quotas are not enabled on the btrfs at {mount.mount_point} (btrfs quota enable)"
    else:
        return "advisory", f"{fs} at {mount.mount_point} has no quotas that this product sets"
    if not root:
        return "advisory", f"setting {fs} quotas needs root; the hub and manager run as uid {os.geteuid()}"
    return fs, f"{fs} at {mount.mount_point}"


# --- the mechanisms ---------------------------------------------------------------------------


class FolderQuota:
    """How folders on one storage host are made and limited; this base class enforces nothing.

    The store calls :meth:`make_dir` to create a folder's directory, then :meth:`apply` on its
    descriptor at creation and whenever the capacity may have changed (idempotent and cheap),
    :meth:`used` for its usage, and :meth:`forget` after removing it.
    """

    kind = "advisory"
    enforced = False

    def __init__(self, reason: str = "") -> None:
        self.reason = reason

    def describe(self) -> str:
        return f"{self.kind} ({self.reason})" if self.reason else self.kind

    def make_dir(self, parent_fd: int, name: str) -> None:
        os.mkdir(name, 0o700, dir_fd=parent_fd)

    def apply(self, fd: int, capacity: int | None) -> bool:
        """Give the folder (its open directory) the limit ``capacity`` bytes (None: none); True if enforced."""
        return False

    def used(self, fd: int) -> tuple[int, int | None] | None:
        """``(bytes, entries or None)`` as the quota counts them, or None where no quota counts this folder."""
        return None

    def identify(self, fd: int) -> int | None:
        """What :meth:`forget` needs to know of a folder about to be removed."""
        return None

    def forget(self, parent_fd: int, ident: int | None) -> None:
        """Drop what the folder left in the filesystem's quota records once its directory is gone."""


class Advisory(FolderQuota):
    """No enforcement: the manager measures and refuses uploads (see the module's docstring)."""


# Project quotas: the file attribute ioctls and quotactl(2).
_FS_IOC_FSGETXATTR = 0x801C581F  # _IOR('X', 31, struct fsxattr)
_FS_IOC_FSSETXATTR = 0x401C5820  # _IOW('X', 32, struct fsxattr)
_FSXATTR = struct.Struct("=IIIII8x")  # xflags, extsize, nextents, projid, cowextsize
_FS_XFLAG_PROJINHERIT = 0x200
_Q_GETQUOTA, _Q_SETQUOTA, _PRJQUOTA = 0x800007, 0x800008, 2
_IF_DQBLK = struct.Struct(
    "=QQQQQQQQI4x"
)  # bhard, bsoft (KiB), curspace (B), ihard, isoft, curinodes, btime, itime, valid
_QIF_BLIMITS = 1


def _qcmd(cmd: int, kind: int) -> int:
    value = (cmd << 8) | (kind & 0xFF)
    return value - (1 << 32) if value >= 1 << 31 else value  # an int in C


_libc_quotactl = None


def _quotactl(cmd: int, device: str, qid: int, buf: ctypes.Array) -> None:
    global _libc_quotactl
    if _libc_quotactl is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        func = libc.quotactl
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
        func.restype = ctypes.c_int
        _libc_quotactl = func
    if _libc_quotactl(_qcmd(cmd, _PRJQUOTA), os.fsencode(device), qid, ctypes.addressof(buf)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def get_project(fd: int) -> tuple[int, bool]:
    """``(project id, inherit flag)`` of an open file or directory."""
    raw = bytearray(_FSXATTR.size)
    fcntl.ioctl(fd, _FS_IOC_FSGETXATTR, raw, True)
    xflags, _, _, projid, _ = _FSXATTR.unpack(raw)
    return projid, bool(xflags & _FS_XFLAG_PROJINHERIT)


def set_project(fd: int, project_id: int, inherit: bool) -> None:
    """Put an open file or directory in project ``project_id`` (directories: and what is made below)."""
    raw = bytearray(_FSXATTR.size)
    fcntl.ioctl(fd, _FS_IOC_FSGETXATTR, raw, True)
    xflags, extsize, nextents, _, cow = _FSXATTR.unpack(raw)
    xflags = (xflags | _FS_XFLAG_PROJINHERIT) if inherit else xflags
    fcntl.ioctl(fd, _FS_IOC_FSSETXATTR, bytearray(_FSXATTR.pack(xflags, extsize, nextents, project_id, cow)), True)


def _tag_tree(top: int, project_id: int) -> None:
    """Put everything already below ``top`` in the project (a folder that had none: made before quotas)."""

    def tag(parent_fd: int, name: str, directory: bool) -> None:
        flags = (DIR_FLAGS if directory else os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY) | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=parent_fd)
        except OSError:
            return  # a link (not followed), or gone: nothing to count
        try:
            kind = os.fstat(fd).st_mode
            if stat.S_ISREG(kind) or stat.S_ISDIR(kind):
                set_project(fd, project_id, stat.S_ISDIR(kind))
        finally:
            os.close(fd)

    _walk_tree(top, lambda fd, name: tag(fd, name, False), lambda fd, name: tag(fd, name, True))


class ProjectQuotas(FolderQuota):
    """XFS or ext4 project quotas: a project id per folder, a hard block limit per project."""

    enforced = True

    def __init__(self, kind: str, device: str, host_dir: str, reason: str = "") -> None:
        super().__init__(reason)
        self.kind = kind
        self.device = device
        self.host_dir = host_dir

    def apply(self, fd: int, capacity: int | None) -> bool:
        project_id = self.project_of(fd)
        if project_id is None:
            project_id = self.next_project_id()
            os.setxattr(fd, PROJECT_XATTR, str(project_id).encode())
        current, inherit = get_project(fd)
        if current != project_id:
            # A new folder, one made before quotas, or a root directory whose id its owner changed:
            # everything in it (back) into the folder's project.
            _tag_tree(fd, project_id)
        if current != project_id or not inherit:
            set_project(fd, project_id, True)
        self._limit(project_id, capacity)
        return True

    @staticmethod
    def project_of(fd: int) -> int | None:
        """The folder's project id as recorded by the store (None: none yet).

        Not the directory's project attribute: its owner (the session user) may change that,
        whereas a ``trusted.`` extended attribute only root reads and writes.
        """
        try:
            value = os.getxattr(fd, PROJECT_XATTR)
        except OSError as e:
            if e.errno in (errno.ENODATA, errno.ENOTSUP):
                return None
            raise
        return int(value) if value.isdigit() else None

    def next_project_id(self) -> int:
        """A project id no folder of this host has had: the counter file, read and advanced under a lock.

        Without the file (the first folder, or someone removed it) counting starts above the
        highest id any folder directory carries, so that ids are not handed out twice.
        """
        fd = os.open(os.path.join(self.host_dir, PROJECT_COUNTER), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            current = int(text) if text.isdigit() else max(PROJECT_ID_BASE, self._highest_in_use() + 1)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{current + 1}\n".encode(), 0)
            os.fsync(fd)
            return current
        finally:
            os.close(fd)

    def _highest_in_use(self) -> int:
        highest = 0
        for bucket in os.scandir(self.host_dir):
            if not bucket.is_dir(follow_symlinks=False) or len(bucket.name) != 2:
                continue
            for entry in os.scandir(bucket.path):
                try:
                    fd = os.open(entry.path, DIR_FLAGS)
                except OSError:
                    continue
                try:
                    highest = max(highest, self.project_of(fd) or 0, get_project(fd)[0])
                except OSError:
                    pass
                finally:
                    os.close(fd)
        return highest

    def _limit(self, project_id: int, capacity: int | None) -> None:
        # Kernel block limits are in KiB: rounded up, so that the capacity itself always fits.
        kib = 0 if capacity is None else -(-capacity // 1024)
        buf = ctypes.create_string_buffer(_IF_DQBLK.pack(kib, kib, 0, 0, 0, 0, 0, 0, _QIF_BLIMITS), _IF_DQBLK.size)
        _quotactl(_Q_SETQUOTA, self.device, project_id, buf)

    def used(self, fd: int) -> tuple[int, int | None] | None:
        project_id = self.project_of(fd)
        if project_id is None:
            return None
        buf = ctypes.create_string_buffer(_IF_DQBLK.size)
        try:
            _quotactl(_Q_GETQUOTA, self.device, project_id, buf)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ESRCH):
                return 0, 0
            raise
        _, _, space, _, _, inodes, _, _, _ = _IF_DQBLK.unpack(buf.raw)
        # The folder's directory itself is one of the project's inodes; entries are what is below.
        return space, max(inodes - 1, 0)

    def identify(self, fd: int) -> int | None:
        return self.project_of(fd)

    def forget(self, parent_fd: int, ident: int | None) -> None:
        if ident:
            self._limit(ident, None)


# btrfs: subvolumes and their quota groups.
_BTRFS_IOC_SUBVOL_CREATE = 0x5000940E  # _IOW(0x94, 14, struct btrfs_ioctl_vol_args), 4096 bytes
_BTRFS_IOC_INO_LOOKUP = 0xD0009412  # _IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args), 4096 bytes
_BTRFS_IOC_FS_INFO = 0x8400941F  # _IOR(0x94, 31, struct btrfs_ioctl_fs_info_args), 1024 bytes
_BTRFS_IOC_QGROUP_CREATE = 0x4010942A  # _IOW(0x94, 42, struct btrfs_ioctl_qgroup_create_args)
_BTRFS_IOC_QGROUP_LIMIT = 0x8030942B  # _IOR(0x94, 43, struct btrfs_ioctl_qgroup_limit_args)
_BTRFS_QGROUP_LIMIT_MAX_RFER = 1
_BTRFS_FIRST_FREE_OBJECTID = 256  # the inode number of every subvolume's root directory
_NO_LIMIT = (1 << 64) - 1  # the kernel's "clear this limit"


def btrfs_fsid(fd: int) -> str:
    """The filesystem's id, as ``/sys/fs/btrfs/<fsid>`` names it."""
    raw = bytearray(1024)
    fcntl.ioctl(fd, _BTRFS_IOC_FS_INFO, raw, True)
    return str(uuid.UUID(bytes=bytes(raw[16:32])))


def btrfs_subvolume_id(fd: int) -> int:
    """The id of the subvolume holding the open directory (also its level-0 qgroup's)."""
    raw = bytearray(4096)
    struct.pack_into("=QQ", raw, 0, 0, _BTRFS_FIRST_FREE_OBJECTID)
    fcntl.ioctl(fd, _BTRFS_IOC_INO_LOOKUP, raw, True)
    return struct.unpack_from("=Q", raw, 0)[0]


class BtrfsQgroups(FolderQuota):
    """btrfs: each folder a subvolume, limited by its own qgroup's referenced bytes."""

    kind = "btrfs"
    enforced = True

    def __init__(self, fsid: str, reason: str = "") -> None:
        super().__init__(reason)
        self.sysfs = Path("/sys/fs/btrfs") / fsid / "qgroups"

    def make_dir(self, parent_fd: int, name: str) -> None:
        raw = bytearray(4096)
        encoded = os.fsencode(name)
        raw[8 : 8 + len(encoded)] = encoded
        try:
            fcntl.ioctl(parent_fd, _BTRFS_IOC_SUBVOL_CREATE, raw, True)
        except FileExistsError:
            raise  # the store says which folder
        except OSError as e:
            raise StorageError(f"could not create the folder's subvolume: {e.strerror}") from None
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        try:
            os.fchmod(fd, 0o700)  # as a plain mkdir makes it; the store sets the final mode
        finally:
            os.close(fd)

    @staticmethod
    def is_subvolume(fd: int) -> bool:
        return os.fstat(fd).st_ino == _BTRFS_FIRST_FREE_OBJECTID

    def apply(self, fd: int, capacity: int | None) -> bool:
        if not self.is_subvolume(fd):
            return False  # a plain directory, made before quotas were enabled: advisory
        limit = _NO_LIMIT if capacity is None else capacity
        raw = bytearray(struct.pack("=QQQQQQ", 0, _BTRFS_QGROUP_LIMIT_MAX_RFER, limit, 0, 0, 0))
        fcntl.ioctl(fd, _BTRFS_IOC_QGROUP_LIMIT, raw, True)
        return True

    def used(self, fd: int) -> tuple[int, int | None] | None:
        if not self.is_subvolume(fd):
            return None
        qgroup = self.sysfs / f"0_{btrfs_subvolume_id(fd)}" / "referenced"
        try:
            return int(qgroup.read_text().strip()), None
        except (OSError, ValueError):
            return None

    def identify(self, fd: int) -> int | None:
        return btrfs_subvolume_id(fd) if self.is_subvolume(fd) else None

    def forget(self, parent_fd: int, ident: int | None) -> None:
        if not ident:
            return
        # The kernel refuses while the removed subvolume is still being cleaned up (EBUSY); the
        # qgroup then stays listed as stale, which costs nothing (``btrfs qgroup clear-stale``).
        try:
            fcntl.ioctl(parent_fd, _BTRFS_IOC_QGROUP_CREATE, bytearray(struct.pack("=QQ", 0, ident)), True)
        except OSError:
            pass


# --- finding the mechanism of a directory ----------------------------------------------------

_PROBED: dict[tuple[str, int], FolderQuota] = {}
_PROBE_LOCK = threading.Lock()


def probe(directory: Path | str) -> FolderQuota:
    """The mechanism for folders made in ``directory`` (a storage host's), remembered per directory
    and device (a remount there probes again)."""
    real = os.path.realpath(directory)
    dev = os.stat(real).st_dev
    with _PROBE_LOCK:
        found = _PROBED.get((real, dev))
        if found is None:
            found = _PROBED[(real, dev)] = _probe(real)
            log.info("folder capacities on %s: %s", real, found.describe())
        return found


def _probe(real: str) -> FolderQuota:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            mount = mount_of(real, parse_mountinfo(f.read()))
    except OSError:
        mount = None
    root = os.geteuid() == 0
    fsid = None
    if mount is not None and mount.fstype == "btrfs":
        fd = os.open(real, DIR_FLAGS)
        try:
            fsid = btrfs_fsid(fd)
        except OSError:
            fsid = None
        finally:
            os.close(fd)
    kind, reason = choose(
        mount, root=root, btrfs_quotas=fsid is not None and (Path("/sys/fs/btrfs") / fsid / "qgroups").is_dir()
    )
    if kind in ("xfs", "ext4"):
        return ProjectQuotas(kind, mount.source, real, reason)
    if kind == "btrfs":
        return BtrfsQgroups(fsid, reason)
    return Advisory(reason)
