"""File transfer: tus 1.0.0 resumable uploads and ranged downloads, authorised by a transfer token.

``POST /folders/{name}/request-upload`` (``api_folders``) checks the caller's permission and
the folder's capacity, starts the upload session in the store and hands out a short-lived
token naming it; ``request-download`` does the same for one file. The endpoints here are
``public`` (no keypair signature: the URL is all a browser or ``tuspy`` has) and trust the
token alone, verified on every request: a tampered, malformed or expired token is 401, a
token for the other operation 403.

Uploads (``/folders/_/tus/upload?token=``): ``OPTIONS`` (discovery, no token needed),
``HEAD`` (offset), ``PATCH`` (append), ``DELETE`` (termination) and ``POST`` (tus
"creation", for clients such as ``tuspy`` that insist on creating the upload themselves: the
session already exists, so it only answers its URL in ``Location``). The body is streamed:
chunks are buffered up to :data:`FLUSH_BYTES` and appended to the store on a worker thread,
so neither the event loop blocks nor a whole file sits in memory. If the client goes away
mid-request, what arrived is still appended, so it resumes from there. When the offset
reaches the declared length, the file is moved into place atomically.

Downloads (``/folders/_/download?token=``): ``GET``/``HEAD`` with ``Range`` (one range;
206 with ``Content-Range``, 416 when unsatisfiable), read in :data:`CHUNK_BYTES` pieces on a
worker thread and flushed one by one.
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse
from typing import Any, BinaryIO

from tornado import iostream, web

from .. import storage
from . import transfer_tokens
from .base import APIError, APIHandler

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination"
#: Bytes of an upload kept in memory before they are appended to the store.
FLUSH_BYTES = 4 * 1024 * 1024
#: Bytes read from disk per write to the client when downloading.
CHUNK_BYTES = 4 * 1024 * 1024  # fewer thread hand-offs and flushes per GiB; still bounded memory


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
        self._buffer = bytearray()
        self._error: APIError | None = None
        self._offset = 0
        self._accepted = 0
        self._remaining = 0
        self._quota_checked = False
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
        """Refuse a bad PATCH before its body arrives (tornado reads it only after ``prepare``)."""
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
        self._offset = offset
        self._remaining = info.size - offset
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self._remaining:
            raise APIError(
                413, f"this PATCH sends {length} bytes; the upload has {self._remaining} bytes left to its declared"
                f" length of {info.size}", offset=offset, size=info.size,
            )  # fmt: skip
        # Accept what this upload still needs (plus a margin, so that an overflow gets a 413 from
        # data_received) whatever the server-wide body limit is.
        self.request.connection.set_max_body_size(self._remaining + 64 * 1024)
        self._patching = True

    # --- the streamed body -------------------------------------------------------------------

    async def data_received(self, chunk: bytes) -> None:
        """Buffer a piece of the body; append when the buffer is full. Never raises (see ``patch``)."""
        if not self._patching or self._error is not None:
            return
        if self._accepted + len(chunk) > self._remaining:
            self._error = APIError(
                413, f"the body is longer than the {self._remaining} bytes left of the upload's declared length"
            )
            self._buffer = bytearray()
            return
        self._accepted += len(chunk)
        self._buffer += chunk
        if len(self._buffer) >= FLUSH_BYTES:
            await self._flush()

    async def _flush_and_sync(self) -> None:
        await self._flush()
        await asyncio.to_thread(self.store.sync, self.upload_id)

    async def _flush(self) -> None:
        """Append the buffer to the store (one writer at a time); a failure is kept for the answer."""
        async with self._lock:
            if not self._buffer or self._error is not None:
                return
            data, self._buffer = self._buffer, bytearray()
            # The folder's capacity is re-checked once per request: usage may have grown since request-upload.
            quota = None if self._quota_checked else self.claims.get("quota")
            self._quota_checked = True
            try:
                self._offset = await asyncio.to_thread(
                    self.store.append, self.upload_id, self._offset, data, quota=quota, durable=False
                )
            except storage.QuotaExceeded as e:
                self._error = APIError(413, str(e), used_bytes=e.used, quota=e.quota, size=e.adding)
                return
            except storage.StorageError as e:
                self._error = APIError(e.status if 400 <= e.status < 500 else 500, str(e))
                return
            self.manager.metrics.transfer_bytes.labels("upload").inc(len(data))

    def on_connection_close(self) -> None:
        """The client went away mid-body: keep what arrived, so that a resumed upload starts there."""
        if self._patching and self._buffer and not self._finished:
            self._closing = asyncio.ensure_future(self._flush_and_sync())
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
        await asyncio.to_thread(self.store.sync, self.upload_id)
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
        return info


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the real name in RFC 5987 form for other scripts."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    quoted = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


class DownloadHandler(TransferHandler):
    """``GET|HEAD /folders/_/download?token=``: one file, whole or one byte range, streamed."""

    op = "download"

    async def get(self) -> None:
        await self._serve(send_body=True)

    async def head(self) -> None:
        await self._serve(send_body=False)

    async def _serve(self, *, send_body: bool) -> None:
        relpath = str(self.claims["path"])
        f: BinaryIO = await asyncio.to_thread(storage.open_read, self.folder_path(), relpath)
        try:
            size = os.fstat(f.fileno()).st_size
            try:
                byte_range = storage.parse_range(self.request.headers.get("Range"), size)
            except storage.RangeNotSatisfiable as e:
                raise APIError(416, str(e), headers={"Content-Range": f"bytes */{size}"}, size=size) from None
            start, end = byte_range if byte_range is not None else (0, size - 1)
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Accept-Ranges", "bytes")
            self.set_header("Content-Disposition", content_disposition(relpath.rsplit("/", 1)[-1]))
            self.set_header("Cache-Control", "no-store")
            self.set_header("Content-Length", str(max(end - start + 1, 0)))
            if byte_range is not None:
                self.set_status(206)
                self.set_header("Content-Range", storage.content_range(start, end, size))
            if send_body:
                await asyncio.to_thread(f.seek, start)
                remaining = end - start + 1
                while remaining > 0:
                    chunk = await asyncio.to_thread(f.read, min(CHUNK_BYTES, remaining))
                    if not chunk:
                        break  # the file shrank meanwhile: the client sees a short body
                    remaining -= len(chunk)
                    self.write(chunk)
                    try:
                        await self.flush()
                    except iostream.StreamClosedError:
                        return  # the client went away
                    self.manager.metrics.transfer_bytes.labels("download").inc(len(chunk))
        finally:
            f.close()
        self.finish()


handlers = [
    (r"/folders/_/tus/upload", TusUploadHandler),
    (r"/folders/_/download", DownloadHandler),
]
