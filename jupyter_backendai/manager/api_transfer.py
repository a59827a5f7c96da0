"""File transfer: tus 1.0.0 resumable uploads and ranged downloads, authorised by a transfer token.

``POST /folders/{name}/request-upload`` (``folders.files``) checks the caller's permission and
the folder's capacity, starts the upload session in the store and hands out a short-lived
token naming it; ``request-download`` does the same for one file, and for an archive through
:func:`request_archive` here. The endpoints here are ``public`` (no keypair signature: the URL
is all a browser or ``tuspy`` has) and trust the token alone, verified on every request: a
tampered, malformed or expired token is 401, a token for the other operation 403.

Uploads (``/folders/_/tus/upload?token=``): ``OPTIONS`` (discovery, no token needed),
``HEAD`` (offset), ``PATCH`` (append), ``DELETE`` (termination) and ``POST`` (tus
"creation", for clients such as ``tuspy`` that insist on creating the upload themselves: the
session already exists, so it only answers its URL in ``Location``). A PATCH holds the upload
for its duration (a second request meanwhile is 409, busy). Its body is read by the handler
itself into two :data:`RECEIVE_BYTES` buffers, one filling from the socket while the other is
written to disk on a transfer thread, so neither the event loop blocks nor a whole file sits
in memory; a chunked body goes through tornado's ``data_received`` instead. The bytes are
made durable (``fdatasync``) once, before the PATCH answers its ``Upload-Offset``. If the
client goes away mid-request, what arrived is kept (and synced), so it resumes from there.
When the offset reaches the declared length, the file is moved into place atomically.

Downloads (``/folders/_/download?token=``): ``GET``/``HEAD`` with ``Range`` (one range;
206 with ``Content-Range``, 416 when unsatisfiable). The body goes from the file to the
socket by ``os.sendfile`` on a plain connection, else in :data:`CHUNK_BYTES` pieces (the next
read while one is sent). An archive token gives a ZIP made on a transfer thread as it is sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import os
import select
import urllib.parse
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from tornado import iostream, web

from .. import storage
from ..db import folders as folder_db
from . import transfer_tokens
from .base import APIError, APIHandler

T = TypeVar("T")
TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination"
MiB = 1024 * 1024
#: Size of each of the two buffers a PATCH body is read into (8 MiB of memory per PATCH in flight).
RECEIVE_BYTES = 4 * MiB
#: Bytes read from disk per write to the client when a download cannot use ``sendfile``.
CHUNK_BYTES = 4 * MiB
#: Longest JSON list of paths one archive token may carry (URLs pass proxies with ~16 KiB header limits).
MAX_ARCHIVE_PATHS_CHARS = 8000
DOWNLOAD_PATH = "/folders/_/download"
#: Seconds a download waits for a client that reads nothing before it gives up on it.
SEND_TIMEOUT = 300.0

#: Threads for the blocking halves of transfers (disk writes and syncs, ``sendfile`` waiting on a
#: slow client, archives being made), kept apart from asyncio's default pool that the database
#: calls use: a few slow clients must not stall every other request. Beyond this many at once,
#: transfers queue.
TRANSFER_THREADS = 64

log = logging.getLogger("jupyter_backendai.manager")
_transfer_pool: concurrent.futures.ThreadPoolExecutor | None = None


async def in_transfer_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``await`` ``func(*args, **kwargs)`` on the transfer threads."""
    global _transfer_pool
    if _transfer_pool is None:
        _transfer_pool = concurrent.futures.ThreadPoolExecutor(TRANSFER_THREADS, thread_name_prefix="transfer")
    return await asyncio.get_running_loop().run_in_executor(_transfer_pool, functools.partial(func, *args, **kwargs))


