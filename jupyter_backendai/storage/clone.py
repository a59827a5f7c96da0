"""Copying one folder's contents into another (Backend.AI's folder clone), following no link.

The source may be in use by a session while it is copied, and a session can plant a symbolic
link anywhere in it, or swap a directory for one mid-copy. So, as everywhere in the store,
the walk is descriptor-relative with ``O_NOFOLLOW``: a directory is entered only if it still
is one when opened, a file is read only if it still is a regular file when opened. Links are
copied as links (their target text, never what they point to: nothing here or in the API
follows them); sockets, pipes and device nodes are skipped (a session's runtime debris, not
data). Entries get the destination folder's owner and the source's permission bits.

A directory nested deeper than ``MAX_DEPTH`` (256) levels stops the copy with
:class:`~.errors.TooDeep`. The copy stops with :class:`CopyTooLarge` as soon as the bytes written would pass
``max_bytes``: the caller measured the source before, but a session may grow it meanwhile.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..core import errors
from .errors import StorageError, TooDeep, human_size, show_path
from .safepath import DIR_FLAGS, MAX_DEPTH, OpenFolder, oserrors

__all__ = ["CopyResult", "CopyTooLarge", "copy_folder"]

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 8 * 1024 * 1024


class CopyTooLarge(StorageError, errors.TooLarge):
    """The copy would pass the new folder's capacity (HTTP 413); ``copied`` and ``capacity`` in bytes."""

    status = 413

    def __init__(self, copied: int, capacity: int) -> None:
        self.copied, self.capacity = copied, capacity
        super().__init__(
            f"the copy grew past {human_size(copied)}, over the new folder's capacity of {human_size(capacity)}"
        )


@dataclass(frozen=True)
class CopyResult:
    bytes: int
    files: int  # non-directory entries written (files and links)
    skipped: int  # sockets, pipes, devices


def copy_folder(src: Path | str, dst: Path | str, *, max_bytes: int | None = None) -> CopyResult:
    """Copy everything below folder ``src`` into the (empty) folder ``dst``; returns what was written."""
    with OpenFolder(src) as source, OpenFolder(dst) as target:
        copier = _Copier(target, max_bytes)
        # One pair of descriptors per level of depth, iteratively (no recursion limit).
        stack: list[tuple[int, int, list[str], tuple[str, ...]]] = []
        try:
            stack.append((os.dup(source.fd), os.dup(target.fd), [], ()))
            stack[-1][2].extend(copier.scan(stack[-1][0], stack[-1][1], ()))
            while stack:
                src_fd, dst_fd, pending, parts = stack[-1]
                if not pending:
                    stack.pop()
                    os.close(src_fd)
                    os.close(dst_fd)
                    continue
                name = pending.pop()
                if len(parts) >= MAX_DEPTH:
                    # A descriptor pair per level: a planted tree thousands deep would take the
                    # manager's descriptors. A partial copy is no copy: refuse it whole.
                    raise TooDeep(
                        f"{show_path((*parts, name))} is nested more than {MAX_DEPTH} directories deep;"
                        f" folders are cloned only to that depth"
                    )
                pair = copier.enter(src_fd, dst_fd, name, (*parts, name))
                if pair is not None:
                    stack.append((*pair, [], (*parts, name)))
                    stack[-1][2].extend(copier.scan(pair[0], pair[1], (*parts, name)))
        finally:
            for src_fd, dst_fd, _, _ in stack:
                os.close(src_fd)
                os.close(dst_fd)
        return CopyResult(copier.bytes, copier.files, copier.skipped)


class _Copier:
    def __init__(self, target: OpenFolder, max_bytes: int | None):
        self.target = target
        self.max_bytes = max_bytes
        self.bytes = 0
        self.files = 0
        self.skipped = 0

    def scan(self, src_fd: int, dst_fd: int, parts: tuple[str, ...]) -> list[str]:
        """Copy the non-directory entries of one directory; return its subdirectory names."""
        subdirs = []
        with os.scandir(src_fd) as it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # gone since listed
                shown = (*parts, entry.name)
                if stat.S_ISDIR(st.st_mode):
                    subdirs.append(entry.name)
                elif stat.S_ISREG(st.st_mode):
                    self.file(src_fd, dst_fd, entry.name, shown)
                elif stat.S_ISLNK(st.st_mode):
                    self.link(src_fd, dst_fd, entry.name, shown)
                else:
                    self.skipped += 1
        return subdirs

    def enter(self, src_fd: int, dst_fd: int, name: str, parts: tuple[str, ...]) -> tuple[int, int] | None:
        """Open directory ``name`` in the source (if it still is one) and make it in the target."""
        try:
            child = os.open(name, DIR_FLAGS, dir_fd=src_fd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # swapped for a link or a file since the scan
                st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    self.link(src_fd, dst_fd, name, parts)
                return None
            raise
        try:
            mode = stat.S_IMODE(os.fstat(child).st_mode)
            with oserrors(parts):
                os.mkdir(name, 0o700, dir_fd=dst_fd)
                made = os.open(name, DIR_FLAGS, dir_fd=dst_fd)
            try:
                with oserrors(parts):
                    self.target.adopt(made, mode | stat.S_IRWXU)
            except BaseException:
                os.close(made)
                raise
        except BaseException:
            os.close(child)
            raise
        return child, made

    def file(self, src_fd: int, dst_fd: int, name: str, parts: tuple[str, ...]) -> None:
        try:
            fin = os.open(name, _READ_FLAGS, dir_fd=src_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):  # gone, or swapped for a link since the scan
                return
            raise
        try:
            st = os.fstat(fin)
            if not stat.S_ISREG(st.st_mode):
                return
            self._count(st.st_size)
            with oserrors(parts):
                fout = os.open(name, _WRITE_FLAGS, 0o600, dir_fd=dst_fd)
            try:
                with oserrors(parts):
                    self.target.adopt(fout, stat.S_IMODE(st.st_mode))
                    self._copy(fin, fout, st.st_size)
            finally:
                os.close(fout)
            self.files += 1
        finally:
            os.close(fin)

    def _copy(self, fin: int, fout: int, size: int) -> None:
        copied = 0
        in_kernel = True  # copy_file_range: no copy through user space (and reflinks where the fs has them)
        while True:
            if in_kernel:
                try:
                    n = os.copy_file_range(fin, fout, _CHUNK)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    in_kernel = False
                    continue
            else:
                n = self._copy_by_reading(fin, fout)
            if n == 0:
                break
            copied += n
            if copied > size:  # the source grew while being copied
                self._count(copied - size)
                size = copied

    @staticmethod
    def _copy_by_reading(fin: int, fout: int) -> int:
        chunk = os.read(fin, _CHUNK)
        view = memoryview(chunk)
        while view:
            written = os.write(fout, view)
            view = view[written:]
        return len(chunk)

    def link(self, src_fd: int, dst_fd: int, name: str, parts: tuple[str, ...]) -> None:
        try:
            target = os.readlink(name, dir_fd=src_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EINVAL):  # gone, or no longer a link
                return
            raise
        with oserrors(parts):
            os.symlink(target, name, dir_fd=dst_fd)
            if os.geteuid() == 0:
                os.chown(name, self.target.uid, self.target.gid, dir_fd=dst_fd, follow_symlinks=False)
        self.files += 1

    def _count(self, size: int) -> None:
        self.bytes += size
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            raise CopyTooLarge(self.bytes, self.max_bytes)
