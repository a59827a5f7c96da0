"""File operations inside one folder, all safe against paths and links that lead outside it.

Every function takes the folder's host directory (``FolderStore.path(host, id)``) and a path
relative to it. The relative path is validated by :func:`split_relpath`, then the folder is
walked by descriptor (see :mod:`.safepath`), so neither ``..`` nor a symbolic link, planted before
the call or while it runs, gets the hub or the manager to touch anything outside.
"""

from __future__ import annotations

import os
import secrets
import stat as _stat
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import (
    AlreadyExists,
    Conflict,
    NotFound,
    QuotaExceeded,
    StorageError,
    UnsafePath,
    show_path,
    translate_oserror,
)
from .safepath import OpenFolder, check_name, open_subdir, oserrors, rmtree_at, split_relpath, tree_usage

__all__ = [
    "TEMP_PREFIX",
    "FileEntry",
    "check_quota",
    "delete",
    "list_dir",
    "make_entry",
    "mkdir",
    "move",
    "normalize_relpath",
    "open_read",
    "rename",
    "resolve",
    "stat",
    "usage",
    "write_atomic",
]

#: Name prefix of the temporary files that :func:`write_atomic` renames into place.
TEMP_PREFIX = ".~upload-"

Folder = Path | str
RelPath = str | PurePosixPath


@dataclass(frozen=True)
class FileEntry:
    """One directory entry as the file browser shows it; symbolic links are never followed.

    ``type`` is ``file``, ``dir``, ``symlink`` or ``other`` (FIFOs, sockets, devices);
    ``size`` and ``mode`` (``ls -l`` style, e.g. ``-rw-r--r--``) are the entry's own, so a
    link shows its ``target`` text instead of what it points at. ``mtime`` is ISO 8601, UTC.
    """

    name: str
    type: str
    size: int
    mtime: str
    mode: str
    target: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def make_entry(name: str, st: os.stat_result, target: str | None = None) -> FileEntry:
    mode = st.st_mode
    if _stat.S_ISLNK(mode):
        kind = "symlink"
    elif _stat.S_ISDIR(mode):
        kind = "dir"
    elif _stat.S_ISREG(mode):
        kind = "file"
    else:
        kind = "other"
    mtime = datetime.fromtimestamp(st.st_mtime, tz=timezone.utc).isoformat()
    return FileEntry(name, kind, st.st_size, mtime, _stat.filemode(mode), target)


def normalize_relpath(relpath: RelPath) -> str:
    """The canonical form of a relative path (``"a//b/./c"`` → ``"a/b/c"``), after validating it.

    The manager puts this form in upload/download tokens so that one file has one name.
    """
    return "/".join(split_relpath(relpath))


def resolve(folder: Folder, relpath: RelPath, *, must_exist: bool = False) -> Path:
    """The host path of ``relpath`` in ``folder``, after checking that nothing on the way is a link.

    For callers that need a path (the hub mounting a sub-directory into a session). The
    check is as of the call: a session could plant a link afterwards, so anything that
    opens files should use the other functions here, which hold descriptors instead.
    The last component may be missing (unless ``must_exist``) but may not be a link.
    """
    parts = split_relpath(relpath)
    with OpenFolder(folder) as of:
        fd = of.fd
        for i, name in enumerate(parts):
            shown = parts[: i + 1]
            with oserrors(shown):
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if must_exist:
                        raise NotFound(f"{show_path(shown)} does not exist") from None
                    break  # nothing below a missing directory can be a link
            if _stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"{show_path(shown)} is a symbolic link; symbolic links are not followed")
            if i < len(parts) - 1:
                fd = open_subdir(name, fd, shown)
                of.keep(fd)
    return Path(folder).joinpath(*parts)


def stat(folder: Folder, relpath: RelPath) -> FileEntry:
    """The entry of ``relpath`` itself (a link is described, not followed)."""
    parts = split_relpath(relpath)
    with OpenFolder(folder) as of:
        st = of.lstat_existing(parts)
        target = None
        if _stat.S_ISLNK(st.st_mode):
            with oserrors(parts):
                target = os.readlink(parts[-1], dir_fd=of.walk(parts[:-1]))
        return make_entry(parts[-1] if parts else "", st, target)


def list_dir(folder: Folder, relpath: RelPath = "") -> list[FileEntry]:
    """The entries of directory ``relpath``, sorted by name; links are listed as links."""
    parts = split_relpath(relpath)
    entries: list[FileEntry] = []
    with OpenFolder(folder) as of:
        fd = of.walk(parts)
        with oserrors(parts), os.scandir(fd) as it:
            for item in it:
                try:
                    st = os.stat(item.name, dir_fd=fd, follow_symlinks=False)
                    target = os.readlink(item.name, dir_fd=fd) if _stat.S_ISLNK(st.st_mode) else None
                except FileNotFoundError:
                    continue  # removed while we listed
                entries.append(make_entry(item.name, st, target))
    entries.sort(key=lambda e: e.name)
    return entries