class TransferHandler(APIHandler):
    """Token-authenticated: ``self.claims`` holds the verified token's claims after ``prepare``."""

    public = True
    op = ""
    claims: dict[str, Any]

    def token_optional(self) -> bool:
        return False

    async def prepare(self) -> None:
        await super().prepare()
        self.claims = {}
        if self.token_optional():
            return
        token = self.get_query_argument("token", None)
        if not token:
            raise APIError(401, "a transfer token (?token=...) is required; ask request-upload or request-download")
        try:
            self.claims = transfer_tokens.verify(self.manager.transfer_secret, token, op=self.op)
        except transfer_tokens.TransferTokenError as e:
            status = 403 if str(e).startswith("the transfer token is not for") else 401
            raise APIError(status, str(e)) from None
        except (ValueError, TypeError, KeyError):
            raise APIError(401, "the transfer token is malformed") from None
        await self._check_still_allowed()

    async def _check_still_allowed(self) -> None:
        """403 when the token's user lost what it needs on the folder since it was issued.

        The token alone would stay good until it expires; a revoked share, a share lowered to
        ``ro`` (for uploads), a deactivated account or a deleted folder ends it at once instead.
        """
        user = self.claims.get("uid") or self.claims.get("user")
        folder = self.claims.get("folder")
        if not isinstance(user, str) or not isinstance(folder, str):
            raise APIError(401, "the transfer token is malformed")
        needed = "rw" if self.op == "upload" else "ro"
        reason = await self.run_db(folder_db.can_use, user, folder, needed)
        if reason is not None:
            raise APIError(403, f"this transfer URL no longer works: {reason}")

    def folder_path(self) -> str:
        return str(self.store.path(self.claims["host"], self.claims["folder"]))


