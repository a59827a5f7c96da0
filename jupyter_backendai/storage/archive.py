"""A directory (or several entries) of a folder as one ZIP archive, produced as a stream.

What Backend.AI's ``request-download`` with ``archive`` gives: the storage proxy zips a
directory on the fly. Here :func:`plan_archive` checks what is asked (safe paths, present, no
link) and :func:`write_archive` walks it by descriptor, as the rest of the store does, handing
the archive's bytes to a callback in pieces of about ``chunk_size``: no temporary file, and
memory bounded by one piece plus one small record per entry (the ZIP central directory, which
comes last). Symbolic links are never followed and never archived, not even ones that point
inside the folder; FIFOs, sockets and devices are skipped too, and so are directories nested
more than ``MAX_DEPTH`` (256) levels below the archived one.

Entry names are relative to the plan's ``base``: for one directory, its contents (Backend.AI's
layout, the archive named after the directory); for a list of entries, the entries themselves
under their names (relative to their deepest common parent directory). Names are UTF-8 (the
ZIP "language encoding" flag is set for non-ASCII names); a name that is not valid UTF-8 on
disk has the offending bytes replaced.
"""

from __future__ import annotations

import contextlib
import os
import stat as _stat
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .errors import Conflict, StorageError, UnsafePath, show_path
from .safepath import DIR_FLAGS, MAX_DEPTH, OpenFolder, open_subdir, split_relpath

__all__ = ["ArchivePlan", "ArchiveStats", "plan_archive", "write_archive"]

#: Suffixes of files that are compressed already: stored as they are, deflating them only costs CPU.
ALREADY_COMPRESSED = frozenset(
    ".7z .avif .br .bz2 .docx .epub .flac .gif .gz .h5 .heic .jar .jpeg .jpg .lz4 .lzma .m4a .mkv .mov .mp3"
    " .mp4 .npz .odt .ogg .opus .parquet .pdf .png .pptx .rar .tgz .webm .webp .whl .xlsx .xz .zip .zst".split()
)
#: Largest number of entries one archive request may name (they travel inside the download token).
MAX_PATHS = 1000
_READ_BYTES = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class ArchivePlan:
    """What goes into an archive: ``paths`` (normalised, none inside another) named relative to ``base``."""

    paths: tuple[str, ...]
    base: str
    filename: str


@dataclass
class ArchiveStats:
    """What :func:`write_archive` did; ``skipped`` are links, special files and too deep directories left out.

    ``too_deep``: directories nested more than ``MAX_DEPTH`` levels below the archived one,
    left out with everything in them (one descriptor is held per level while archiving).
    """

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    too_deep: int = 0


def plan_archive(folder: os.PathLike[str] | str, paths: str | Sequence[str], *, folder_name: str) -> ArchivePlan:
    """Check an archive request; ``paths`` is one path (a directory's contents) or a list of entries.

    Refused: unsafe paths, missing entries (:class:`NotFound`), links (:class:`UnsafePath`),
    special files and an empty list (:class:`Conflict`/400), more than :data:`MAX_PATHS`.
    """
    single = isinstance(paths, (str, PurePosixPath))
    wanted = [paths] if single else list(paths)
    if not wanted:
        raise StorageError("name at least one path to archive", status=400)
    if len(wanted) > MAX_PATHS:
        raise StorageError(
            f"{len(wanted)} paths are more than one archive takes ({MAX_PATHS}); archive their directory instead",
            status=400,
        )
    all_parts = sorted({split_relpath(p) for p in wanted})
    with OpenFolder(folder) as of:
        for parts in all_parts:
            st = of.lstat_existing(parts)
            if _stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"{show_path(parts)} is a symbolic link; symbolic links are not followed")
            if not (_stat.S_ISDIR(st.st_mode) or _stat.S_ISREG(st.st_mode)):
                raise Conflict(f"{show_path(parts)} is not a regular file or a directory")
            if single and not _stat.S_ISDIR(st.st_mode):
                single = False  # one file: archived under its own name, like a list of one
    # An entry inside another one named too would be archived twice.
    kept: list[tuple[str, ...]] = []
    for parts in all_parts:  # sorted: a parent comes before what is inside it
        if not any(parts[: len(k)] == k for k in kept):
            kept.append(parts)
    if single:
        base = kept[0]
        stem = base[-1] if base else folder_name
    else:
        base = _common_parent(kept)
        stem = kept[0][-1] if len(kept) == 1 else (base[-1] if base else folder_name)
    return ArchivePlan(paths=tuple("/".join(p) for p in kept), base="/".join(base), filename=f"{stem or 'archive'}.zip")


