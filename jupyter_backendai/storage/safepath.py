"""Descriptor-relative filesystem walking for the folder store: the path-safety core.

Sessions write into their folders while the hub and the manager (often running as root) act
on them, so a check-then-use approach ("realpath says it's inside, now open it") loses to a
session that swaps a directory for a symbolic link in between. Everything here therefore
works openat-style: the folder root is opened once, every further component is opened
relative to its parent's descriptor with ``O_NOFOLLOW``, and metadata changes go through the
descriptor of the entry we created (``fchown``/``fchmod``), never through a path a session
could have re-pointed. No symbolic link is ever followed, not even one pointing back inside
the folder: that keeps the rule simple enough to audit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from .errors import Conflict, NotFound, StorageError, UnsafePath, show_path, translate_oserror

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Deepest nesting of directories an archive or a clone goes into (levels below the folder or
#: the archived directory). Those walks hold a descriptor per level, so the bound is also the
#: bound on what one of them holds; real data is nowhere near it, a planted tree can be.
MAX_DEPTH = 256

__all__ = [
    "DIR_FLAGS",
    "MAX_DEPTH",
    "OpenFolder",
    "check_name",
    "open_subdir",
    "oserrors",
    "rmtree_at",
    "split_relpath",
    "start_writeback",
    "tree_usage",
]


def split_relpath(relpath: str | PurePosixPath) -> tuple[str, ...]:
    """Validate a path relative to a folder and return its components.

    Refused: absolute paths, ``..`` components, NUL bytes and backslashes (a client on Windows
    means ``a\\..\\b`` as a path, and a name that reads differently on two systems is a
    trap). Empty and ``.`` components are dropped, so ``"a//b/./"`` is ``("a", "b")`` and
    ``""`` is the folder root.
    """
    if isinstance(relpath, PurePosixPath):
        relpath = str(relpath)
        if relpath == ".":
            relpath = ""
    if not isinstance(relpath, str):
        raise UnsafePath(f"a path must be text, not {type(relpath).__name__}")
    if "\x00" in relpath:
        raise UnsafePath(f"{relpath!r} is not a safe path: it contains a NUL byte")
    if "\\" in relpath:
        raise UnsafePath(f"{relpath!r} is not a safe path: backslashes are not allowed")
    if relpath.startswith("/"):
        raise UnsafePath(f"{relpath!r} is not a safe path: it must be relative to the folder")
    parts = tuple(p for p in relpath.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafePath(f"{relpath!r} is not a safe path: '..' components are not allowed")
    return parts


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        func = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` to disk, without waiting.

    Linux only (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, what PostgreSQL does for the same
    reason); elsewhere nothing. An upload writes a GiB into the page cache faster than the
    disk takes it, and by default the kernel starts writeback only when a tenth of memory is
    dirty: the ``fdatasync`` at the end of the request would then wait for all of it, with the
    network idle. Started early, writeback overlaps receiving. A hint: errors are ignored (the
    ``fdatasync`` that follows reports real ones).
    """
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def check_name(name: str) -> str:
    """Validate a single name (the target of a rename): one component, nothing special."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name:
        raise UnsafePath(f"{name!r} is not a valid name: it must be a single path component")
    split_relpath(name)  # NUL, backslash
    return name


@contextmanager
def oserrors(parts: Sequence[str]) -> Iterator[None]:
    """Turn any :class:`OSError` raised inside into a store error naming ``parts``."""
    try:
        yield
    except OSError as exc:
        raise translate_oserror(exc, parts) from None


def _lstat_at(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_subdir(name: str, dir_fd: int, parts: Sequence[str]) -> int:
    """Open directory ``name`` below ``dir_fd`` without following a symbolic link."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            # Linux says ENOTDIR for a symlink opened O_DIRECTORY|O_NOFOLLOW: look closer.
            st = _lstat_at(name, dir_fd)
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"{show_path(parts)} is a symbolic link; symbolic links are not followed") from None
        raise translate_oserror(exc, parts) from None


class OpenFolder:
    """A folder opened by descriptor; use as a context manager so every descriptor is closed.

    ``uid``/``gid`` are the folder root's owner: entries the store creates get that owner
    when we run as root, so that the session user (uid 1000) can write to them.
    """

    def __init__(self, folder: Path | str) -> None:
        try:
            self.fd = os.open(folder, DIR_FLAGS)
        except FileNotFoundError:
            raise NotFound("the folder does not exist") from None
        except OSError as exc:
            raise StorageError(f"the folder cannot be opened: {exc.strerror}") from None
        self._fds: list[int] = [self.fd]
        st = os.fstat(self.fd)
        self.uid, self.gid = st.st_uid, st.st_gid

    def __enter__(self) -> OpenFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def keep(self, fd: int) -> int:
        """Close ``fd`` together with this folder."""
        self._fds.append(fd)
        return fd

    def adopt(self, fd: int, mode: int | None = None) -> None:
        """Give a newly created entry (by its descriptor) the folder's owner and an exact mode."""
        if mode is not None:
            os.fchmod(fd, mode)  # exact, whatever the process umask is
        if os.geteuid() == 0:
            os.fchown(fd, self.uid, self.gid)

    def walk(self, parts: Sequence[str], *, create: bool = False) -> int:
        """Return a descriptor of directory ``parts`` (``()`` is the root), owned by this object.

        With ``create`` missing directories are made (0755, the folder's owner) one by one,
        each opened ``O_NOFOLLOW`` right after ``mkdir`` so that a swap is caught, not obeyed.
        Only the last directory stays open: each level is closed once the next one is open, so
        a path thousands of levels deep costs two descriptors, not thousands.
        """
        fd = self.fd
        for i, name in enumerate(parts):
            shown = parts[: i + 1]
            try:
                child = open_subdir(name, fd, shown)
            except NotFound:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass  # somebody else made it meanwhile: opening it decides
                except OSError as exc:
                    raise translate_oserror(exc, shown) from None
                child = open_subdir(name, fd, shown)
                with oserrors(shown):
                    self.adopt(child, 0o755)
            if i > 0:
                os.close(self._fds.pop())  # the previous level, opened by this walk: only the last stays
            self._fds.append(child)
            fd = child
        return fd

    def lstat(self, parts: Sequence[str]) -> os.stat_result | None:
        """``lstat`` of ``parts`` (its parent walked safely); ``None`` when the last component is missing."""
        if not parts:
            return os.fstat(self.fd)
        parent = self.walk(parts[:-1])
        with oserrors(parts):
            return _lstat_at(parts[-1], parent)

    def lstat_existing(self, parts: Sequence[str]) -> os.stat_result:
        """:meth:`lstat` of an entry the operation needs: a missing one is :class:`NotFound`."""
        st = self.lstat(parts)
        if st is None:
            raise NotFound(f"{show_path(parts)} does not exist")
        return st