@web.stream_request_body
class TusUploadHandler(TransferHandler):
    """tus 1.0.0 core + creation + termination on an upload session made by ``request-upload``."""

    op = "upload"
    raw_body = True  # the body is file bytes, not JSON

    def token_optional(self) -> bool:
        return self.request.method == "OPTIONS"

    def set_default_headers(self) -> None:
        self.set_header("Tus-Resumable", TUS_VERSION)
        self.set_header("Cache-Control", "no-store")

    async def prepare(self) -> None:
        self._writer: storage.UploadWriter | None = None
        self._buffer = bytearray()
        self._error: APIError | None = None
        self._lock = asyncio.Lock()
        self._patching = False
        self._closing: asyncio.Future[None] | None = None
        await super().prepare()
        if self.request.method == "OPTIONS":
            return
        version = self.request.headers.get("Tus-Resumable")
        if version is not None and version != TUS_VERSION:
            raise APIError(412, f"tus version {version!r} is not supported; this server speaks {TUS_VERSION}",
                           headers={"Tus-Version": TUS_VERSION})  # fmt: skip
        if self.request.method == "PATCH":
            await self._prepare_patch()

    @property
    def upload_id(self) -> str:
        return str(self.claims.get("upload", ""))

    async def _prepare_patch(self) -> None:
        """Refuse a bad PATCH before its body arrives, then open the upload for this request."""
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/offset+octet-stream":
            raise APIError(415, f"a tus PATCH needs Content-Type application/offset+octet-stream, not {content_type!r}")
        raw = self.request.headers.get("Upload-Offset", "")
        if not raw.isdigit():
            raise APIError(400, f"a tus PATCH needs a numeric Upload-Offset header, not {raw!r}")
        offset = int(raw)
        info = await asyncio.to_thread(self.store.upload_info, self.upload_id)
        if offset != info.offset:
            raise APIError(
                409, f"Upload-Offset {offset} does not match the upload's offset {info.offset}",
                headers={"Upload-Offset": str(info.offset)}, offset=info.offset,
            )  # fmt: skip
        remaining = info.size - offset
        length = self._content_length()
        if length is not None and length > remaining:
            raise APIError(
                413, f"this PATCH sends {length} bytes; the upload has {remaining} bytes left to its declared"
                f" length of {info.size}", offset=offset, size=info.size,
            )  # fmt: skip
        # The folder's capacity is re-checked now: its usage may have grown since request-upload.
        try:
            self._writer = await asyncio.to_thread(
                self.store.open_upload, self.upload_id, offset, quota=self.claims.get("quota")
            )
        except storage.QuotaExceeded as e:
            raise APIError(
                413, str(e), used_bytes=e.used, quota=e.quota, size=e.adding, reserved_bytes=e.reserved
            ) from None
        except storage.Conflict as e:
            current = await asyncio.to_thread(self.store.upload_offset, self.upload_id)
            raise APIError(409, str(e), headers={"Upload-Offset": str(current)}, offset=current) from None
        self._patching = True
        stream = getattr(self.request.connection, "stream", None)
        if length is not None and isinstance(stream, iostream.IOStream):
            await self._receive(stream, length)
        else:
            # Chunked (no Content-Length) or another kind of connection: tornado hands the body
            # to data_received. Accept what this upload still needs, plus a margin so that an
            # overflow gets its 413 from data_received, whatever the server-wide body limit is.
            self.request.connection.set_max_body_size(remaining + 64 * 1024)

    def _content_length(self) -> int | None:
        headers = self.request.headers
        if "Transfer-Encoding" in headers:
            return None  # chunked: tornado decodes it
        raw = headers.get("Content-Length")
        if raw is None:
            return None
        if not raw.isdigit():
            raise APIError(400, f"the Content-Length {raw!r} is not a number")
        return int(raw)

    # --- the body, read here --------------------------------------------------------------------

    async def _receive(self, stream: iostream.IOStream, length: int) -> None:
        """Read the body straight into two buffers: one fills from the socket while the other is written.

        tornado would deliver the body in ``chunk_size`` (64 KiB) pieces, each copied twice
        more and each a coroutine call; reading ``length`` bytes ourselves with ``read_into``
        costs one copy and a call per few MiB. Afterwards the request says ``Content-Length: 0``
        so that tornado does not wait for a body that is already read. A client going away
        mid-body keeps what arrived (synced), so that it resumes from there.
        """
        headers = self.request.headers
        if headers.get("Expect", "").lower() == "100-continue":
            # tornado sends this only after prepare(), that is after the body: too late here.
            stream.write(b"HTTP/1.1 100 (Continue)\r\n\r\n")
            del headers["Expect"]
        size = max(min(RECEIVE_BYTES, length), 1)
        buffers = (bytearray(size), bytearray(size))
        writing: asyncio.Future[None] | None = None
        left, turn, closed = length, 0, False
        try:
            while left > 0 and not closed:
                view = memoryview(buffers[turn])[: min(size, left)]
                turn ^= 1
                got = 0
                try:
                    while got < len(view):
                        got += await stream.read_into(view[got:], partial=True)
                except iostream.StreamClosedError:
                    closed = True
                left -= got
                if writing is not None:
                    await writing  # the other buffer is free again
                    writing = None
                if got and self._error is None:
                    writing = asyncio.ensure_future(self._write(view[:got]))
        finally:
            if writing is not None:
                await writing
            headers["Content-Length"] = "0"  # read: tornado must not read it again
        if closed:
            await self._sync_and_release()
            raise web.Finish()  # nobody to answer

    async def _write(self, data: bytes | bytearray | memoryview) -> None:
        """Append on a worker thread; a failure is kept for the answer (what came before stays)."""
        assert self._writer is not None
        try:
            await in_transfer_thread(self._writer.write, data)
        except storage.StorageError as e:
            if self._error is None:
                self._error = APIError(e.status if 400 <= e.status < 500 else 500, str(e))
            return
        self.manager.metrics.transfer_bytes.labels("upload").inc(memoryview(data).nbytes)

    async def _sync_and_release(self) -> int | None:
        """Make what was written durable (the offset reported must be on disk) and release the upload."""
        writer, self._writer = self._writer, None
        if writer is None:
            return None
        try:
            return await in_transfer_thread(writer.sync)
        finally:
            writer.close()

    def on_finish(self) -> None:
        if self._writer is not None and self._closing is None:
            self._writer.close()  # an error answered before the body was read
            self._writer = None
        super().on_finish()

    # --- the body, from tornado (chunked requests) ------------------------------------------------

    async def data_received(self, chunk: bytes) -> None:
        """Buffer a piece of the body; append when the buffer is full. Never raises (see ``patch``)."""
        if not self._patching or self._error is not None or self._writer is None:
            return
        if len(self._buffer) + len(chunk) > self._writer.remaining:
            self._error = APIError(
                413, f"the body is longer than the {self._writer.remaining} bytes left of the upload's declared length"
            )
            self._buffer = bytearray()
            return
        self._buffer += chunk
        if len(self._buffer) >= RECEIVE_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            if not self._buffer or self._error is not None or self._writer is None:
                return
            data, self._buffer = self._buffer, bytearray()
            await self._write(data)

    async def _flush_and_release(self) -> None:
        await self._flush()
        await self._sync_and_release()

    def on_connection_close(self) -> None:
        """The client went away mid-body: keep what arrived, so that a resumed upload starts there."""
        if self._patching and self._writer is not None and not self._finished:
            self._closing = asyncio.ensure_future(self._flush_and_release())
        super().on_connection_close()

    # --- tus methods --------------------------------------------------------------------------

    async def options(self) -> None:
        self.set_header("Tus-Version", TUS_VERSION)
        self.set_header("Tus-Extension", TUS_EXTENSIONS)
        self.set_header("Tus-Max-Size", str(self.manager.max_upload_size))
        self.set_status(204)
        self.finish()

    async def head(self) -> None:
        info = await self._finish_if_complete(await asyncio.to_thread(self.store.upload_info, self.upload_id))
        self.set_header("Upload-Offset", str(info.offset))
        self.set_header("Upload-Length", str(info.size))
        self.set_status(200)
        self.finish()

    async def patch(self) -> None:
        await self._flush()
        # Durable before the offset is reported (also after an error: what arrived is kept).
        await self._sync_and_release()
        if self._error is not None:
            raise self._error
        info = await self._finish_if_complete(await asyncio.to_thread(self.store.upload_info, self.upload_id))
        self.set_header("Upload-Offset", str(info.offset))
        self.set_status(204)
        self.finish()

    async def post(self) -> None:
        """tus creation: the upload exists already; check the length and answer where it is."""
        raw = self.request.headers.get("Upload-Length", "")
        if not raw.isdigit():
            raise APIError(400, f"a tus POST needs a numeric Upload-Length header, not {raw!r}")
        info = await asyncio.to_thread(self.store.upload_info, self.upload_id)
        if int(raw) != info.size:
            raise APIError(400, f"Upload-Length {raw} differs from the {info.size} bytes this token was issued for")
        await self._finish_if_complete(info)
        self.set_header("Location", self.request.uri)
        self.set_header("Upload-Offset", str(info.offset))
        self.set_status(201)
        self.finish()

    async def delete(self) -> None:
        """tus termination: drop the upload and its bytes."""
        await asyncio.to_thread(self.store.abort, self.upload_id)
        self.set_status(204)
        self.finish()

    async def _finish_if_complete(self, info: storage.UploadInfo) -> storage.UploadInfo:
        """Move a complete upload into place; also an empty one, for which no PATCH ever comes."""
        if info.complete:
            await asyncio.to_thread(self.store.finish, self.upload_id)
            await self.run_db(folder_db.mark_usage_stale, self.claims["folder"])
        return info


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the real name in RFC 5987 form for other scripts."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    quoted = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


