"""``/folders/{name}/`` file operations: directories, listings, rename, move, delete, and upload/download links.

The links point at the transfer endpoints (:mod:`..api_transfer`), which check the signed token
issued here and do the bytes' work.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import stat as stat_module

from ... import storage
from ...db import folders as folder_db
from .. import api_transfer
from ..base import APIError
from .common import DOWNLOAD_PATH, FOLDER_PATH, TUS_PATH, FolderHandler


class MkdirHandler(FolderHandler):
    """``POST /folders/{name}/mkdir`` {path (one or a list), parents, exist_ok} → {results}."""

    async def post(self, name: str) -> None:
        data = self.json_body()
        paths = self.need(data, "path")
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise APIError(400, "'path' must be a path or a list of paths")
        parents = self.param(data, "parents", default=False, kind=bool)
        exist_ok = self.param(data, "exist_ok", default=False, kind=bool)
        folder = await self.folder(name, "rw")
        directory = await self.directory(folder)

        def make() -> list[str]:
            made = []
            for path in paths:
                try:
                    made.append(storage.mkdir(directory, path, parents=parents))
                except storage.AlreadyExists:
                    st = storage.stat(directory, path)
                    if not exist_ok or st.type != "dir":
                        raise
                    made.append(storage.normalize_relpath(path))
            return made

        self.send({"results": await asyncio.to_thread(make)}, 201)


def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return dt.datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return 0.0


class FilesHandler(FolderHandler):
    """``GET /folders/{name}/files?path=`` → {path, items}: a directory listing (links shown as links)."""

    async def get(self, name: str) -> None:
        path = self.param(self.json_body(), "path", default="", kind=str)
        folder = await self.folder(name, "ro")
        directory = await self.directory(folder)
        entries = await asyncio.to_thread(storage.list_dir, directory, path)
        items = [{**e.as_dict(), "modified": e.mtime} for e in entries]
        # Backend.AI's own shape too: "files" is a JSON string of {filename, size, mtime (epoch), mode}.
        legacy = [
            {
                "filename": e.name,
                "size": e.size,
                "mtime": _epoch(e.mtime),
                "mode": stat_module.filemode(e.mode) if isinstance(e.mode, int) else str(e.mode),
                "type": e.type,
            }
            for e in entries
        ]
        self.send({"path": storage.normalize_relpath(path), "items": items, "files": json.dumps(legacy)})


class RenameFileHandler(FolderHandler):
    """``POST /folders/{name}/rename-file`` {target_path, new_name} (rw): rename within its directory."""

    async def post(self, name: str) -> None:
        data = self.json_body()
        target = self.need(data, "target_path", "path", kind=str)
        new_name = self.need(data, "new_name", kind=str)
        folder = await self.folder(name, "rw")
        directory = await self.directory(folder)
        path = await asyncio.to_thread(storage.rename, directory, target, new_name)
        self.send({"path": path})


class MoveFileHandler(FolderHandler):
    """``POST /folders/{name}/move-file`` {src, dst} (rw).

    As Backend.AI (``shutil.move``): into ``dst`` when it is a directory, else to the path
    ``dst`` (its directory must exist and the name be free). Never over an existing entry.
    """

    async def post(self, name: str) -> None:
        data = self.json_body()
        src = self.need(data, "src", kind=str)
        dst = self.param(data, "dst", default="", kind=str)
        folder = await self.folder(name, "rw")
        directory = await self.directory(folder)
        self.send({"path": await asyncio.to_thread(_move, directory, src, dst)})


def _move(directory: str, src: str, dst: str) -> str:
    src_parts = storage.split_relpath(src)
    dst_parts = storage.split_relpath(dst)
    if not src_parts:
        raise storage.UnsafePath("the folder root cannot be moved")
    try:
        is_dir = storage.stat(directory, dst).type == "dir"
    except storage.NotFound:
        is_dir = False
    if is_dir:
        return storage.move(directory, src, dst)
    parent, new_name = dst_parts[:-1], dst_parts[-1]
    if parent == src_parts[:-1]:
        return storage.rename(directory, src, new_name)
    if new_name == src_parts[-1]:
        return storage.move(directory, src, "/".join(parent))
    # Rename where it is, then move; undo the rename if the move is refused.
    if storage.stat(directory, "/".join(parent)).type != "dir":
        raise storage.Conflict(f"{'/'.join(parent)!r} is not a directory")
    renamed = storage.rename(directory, src, new_name)
    try:
        return storage.move(directory, renamed, "/".join(parent))
    except storage.StorageError:
        storage.rename(directory, renamed, src_parts[-1])
        raise


class DeleteFilesHandler(FolderHandler):
    """``DELETE /folders/{name}/delete-files`` (or POST) {files: [...], recursive} (wd).

    All paths are checked before anything is removed (the store does that), so one bad path
    deletes nothing.
    """

    async def delete(self, name: str) -> None:
        data = self.json_body()
        files = self.need(data, "files", "file", "path")
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list) or not all(isinstance(p, str) for p in files):
            raise APIError(400, "'files' must be a list of paths")
        recursive = self.param(data, "recursive", default=False, kind=bool)
        folder = await self.folder(name, "wd")
        directory = await self.directory(folder)
        await asyncio.to_thread(storage.delete, directory, files, recursive)
        await self.run_db(folder_db.mark_usage_stale, folder.id)
        self.send({"deleted": [storage.normalize_relpath(p) for p in files]})

    post = delete


class RequestUploadHandler(FolderHandler):
    """``POST /folders/{name}/request-upload`` {path, size} → {token, url} for the tus endpoint (rw).

    The upload session is made now, so that an unsafe target or a size over the folder's
    capacity is refused before any byte is sent (413 with the numbers).
    """

    async def post(self, name: str) -> None:
        data = self.json_body()
        path = self.need(data, "path", kind=str)
        size = self.param(data, "size", default=None, kind=int)
        if size is None or size < 0:
            raise APIError(400, "'size' (bytes, zero or more) is required")
        limit = self.manager.max_upload_size
        if size > limit:
            raise APIError(
                413, f"an upload of {size} bytes is larger than the largest single upload, {limit} bytes", size=size,
                max_upload_size=limit,
            )  # fmt: skip
        folder = await self.folder(name, "rw")
        await self.directory(folder)
        relpath = storage.normalize_relpath(path)
        try:
            upload_id = await asyncio.to_thread(
                self.store.begin_upload, folder.host, folder.id, relpath, size, quota=folder.capacity,
                expire_after=self.manager.transfer_token_lifetime,
            )  # fmt: skip
        except storage.QuotaExceeded as e:
            raise APIError(
                413,
                str(e),
                size=size,
                used_bytes=e.used,
                replaced_bytes=e.replaced,
                quota=e.quota,
                reserved_bytes=e.reserved,
            ) from None
        claims = {"op": "upload", "upload": upload_id, "path": relpath, "size": size, "quota": folder.capacity}
        api_transfer.send_link(self, TUS_PATH, folder, claims, path=relpath)


class RequestDownloadHandler(FolderHandler):
    """``POST /folders/{name}/request-download`` {path, archive, paths} → {token, url} (ro).

    A regular file; with ``archive`` (a directory) or ``paths`` (entries) a streamed ZIP, see
    ``api_transfer.request_archive``.
    """

    async def post(self, name: str) -> None:
        data = self.json_body()
        if self.param(data, "archive", default=False, kind=bool) or "paths" in data:
            await api_transfer.request_archive(self, name, data)
            return
        path = self.need(data, "path", kind=str)
        folder = await self.folder(name, "ro")
        directory = await self.directory(folder)
        entry = await asyncio.to_thread(storage.stat, directory, path)
        if entry.type == "symlink":
            raise APIError(400, f"{path!r} is a symbolic link; symbolic links are not followed")
        if entry.type != "file":
            raise APIError(400, f"{path!r} is a {entry.type}, not a file; only files can be downloaded")
        relpath = storage.normalize_relpath(path)
        claims = {"op": "download", "path": relpath, "size": entry.size}
        api_transfer.send_link(self, DOWNLOAD_PATH, folder, claims, path=relpath)


handlers = [
    (rf"{FOLDER_PATH}/mkdir", MkdirHandler),
    (rf"{FOLDER_PATH}/files", FilesHandler),
    (rf"{FOLDER_PATH}/rename-file", RenameFileHandler),
    (rf"{FOLDER_PATH}/move-file", MoveFileHandler),
    (rf"{FOLDER_PATH}/delete-files", DeleteFilesHandler),
    (rf"{FOLDER_PATH}/request-upload", RequestUploadHandler),
    (rf"{FOLDER_PATH}/request-download", RequestDownloadHandler),
]
