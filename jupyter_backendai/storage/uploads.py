"""Resumable uploads (what the manager's tus 1.0.0 endpoint stores), kept on disk only.

Each upload is a directory ``<root>/.uploads/<upload id>/`` holding ``data`` (the bytes so
far) and ``info.json`` (folder host and id, relative path, declared size, offset, created
time). Nothing lives in memory, so an upload interrupted by a restart of the manager resumes
from its offset; the offset is the data file's size, which is true even when the process died
between writing bytes and updating the JSON. The data stays outside the folder until
:meth:`UploadStore.finish` renames it into place, so a half-uploaded file is never visible
to the session, and the target path is checked (no ``..``, no links) at the start and again
at the end.

A request that appends (a tus ``PATCH``) holds an :class:`UploadWriter`: the data file open and
locked for the whole request, so a second request on the same upload is refused as busy
rather than interleaved, and the per-write cost is one ``write`` (plus a hint to the kernel to
start writing back, so that the ``fdatasync`` that ends the request has little left to do).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import Conflict, NotFound, StorageError, UploadTooLarge, show_path, translate_oserror
from .files import FileEntry, check_quota, make_entry, target_stat, write_all, write_atomic
from .safepath import OpenFolder, oserrors, split_relpath, start_writeback, tree_usage

__all__ = ["UploadInfo", "UploadStore", "UploadWriter"]

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
Chunk = bytes | bytearray | memoryview


@dataclass(frozen=True)
class UploadInfo:
    """What is known about an upload; ``offset`` is the number of bytes received so far."""

    upload_id: str
    host: str
    folder_id: uuid.UUID
    relpath: str
    size: int
    offset: int
    created: str

    @property
    def complete(self) -> bool:
        return self.offset == self.size

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["folder_id"] = str(self.folder_id)
        return data


class UploadStore:
    """The upload half of :class:`~jupyter_backendai.storage.FolderStore` (a mixin).

    It needs ``root`` and ``path(host, folder_id)`` from the store.
    """

    root: Path

    def path(self, host: str, folder_id: uuid.UUID | str) -> Path:  # pragma: no cover - provided by FolderStore
        raise NotImplementedError

    def quota_usage(self, host: str, folder_id: uuid.UUID | str) -> tuple[int, int | None] | None:
        """What the filesystem's quota counts for the folder, if one does (see ``FolderStore``)."""
        return None

    def _used_bytes(self, host: str, folder_id: uuid.UUID | str, fd: int) -> int:
        """The folder's usage for a capacity check: from its quota where one counts (cheap), else a walk."""
        counted = self.quota_usage(host, folder_id)
        if counted is not None:
            return counted[0]
        with oserrors(()):
            return tree_usage(fd)[0]

    @property
    def uploads_dir(self) -> Path:
        return self.root / ".uploads"

    # -- public API ------------------------------------------------------------------------
    def begin_upload(
        self,
        host: str,
        folder_id: uuid.UUID | str,
        relpath: str,
        size: int,
        *,
        quota: int | None = None,
        expire_after: float | None = None,
    ) -> str:
        """Start an upload of ``size`` bytes to ``relpath`` in the folder; returns the upload id.

        Refuses now, rather than after the bytes arrive, an unsafe target, a target that is a
        directory or a link, and (with ``quota``) a size the folder has no room for: its usage
        plus what the uploads in progress reserved (:meth:`reserved_bytes`) plus ``size``. With
        ``expire_after`` (seconds; the manager passes its transfer URLs' lifetime, after which
        nobody can send to an upload any more) uploads untouched for longer are removed first,
        so that abandoned ones do not hold a folder's room.
        """
        parts = split_relpath(relpath)
        if not parts:
            raise Conflict("the folder root is a directory")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise StorageError(f"the upload size must be a whole number of bytes, not {size!r}", status=400)
        folder = self.path(host, folder_id)
        self.uploads_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Checking the room and recording the upload is one step under the reservation lock:
        # otherwise parallel requests would each see the folder with room for their own bytes
        # only, and all of them would be let in.
        with self._reservation_lock():
            if expire_after is not None:
                self.cleanup_stale(expire_after)
            with OpenFolder(folder) as of:
                old = _existing_target(of, parts)
                if quota is not None:
                    used = self._used_bytes(host, folder_id, of.fd)
                    reserved = self.reserved_bytes(folder_id)
                    check_quota(
                        used=used, replaced=old.st_size if old else 0, adding=size, quota=quota,
                        reserved=reserved,
                    )  # fmt: skip
            upload_id = secrets.token_hex(16)
            directory = self.uploads_dir / upload_id
            directory.mkdir(mode=0o700)
            os.close(os.open(directory / "data", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            info = UploadInfo(
                upload_id=upload_id,
                host=host,
                folder_id=uuid.UUID(str(folder_id)),
                relpath="/".join(parts),
                size=size,
                offset=0,
                created=datetime.now(timezone.utc).isoformat(),
            )
            self._save(info)
        return upload_id

    def reserved_bytes(self, folder_id: uuid.UUID | str, *, besides: str | None = None) -> int:
        """Bytes the folder's outstanding uploads (other than ``besides``) have reserved.

        An upload reserves its declared size from ``begin_upload`` until it is finished (its
        bytes then count in the folder's usage), aborted or removed as stale: the reservation
        is the upload's own directory, so nothing else has to be released.
        """
        wanted = str(uuid.UUID(str(folder_id)))
        total = 0
        try:
            entries = list(os.scandir(self.uploads_dir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name == besides or not _UPLOAD_ID.fullmatch(entry.name):
                continue
            try:
                raw = json.loads(Path(entry.path, "info.json").read_text("utf-8"))
                if raw.get("folder_id") == wanted:
                    total += int(raw["size"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # finished or removed meanwhile, or half made: it holds no room
        return total

    def upload_info(self, upload_id: str) -> UploadInfo:
        """The upload's state (its offset read from the data on disk)."""
        return self._load(upload_id)

    def upload_offset(self, upload_id: str) -> int:
        """Bytes received so far (tus ``Upload-Offset``)."""
        return self._load(upload_id).offset

    def append(
        self,
        upload_id: str,
        offset: int,
        data: Chunk | Iterable[Chunk],
        *,
        quota: int | None = None,
        durable: bool = True,
    ) -> int:
        """Append ``data`` at ``offset``; returns the new offset.

        ``offset`` must equal the current one (:class:`Conflict` otherwise, as tus requires),
        and nothing beyond the declared size is accepted (:class:`UploadTooLarge`; the bytes of
        this call are then dropped). If ``data`` (an iterator over a request body) fails half
        way, what arrived is kept so the client can resume from there. ``quota`` re-checks
        the declared size against the folder's current usage before writing. With ``durable``
        the bytes are on disk (and the offset recorded) when this returns.
        """
        chunks: Iterable[Chunk] = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
        with self.open_upload(upload_id, offset, quota=quota) as writer:
            try:
                for chunk in chunks:
                    writer.write(chunk)
            except UploadTooLarge:
                writer.truncate(offset)
                raise
            finally:
                if durable:
                    writer.sync()
            return writer.offset

    def open_upload(self, upload_id: str, offset: int, *, quota: int | None = None) -> UploadWriter:
        """Open the upload for appending at ``offset`` (a context manager; one writer at a time).

        Refuses before any byte is written: an unknown upload (:class:`NotFound`), a busy one
        or a wrong ``offset`` (:class:`Conflict`), and with ``quota`` a declared size the
        folder has no room for any more (:class:`~.errors.QuotaExceeded`).
        """
        info = self._load(upload_id)
        if quota is not None:
            parts = split_relpath(info.relpath)
            with OpenFolder(self.path(info.host, info.folder_id)) as of:
                old = _existing_target(of, parts)
                used = self._used_bytes(info.host, info.folder_id, of.fd)
            # The other uploads' reservations count: they were admitted on the room left then.
            reserved = self.reserved_bytes(info.folder_id, besides=upload_id)
            check_quota(
                used=used, replaced=old.st_size if old else 0, adding=info.size, quota=quota,
                reserved=reserved,
            )  # fmt: skip
        fd = self._open_locked(upload_id)
        try:
            current = os.fstat(fd).st_size
            if offset != current:
                raise Conflict(f"upload offset {offset} does not match the upload's current offset {current}")
            os.lseek(fd, current, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return UploadWriter(self, info, fd, current)

    def sync(self, upload_id: str) -> int:
        """Make what was appended durable and record the offset; returns it."""
        info = self._load(upload_id)
        with self._locked(upload_id) as fd:
            os.fdatasync(fd)
            offset = os.fstat(fd).st_size
            self._save(dataclasses.replace(info, offset=offset))
        return offset

    def finish(self, upload_id: str) -> FileEntry:
        """Move a complete upload into place at its target, atomically; returns the new entry.

        Missing parent directories are created (safely, like ``mkdir -p``: a tus client
        uploading ``a/b/c.txt`` expects that); an existing regular file is replaced and keeps
        its permission bits; a directory or a link at the target refuses.
        """
        info = self._load(upload_id)
        parts = split_relpath(info.relpath)
        folder = self.path(info.host, info.folder_id)
        with self._locked(upload_id) as fd:
            received = os.fstat(fd).st_size
            if received != info.size:
                raise Conflict(f"the upload is incomplete: {received} of {info.size} bytes received")
            with OpenFolder(folder) as of:
                parent = of.walk(parts[:-1], create=True)
                old = target_stat(of, parent, parts)
                with oserrors(parts):
                    of.adopt(fd, (old.st_mode & 0o777) if old is not None else 0o644)
                    os.fsync(fd)
                    st = os.fstat(fd)
                try:
                    # rename() never follows a link at the target; it replaces the entry itself.
                    os.replace(self.uploads_dir / upload_id / "data", parts[-1], dst_dir_fd=parent)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise translate_oserror(exc, parts) from None
                    # The host directory is on another filesystem than the uploads: copy instead.
                    entry = write_atomic(folder, info.relpath, _read_chunks(fd), size=info.size, parents=True)
                else:
                    with oserrors(parts):
                        os.fsync(parent)
                    entry = make_entry(parts[-1], st)
        shutil.rmtree(self.uploads_dir / upload_id, ignore_errors=True)
        return entry

    def abort(self, upload_id: str) -> None:
        """Drop an upload and its data (tus termination)."""
        self._load(upload_id)
        with self._locked(upload_id):
            shutil.rmtree(self.uploads_dir / upload_id, ignore_errors=True)

    def cleanup_stale(self, max_age_seconds: float) -> int:
        """Remove uploads untouched (no append, no start) for longer than ``max_age_seconds``; returns how many."""
        removed = 0
        now = time.time()
        try:
            entries = list(os.scandir(self.uploads_dir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not _UPLOAD_ID.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
                continue
            mtimes = [entry.stat(follow_symlinks=False).st_mtime]
            for name in ("data", "info.json"):
                try:
                    mtimes.append(os.stat(os.path.join(entry.path, name), follow_symlinks=False).st_mtime)
                except FileNotFoundError:
                    pass
            if now - max(mtimes) <= max_age_seconds:
                continue
            try:
                with self._locked(entry.name):
                    shutil.rmtree(entry.path, ignore_errors=True)
            except Conflict:
                continue  # somebody is writing to it right now: not stale after all
            except NotFound:
                shutil.rmtree(entry.path, ignore_errors=True)  # finished or broken leftovers
            removed += 1
        return removed

    # -- internals -------------------------------------------------------------------------
    def _dir(self, upload_id: str) -> Path:
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            raise NotFound("no such upload")
        return self.uploads_dir / upload_id

    def _load(self, upload_id: str) -> UploadInfo:
        directory = self._dir(upload_id)
        try:
            raw = json.loads((directory / "info.json").read_text("utf-8"))
            offset = os.stat(directory / "data").st_size
        except FileNotFoundError:
            raise NotFound(f"upload {upload_id} does not exist (finished, aborted or expired)") from None
        except (OSError, ValueError) as exc:
            raise StorageError(f"upload {upload_id} is unreadable: {exc.__class__.__name__}") from None
        return UploadInfo(
            upload_id=upload_id,
            host=raw["host"],
            folder_id=uuid.UUID(raw["folder_id"]),
            relpath=raw["relpath"],
            size=int(raw["size"]),
            offset=offset,
            created=raw["created"],
        )

    def _save(self, info: UploadInfo) -> None:
        directory = self._dir(info.upload_id)
        tmp = directory / f"info.json.{secrets.token_hex(4)}"
        tmp.write_text(json.dumps(info.as_dict()), "utf-8")
        os.replace(tmp, directory / "info.json")

    def _open_locked(self, upload_id: str) -> int:
        """The data file, open and exclusively locked: two requests never write one upload at once."""
        path = self._dir(upload_id) / "data"
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"upload {upload_id} does not exist (finished, aborted or expired)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict(f"upload {upload_id} is busy: another request is writing to it") from None
        return fd

    @contextmanager
    def _reservation_lock(self) -> Iterator[None]:
        """One ``begin_upload`` at a time, across threads and manager processes (``flock``)."""
        fd = os.open(self.uploads_dir / ".reservations.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _locked(self, upload_id: str) -> Iterator[int]:
        fd = self._open_locked(upload_id)
        try:
            yield fd
        finally:
            os.close(fd)


class UploadWriter:
    """Appends to one upload by one request: the data file stays open and locked until :meth:`close`.

    Not thread-safe: one call at a time (any thread). :meth:`write` takes bytes-like objects
    and may be handed a view of a buffer the caller reuses afterwards (nothing is kept).
    """

    def __init__(self, store: UploadStore, info: UploadInfo, fd: int, offset: int) -> None:
        self._store = store
        self.info = info
        self._fd = fd
        #: Bytes in the data file (written; durable only after :meth:`sync`).
        self.offset = offset
        self._synced_to = offset

    @property
    def remaining(self) -> int:
        """Bytes the upload still needs to reach its declared size."""
        return self.info.size - self.offset

    def write(self, data: Chunk) -> int:
        """Append ``data``; returns the new offset. More than the declared size is refused whole."""
        if self._fd < 0:
            raise StorageError("the upload writer is closed")
        n = memoryview(data).nbytes
        if self.offset + n > self.info.size:
            raise UploadTooLarge(
                f"the upload to {show_path(split_relpath(self.info.relpath))} declared {self.info.size} bytes; "
                f"this request would take it to {self.offset + n} or more"
            )
        with oserrors(split_relpath(self.info.relpath)):
            write_all(self._fd, data)
            start_writeback(self._fd, self.offset, n)
        self.offset += n
        return self.offset

    def truncate(self, offset: int) -> None:
        """Drop what was written past ``offset`` (a refused request's bytes)."""
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)
        self.offset = offset

    def sync(self) -> int:
        """Make what was written durable and record the offset; returns it.

        ``fdatasync`` is enough: the offset is the data file's size, which it makes durable too.
        """
        if self._fd < 0:
            raise StorageError("the upload writer is closed")
        with oserrors(split_relpath(self.info.relpath)):
            os.fdatasync(self._fd)
            self.offset = os.fstat(self._fd).st_size
        if self.offset != self._synced_to:
            self._store._save(dataclasses.replace(self.info, offset=self.offset))
            self._synced_to = self.offset
        return self.offset

    def close(self) -> None:
        """Release the upload (idempotent); what was not synced stays, but may not be durable."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> UploadWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _existing_target(of: OpenFolder, parts: tuple[str, ...]) -> os.stat_result | None:
    """The regular file an upload would replace; ``None`` if absent (also when its directory is)."""
    try:
        parent = of.walk(parts[:-1])
    except NotFound:
        return None
    return target_stat(of, parent, parts)


def _read_chunks(fd: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    offset = 0
    while chunk := os.pread(fd, chunk_size, offset):
        offset += len(chunk)
        yield chunk