def _common_parent(all_parts: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    if any(not parts for parts in all_parts):
        return ()
    common = all_parts[0][:-1]
    for parts in all_parts[1:]:
        n = 0
        while n < len(common) and n < len(parts) - 1 and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return common


class _Sink:
    """What ``zipfile`` writes to (no ``seek``/``tell``: it then streams, with data descriptors)."""

    def __init__(self, send: Callable[[bytes], None], chunk_size: int) -> None:
        self._send = send
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self.sent = 0
        #: Set when the archive is abandoned: what zipfile still writes while tidying up goes nowhere.
        self.dropped = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = memoryview(data).nbytes
        if self.dropped:
            return n
        self._buffer += data
        if len(self._buffer) >= self._chunk_size:
            self._push()
        return n

    def flush(self) -> None:
        """``zipfile`` flushes after the central directory; the last piece goes out in :meth:`finish`."""

    def finish(self) -> None:
        if self._buffer and not self.dropped:
            self._push()

    def _push(self) -> None:
        data = bytes(self._buffer)
        self._buffer.clear()
        try:
            self._send(data)
        except BaseException:
            self.dropped = True
            raise
        self.sent += len(data)


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    """ZIP's DOS time covers 1980..2107; anything outside is clamped rather than refused."""
    t = time.localtime(max(mtime, 0))[:6]
    return max(min(t, (2107, 12, 31, 23, 59, 58)), (1980, 1, 1, 0, 0, 0))  # type: ignore[return-value]


def _printable(name: str) -> str:
    """A name from ``scandir`` as valid UTF-8 (undecodable bytes arrive as surrogates)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class _Writer:
    def __init__(self, zf: zipfile.ZipFile, compress: bool, stats: ArchiveStats) -> None:
        self.zf = zf
        self.compress = compress
        self.stats = stats
        self.buffer = bytearray(_READ_BYTES)

    def directory(self, arcname: str, st: os.stat_result) -> None:
        info = zipfile.ZipInfo(arcname.rstrip("/") + "/", date_time=_zip_time(st.st_mtime))
        info.external_attr = ((st.st_mode & 0xFFFF) << 16) | 0x10  # 0x10: MS-DOS directory bit
        self.zf.writestr(info, b"")
        self.stats.dirs += 1

    def file(self, parent_fd: int, name: str, arcname: str) -> None:
        try:
            fd = os.open(name, _OPEN_FLAGS, dir_fd=parent_fd)
        except OSError:
            self.stats.skipped.append(arcname)  # a link swapped in (ELOOP), gone, unreadable
            return
        try:
            st = os.fstat(fd)
            if not _stat.S_ISREG(st.st_mode):
                self.stats.skipped.append(arcname)
                return
            os.set_blocking(fd, True)
            info = zipfile.ZipInfo(arcname, date_time=_zip_time(st.st_mtime))
            info.external_attr = (st.st_mode & 0xFFFF) << 16
            info.file_size = st.st_size  # lets zipfile pick ZIP64 for big files up front
            deflate = self.compress and os.path.splitext(name)[1].lower() not in ALREADY_COMPRESSED
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            if deflate:
                # Level 1: most of the gain of deflate for text and data at a fraction of the CPU.
                if hasattr(info, "compress_level"):
                    info.compress_level = 1
                else:
                    info._compresslevel = 1
            view = memoryview(self.buffer)
            left = st.st_size  # a file growing meanwhile is archived as it was when opened
            with self.zf.open(info, "w") as dest:
                while left > 0:
                    n = os.readv(fd, [view[: min(len(view), left)]])
                    if n == 0:
                        break  # shrank meanwhile: the entry records what was read
                    dest.write(view[:n])
                    left -= n
                    self.stats.bytes += n
            self.stats.files += 1
        finally:
            os.close(fd)

    def tree(self, top_fd: int, prefix: str) -> None:
        """Everything below the open directory ``top_fd`` (which this closes), depth first, by name.

        One descriptor per level of depth; every level opened ``O_NOFOLLOW`` relative to its parent.
        """
        stack: list[tuple[int, str, list[str]]] = [(top_fd, prefix, _sorted_names(top_fd))]
        try:
            while stack:
                fd, where, names = stack[-1]
                if not names:
                    stack.pop()
                    os.close(fd)
                    continue
                name = names.pop()
                arcname = where + _printable(name)
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed since the listing
                if _stat.S_ISDIR(st.st_mode):
                    if len(stack) > MAX_DEPTH:
                        # A descriptor per level: a planted tree thousands deep would take the
                        # manager's descriptors. What is deeper is left out (and logged).
                        self.stats.skipped.append(arcname + "/")
                        self.stats.too_deep += 1
                        continue
                    try:
                        child = os.open(name, DIR_FLAGS, dir_fd=fd)
                    except OSError:
                        self.stats.skipped.append(arcname)  # swapped for a link meanwhile, or unreadable
                        continue
                    self.directory(arcname, st)
                    stack.append((child, arcname + "/", _sorted_names(child)))
                elif _stat.S_ISREG(st.st_mode):
                    self.file(fd, name, arcname)
                else:
                    self.stats.skipped.append(arcname)
        finally:
            for fd, _, _ in stack:
                os.close(fd)


def _sorted_names(fd: int) -> list[str]:
    """Names in the directory, reverse-sorted so that ``pop()`` hands them out in order."""
    with os.scandir(fd) as it:
        return sorted((entry.name for entry in it), reverse=True)


def write_archive(
    folder: os.PathLike[str] | str,
    plan: ArchivePlan,
    send: Callable[[bytes], None],
    *,
    compress: bool = True,
    chunk_size: int = 1 << 20,
) -> ArchiveStats:
    """Write the ZIP archive of ``plan`` to ``send`` in pieces of about ``chunk_size`` bytes.

    ``send`` may block (that is the back-pressure) and may raise to stop the archive (a client
    gone away): the exception propagates and every descriptor is closed. The folder is walked
    again here, so what changed since :func:`plan_archive` is archived as it is now, and a link
    planted meanwhile is refused (at the top) or skipped (inside), never followed.
    """
    stats = ArchiveStats()
    sink = _Sink(send, chunk_size)
    base = split_relpath(plan.base)
    zf = zipfile.ZipFile(sink, "w", allowZip64=True)  # type: ignore[arg-type]
    try:
        with OpenFolder(folder) as of:
            writer = _Writer(zf, compress, stats)
            for path in plan.paths:
                parts = split_relpath(path)
                arcname = "/".join(_printable(p) for p in parts[len(base) :])
                st = of.lstat_existing(parts)
                if _stat.S_ISLNK(st.st_mode):
                    raise UnsafePath(f"{show_path(parts)} is a symbolic link; symbolic links are not followed")
                if _stat.S_ISREG(st.st_mode):
                    writer.file(of.walk(parts[:-1]), parts[-1], arcname)
                elif _stat.S_ISDIR(st.st_mode):
                    top = os.dup(of.fd) if not parts else open_subdir(parts[-1], of.walk(parts[:-1]), parts)
                    if arcname:
                        writer.directory(arcname, st)
                    writer.tree(top, arcname + "/" if arcname else "")
                else:
                    stats.skipped.append(arcname)
    except BaseException:
        # Never finish an archive that lacks something: without its central directory the
        # receiver sees a broken archive, not a complete-looking one with files missing.
        sink.dropped = True
        with contextlib.suppress(Exception):
            zf.close()
        raise
    zf.close()  # the central directory
    sink.finish()
    return stats