def mkdir(folder: Folder, relpath: RelPath, parents: bool = False) -> str:
    """Create directory ``relpath`` (0755, the folder's owner); with ``parents`` like ``mkdir -p``.

    Returns the normalised relative path.
    """
    parts = split_relpath(relpath)
    with OpenFolder(folder) as of:
        if not parts:
            if parents:
                return ""
            raise AlreadyExists("the folder root already exists")
        parent = of.walk(parts[:-1], create=parents)
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
        except FileExistsError:
            st = of.lstat(parts)
            if parents and st is not None and _stat.S_ISDIR(st.st_mode):
                return "/".join(parts)
            raise AlreadyExists(f"{show_path(parts)} already exists") from None
        except OSError as exc:
            raise translate_oserror(exc, parts) from None
        fd = open_subdir(parts[-1], parent, parts)
        try:
            with oserrors(parts):
                of.adopt(fd, 0o755)
        finally:
            os.close(fd)
    return "/".join(parts)


def rename(folder: Folder, src: RelPath, new_name: str) -> str:
    """Rename entry ``src`` within its directory to ``new_name`` (one component); returns the new path."""
    parts = split_relpath(src)
    if not parts:
        raise UnsafePath("the folder root cannot be renamed here")
    check_name(new_name)
    new_parts = (*parts[:-1], new_name)
    with OpenFolder(folder) as of:
        parent = of.walk(parts[:-1])
        of.lstat_existing(parts)
        if new_name == parts[-1]:
            return "/".join(parts)
        if of.lstat(new_parts) is not None:
            raise AlreadyExists(f"{show_path(new_parts)} already exists")
        with oserrors(parts):
            os.rename(parts[-1], new_name, src_dir_fd=parent, dst_dir_fd=parent)
    return "/".join(new_parts)


def move(folder: Folder, src: RelPath, dst_dir: RelPath) -> str:
    """Move entry ``src`` into the existing directory ``dst_dir`` (``""`` is the root); returns the new path."""
    parts = split_relpath(src)
    dst = split_relpath(dst_dir)
    if not parts:
        raise UnsafePath("the folder root cannot be moved")
    if dst[: len(parts)] == parts:
        raise Conflict(f"{show_path(parts)} cannot be moved into itself")
    new_parts = (*dst, parts[-1])
    with OpenFolder(folder) as of:
        src_parent = of.walk(parts[:-1])
        of.lstat_existing(parts)
        dst_fd = of.walk(dst)
        if new_parts == parts:
            return "/".join(parts)
        if of.lstat(new_parts) is not None:
            raise AlreadyExists(f"{show_path(new_parts)} already exists")
        with oserrors(parts):
            os.rename(parts[-1], parts[-1], src_dir_fd=src_parent, dst_dir_fd=dst_fd)
    return "/".join(new_parts)


def delete(folder: Folder, relpaths: Iterable[RelPath] | str, recursive: bool = False) -> None:
    """Delete entries; a directory needs ``recursive``. A link is removed as a link.

    Everything is checked (safe, present, directory only with ``recursive``) before anything
    is removed, so a bad path in the list leaves the folder as it was.
    """
    if isinstance(relpaths, (str, PurePosixPath)):
        relpaths = [relpaths]
    all_parts = [split_relpath(p) for p in relpaths]
    if any(not parts for parts in all_parts):
        raise UnsafePath("the folder root cannot be deleted here; delete the folder instead")
    with OpenFolder(folder) as of:
        for parts in all_parts:
            st = of.lstat_existing(parts)
            if _stat.S_ISDIR(st.st_mode) and not recursive:
                raise Conflict(f"{show_path(parts)} is a directory; deleting it needs recursive")
        for parts in all_parts:
            try:
                parent = of.walk(parts[:-1])
            except NotFound:
                continue  # inside a directory deleted earlier in this list
            st = of.lstat(parts)
            if st is None:
                continue
            if _stat.S_ISDIR(st.st_mode):
                rmtree_at(parent, parts[-1], parts)
            else:
                with oserrors(parts):
                    try:
                        os.unlink(parts[-1], dir_fd=parent)
                    except FileNotFoundError:
                        pass