def _scan(fd: int, on_entry: Callable[[int, str], None]) -> list[str]:
    """Call ``on_entry(fd, name)`` for each non-directory entry of ``fd``; return the subdirectory names."""
    subdirs: list[str] = []
    with os.scandir(fd) as it:
        for entry in it:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if is_dir:
                subdirs.append(entry.name)
            else:
                on_entry(fd, entry.name)
    return subdirs


def _walk_tree(
    top: int,
    on_entry: Callable[[int, str], None],
    on_leave: Callable[[int, str], None] | None = None,
) -> None:
    """Depth-first walk below the open directory ``top`` without following symbolic links.

    Iterative, so depth is not bounded by Python's recursion limit, and only the directory being
    scanned is open: a session can nest directories thousands deep, and one descriptor per level
    would let a few such walks use up the process's descriptors (and so fail every other
    request). Going back up opens ``..`` of the current directory and checks that it is the very
    directory (device and inode) the walk came down from; if a session moved things meanwhile
    the walk stops with :class:`Conflict` instead of wandering off. Every level going down is
    opened ``O_NOFOLLOW`` relative to its parent. ``on_leave(parent_fd, name)`` runs after a
    subdirectory is done. The work is one ``scandir`` per directory and one call per entry.
    """
    fd = os.dup(top)
    try:
        st = os.fstat(fd)
        # Per level: its name, the subdirectories still to visit, its (device, inode).
        stack: list[tuple[str, list[str], tuple[int, int]]] = [("", _scan(fd, on_entry), (st.st_dev, st.st_ino))]
        while True:
            here, pending, _ = stack[-1]
            if pending:
                name = pending.pop()
                try:
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno == errno.ENOENT:
                        continue  # gone since the scan
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    on_entry(fd, name)  # swapped for a non-directory (a link?) since the scan: a leaf now
                    continue
                os.close(fd)
                fd = child
                st = os.fstat(fd)
                stack.append((name, [], (st.st_dev, st.st_ino)))
                stack[-1][1].extend(_scan(fd, on_entry))
                continue
            stack.pop()
            if not stack:
                return
            try:
                parent = os.open("..", DIR_FLAGS, dir_fd=fd)
            except OSError:
                raise Conflict("a directory was removed while the folder was being walked; try again") from None
            os.close(fd)
            fd = parent
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != stack[-1][2]:
                raise Conflict("a directory was moved while the folder was being walked; try again")
            if on_leave is not None:
                on_leave(fd, here)
    finally:
        os.close(fd)


def tree_usage(top: int) -> tuple[int, int]:
    """Bytes of regular files and the count of non-directory entries below ``top``.

    Sizes are apparent sizes (what users see in listings and what quota messages quote);
    a file with several hard links inside the tree is counted once.
    """
    total = 0
    count = 0
    seen: set[tuple[int, int]] = set()

    def on_entry(fd: int, name: str) -> None:
        nonlocal total, count
        st = _lstat_at(name, fd)
        if st is None:
            return
        count += 1
        if stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    return
                seen.add(key)
            total += st.st_size

    _walk_tree(top, on_entry)
    return total, count


def rmtree_at(parent_fd: int, name: str, parts: Sequence[str]) -> None:
    """Remove directory ``name`` below ``parent_fd`` and everything in it, following no link.

    A symbolic link inside is unlinked as a link; its target, inside the folder or not, is
    untouched. ``parts`` only names the directory in errors.
    """
    top = open_subdir(name, parent_fd, parts)
    try:
        with oserrors(parts):
            _walk_tree(
                top,
                lambda fd, name: _ignore_missing(os.unlink, name, fd),
                lambda fd, sub: _ignore_missing(os.rmdir, sub, fd),
            )
    finally:
        os.close(top)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY:
            raise Conflict(f"{show_path(parts)} changed while it was being deleted; try again") from None
        raise translate_oserror(exc, parts) from None


def _ignore_missing(func: Callable[..., None], name: str, dir_fd: int) -> None:
    """``unlink``/``rmdir`` an entry that a session may have removed first: gone is what we wanted."""
    try:
        func(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