class DownloadHandler(TransferHandler):
    """``GET|HEAD /folders/_/download?token=``: one file, whole or one byte range; or an archive."""

    op = "download"

    async def get(self) -> None:
        await self._serve(send_body=True)

    async def head(self) -> None:
        await self._serve(send_body=False)

    async def _serve(self, *, send_body: bool) -> None:
        if self.claims.get("archive"):
            await self._serve_archive(send_body=send_body)
            return
        relpath = str(self.claims["path"])
        f: BinaryIO = await asyncio.to_thread(storage.open_read, self.folder_path(), relpath)
        try:
            size = os.fstat(f.fileno()).st_size
            try:
                byte_range = storage.parse_range(self.request.headers.get("Range"), size)
            except storage.RangeNotSatisfiable as e:
                raise APIError(416, str(e), headers={"Content-Range": f"bytes */{size}"}, size=size) from None
            start, end = byte_range if byte_range is not None else (0, size - 1)
            length = max(end - start + 1, 0)
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Accept-Ranges", "bytes")
            self.set_header("Content-Disposition", content_disposition(relpath.rsplit("/", 1)[-1]))
            self.set_header("Cache-Control", "no-store")
            self.set_header("Content-Length", str(length))
            if byte_range is not None:
                self.set_status(206)
                self.set_header("Content-Range", storage.content_range(start, end, size))
            if send_body and length > 0:
                send = self._sendfile if self._can_sendfile() else self._send_chunks
                try:
                    sent = await send(f, start, length)
                except (iostream.StreamClosedError, ConnectionError, TimeoutError):
                    self._drop_connection()  # the client went away or stopped reading
                    return
                if sent < length:
                    self._drop_connection()  # the file shrank meanwhile: the client sees a short body
                    return
        finally:
            f.close()
        self.finish()

    def _drop_connection(self) -> None:
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.close()

    def _can_sendfile(self) -> bool:
        """Whether the body can go from the file to the socket in the kernel (``os.sendfile``).

        Only on a plain TCP connection (TLS must encrypt in user space), with no output
        transform (compression) and when tornado's HTTP/1 connection lets us account for the
        bytes (see :meth:`_sendfile`); otherwise the body is read and written in chunks.
        """
        connection = self.request.connection
        stream = getattr(connection, "stream", None)
        return (
            hasattr(os, "sendfile")
            and type(stream) is iostream.IOStream
            and hasattr(connection, "_expected_content_remaining")
            and not self._transforms
        )

    async def _sendfile(self, f: BinaryIO, start: int, length: int) -> int:
        """The body by ``os.sendfile`` on a worker thread: no copy through Python, one call per socket buffer."""
        await self.flush()  # the status line and headers go first, through tornado
        connection = self.request.connection
        if not isinstance(getattr(connection, "_expected_content_remaining", None), int):
            return await self._send_chunks(f, start, length)  # tornado does not count as we expect
        stream = connection.stream  # type: ignore[attr-defined]
        # Our own descriptor of the socket: if tornado closes its own meanwhile (the client
        # went away), the number cannot be reused under us for another connection.
        sock = os.dup(stream.fileno().fileno())
        try:
            sent = await in_transfer_thread(_sendfile_all, sock, f.fileno(), start, length, SEND_TIMEOUT)
        finally:
            os.close(sock)
        # Bytes tornado did not write itself: without this, finish() would find the body short.
        connection._expected_content_remaining -= sent  # type: ignore[attr-defined]
        self.manager.metrics.transfer_bytes.labels("download").inc(sent)
        return sent

    async def _send_chunks(self, f: BinaryIO, start: int, length: int) -> int:
        """The body read in :data:`CHUNK_BYTES` pieces; the next piece is read while one is sent."""
        await asyncio.to_thread(f.seek, start)
        left, sent = length, 0
        reading = asyncio.ensure_future(asyncio.to_thread(f.read, min(CHUNK_BYTES, left)))
        try:
            while True:
                chunk = await reading
                if not chunk:
                    return sent
                left -= len(chunk)
                if left > 0:
                    reading = asyncio.ensure_future(asyncio.to_thread(f.read, min(CHUNK_BYTES, left)))
                self.write(chunk)
                await self.flush()
                sent += len(chunk)
                self.manager.metrics.transfer_bytes.labels("download").inc(len(chunk))
                if left <= 0:
                    return sent
        finally:
            if not reading.done():
                await asyncio.wait([reading])  # the file is closed after this returns

    async def _serve_archive(self, *, send_body: bool) -> None:
        """A ZIP of the token's paths, made as it is sent (chunked; no length, no ranges)."""
        folder = self.folder_path()
        spec = self.claims.get("paths")
        plan = await asyncio.to_thread(
            storage.plan_archive, folder, spec if isinstance(spec, list) else str(spec or ""),
            folder_name=str(self.claims.get("name") or "archive"),
        )  # fmt: skip
        self.set_header("Content-Type", "application/zip")
        self.set_header("Accept-Ranges", "none")
        self.set_header("Content-Disposition", content_disposition(plan.filename))
        self.set_header("Cache-Control", "no-store")
        if not send_body:
            self.finish()
            return
        loop = asyncio.get_running_loop()
        metric = self.manager.metrics.transfer_bytes.labels("download")

        async def write(chunk: bytes) -> None:
            self.write(chunk)
            await self.flush()
            metric.inc(len(chunk))

        def send(chunk: bytes) -> None:
            # Called on the archive's worker thread; waits until the piece is on its way, so
            # that a slow client slows the archive down instead of piling it up in memory.
            asyncio.run_coroutine_threadsafe(write(chunk), loop).result()

        try:
            stats = await in_transfer_thread(
                storage.write_archive, folder, plan, send, compress=bool(self.claims.get("compress", True))
            )
        except (iostream.StreamClosedError, ConnectionError):
            self._drop_connection()
            return
        except storage.StorageError as e:
            if not self._headers_written:
                raise
            # Half an archive is out: end the connection without the last chunk, so that the
            # client sees an incomplete download rather than a complete-looking archive.
            log.warning("archive of %s stopped: %s", plan.paths, e)
            self._drop_connection()
            return
        if stats.skipped:
            log.info(
                "archive of %s left out %d links, special files or directories too deep (%d)",
                plan.paths, len(stats.skipped), stats.too_deep,
            )  # fmt: skip
        self.finish()