def open_read(folder: Folder, relpath: RelPath) -> BinaryIO:
    """Open a regular file for reading; links, directories and special files are refused."""
    parts = split_relpath(relpath)
    with OpenFolder(folder) as of:
        st = of.lstat_existing(parts)
        _require_regular(st, parts)
        parent = of.walk(parts[:-1])
        # O_NOFOLLOW: a link swapped in since the lstat fails (ELOOP); O_NONBLOCK: a FIFO
        # swapped in does not hang us. The fstat below settles what we actually opened.
        with oserrors(parts):
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
        try:
            _require_regular(os.fstat(fd), parts)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
    return os.fdopen(fd, "rb")


def _require_regular(st: os.stat_result, parts: Sequence[str]) -> None:
    if _stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{show_path(parts)} is a symbolic link; symbolic links are not followed")
    if _stat.S_ISDIR(st.st_mode):
        raise Conflict(f"{show_path(parts)} is a directory")
    if not _stat.S_ISREG(st.st_mode):
        raise Conflict(f"{show_path(parts)} is not a regular file")


def usage(folder: Folder) -> tuple[int, int]:
    """``(bytes, file count)`` of the folder: regular files' sizes, every non-directory entry counted.

    One ``scandir`` per directory, no link followed, hard links counted once: O(entries).
    """
    with OpenFolder(folder) as of:
        with oserrors(()):
            return tree_usage(of.fd)


def check_quota(
    *, used: int, replaced: int, adding: int, quota: int | None, more: bool = False, reserved: int = 0
) -> None:
    """Refuse (:class:`QuotaExceeded`) when ``used + reserved - replaced + adding`` exceeds ``quota``.

    ``reserved``: bytes that uploads in progress will add (their data is not in the folder yet).
    """
    if quota is not None and used + reserved - replaced + adding > quota:
        raise QuotaExceeded(adding=adding, used=used, replaced=replaced, quota=quota, more=more, reserved=reserved)


def target_stat(of: OpenFolder, parent_fd: int, parts: Sequence[str]) -> os.stat_result | None:
    """The existing regular file a write to ``parts`` would replace, or ``None``; anything else refuses."""
    if not parts:
        raise Conflict("the folder root is a directory")
    with oserrors(parts):
        try:
            st = os.stat(parts[-1], dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
    _require_regular(st, parts)
    return st


def write_all(fd: int, chunk: bytes | bytearray | memoryview) -> int:
    """Write the whole chunk (``os.write`` may write less than asked); returns its length."""
    view = memoryview(chunk).cast("B")
    total = view.nbytes
    while view:
        view = view[os.write(fd, view) :]
    return total


def write_atomic(
    folder: Folder,
    relpath: RelPath,
    chunks: Iterable[bytes | bytearray | memoryview],
    *,
    quota: int | None = None,
    size: int | None = None,
    parents: bool = False,
) -> FileEntry:
    """Write a file all at once or not at all: temp file in the same directory, fsync, rename.

    On any error (a failing ``chunks`` iterator included) the temporary file is removed and
    the old file, if any, is untouched. ``quota`` (bytes) counts the folder's usage plus the
    new bytes minus the file being replaced; with ``size`` known it is checked before any
    byte is written, and ``size`` must then match what ``chunks`` delivers. ``parents``
    creates missing directories. A replaced file keeps its permission bits.
    """
    parts = split_relpath(relpath)
    with OpenFolder(folder) as of:
        parent = of.walk(parts[:-1], create=parents)
        old = target_stat(of, parent, parts)
        replaced = old.st_size if old is not None else 0
        used = tree_usage(of.fd)[0] if quota is not None else 0
        if size is not None:
            check_quota(used=used, replaced=replaced, adding=size, quota=quota)
        tmp = f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with oserrors(parts):
            fd = os.open(tmp, flags, 0o600, dir_fd=parent)
        try:
            try:
                written = 0
                # The caller's iterator is not wrapped in oserrors(): its failures (a client's
                # ConnectionError is an OSError too) must reach the caller as they are.
                for chunk in chunks:
                    written += memoryview(chunk).nbytes
                    if size is not None and written > size:
                        break
                    check_quota(used=used, replaced=replaced, adding=written, quota=quota, more=size is None)
                    with oserrors(parts):
                        write_all(fd, chunk)
                if size is not None and written != size:
                    received = "more" if written > size else written
                    raise StorageError(f"{show_path(parts)}: expected {size} bytes, received {received}", status=400)
                with oserrors(parts):
                    of.adopt(fd, (old.st_mode & 0o777) if old is not None else 0o644)  # no setuid carried over
                    os.fsync(fd)
                    st = os.fstat(fd)
            finally:
                os.close(fd)
            with oserrors(parts):
                os.replace(tmp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
                os.fsync(parent)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=parent)
            except OSError:
                pass
            raise
    return make_entry(parts[-1], st)