async def request_archive(handler: Any, name: str, data: dict[str, Any]) -> None:
    """``POST /folders/{name}/request-download`` with ``archive`` or ``paths``: a token for a ZIP.

    Called by ``folders.files``'s request-download handler (``handler``: its ``FolderHandler``).
    ``archive: true`` with ``path`` a directory (``""``: the whole folder) gives its contents,
    as Backend.AI's storage proxy does; ``paths`` (a list) gives those entries under their own
    names. ``compress: false`` stores instead of deflating. Needs ``ro`` on the folder; what is
    named is checked now (present, no link, nothing special) and again when the archive is made.
    """
    paths = data.get("paths")
    spec: str | list[str]
    if paths is not None:
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise APIError(400, "'paths' must be a non-empty list of paths")
        spec = [storage.normalize_relpath(p) for p in paths]
        if len(json.dumps(spec)) > MAX_ARCHIVE_PATHS_CHARS:
            raise APIError(400, "too many paths for one archive (they travel in the URL); archive their directory")
    else:
        spec = storage.normalize_relpath(handler.param(data, "path", default="", kind=str) or "")
    compress = handler.param(data, "compress", default=True, kind=bool)
    folder = await handler.folder(name, "ro")
    directory = await handler.directory(folder)
    plan = await asyncio.to_thread(storage.plan_archive, directory, spec, folder_name=folder.name)
    claims = {"op": "download", "archive": True, "paths": spec, "name": folder.name, "compress": compress}
    send_link(
        handler, DOWNLOAD_PATH, folder, claims,
        archive=True, path=plan.base, paths=list(plan.paths), filename=plan.filename,
    )  # fmt: skip


def send_link(handler: Any, endpoint: str, folder: Any, claims: dict[str, Any], **answer: Any) -> None:
    """Answer a request for a transfer with a token and the URL of ``endpoint`` that takes it.

    The token's claims name the folder and who asked besides ``claims``: the transfer endpoints
    trust the token alone, as Backend.AI's storage proxy does, and look nothing up about the caller.
    """
    claims = {
        **claims,
        "folder": str(folder.id),
        "host": folder.host,
        "user": handler.identity.username,
        "uid": str(handler.identity.user_id),
    }
    token = transfer_tokens.issue(handler.manager.transfer_secret, claims, ttl=handler.manager.transfer_token_lifetime)
    handler.send({"token": token, "url": handler.service_url(f"{endpoint}?token={token}"), **answer})


def _sendfile_all(sock: int, fd: int, offset: int, count: int, timeout: float) -> int:
    """``sendfile`` ``count`` bytes from ``offset`` to a non-blocking socket; returns what was sent.

    Stops early when the file ends (it shrank); raises :class:`TimeoutError` when the socket
    stays full for ``timeout`` seconds and :class:`ConnectionError` when the client is gone.
    """
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    sent = 0
    while sent < count:
        try:
            n = os.sendfile(sock, fd, offset + sent, count - sent)
        except BlockingIOError:
            if not poller.poll(timeout * 1000):
                raise TimeoutError(f"the client read nothing for {timeout} s") from None
            continue
        if n == 0:
            break
        sent += n
    return sent


handlers = [
    (r"/folders/_/tus/upload", TusUploadHandler),
    (DOWNLOAD_PATH, DownloadHandler),
]
