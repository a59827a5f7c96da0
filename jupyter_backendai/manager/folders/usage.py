"""``/folders/_/usage``, ``/folders/{name}/usage`` and ``/folders/_/quota``: what a folder holds and may hold."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ... import storage
from ...db import folders as folder_db
from ...db import models as m
from ...db.types import utcnow
from ..base import APIError
from .common import FOLDER_PATH, FolderHandler, FolderRef, folder_capacity


class FolderUsageHandler(FolderHandler):
    """``GET /folders/_/usage?id=`` and ``GET /folders/{name}/usage`` → bytes, files and capacity.

    Where the storage enforces capacities (``storage.quota``) the numbers are the quota's: no
    walk of the folder (``usage_source`` ``quota``; btrfs counts no files, so the last measured
    count is given). Elsewhere the folder is walked (``measured``).
    """

    async def get(self, name: str | None = None) -> None:
        if name is None:
            name = self.need(self.json_body(), "id", "vfolder_id", "name", kind=str)
        folder = await self.folder(name, "ro")
        directory = await self.directory(folder)
        at = utcnow()
        counted = await asyncio.to_thread(self.store.quota_usage, folder.host, folder.id)
        if counted is not None:
            used, count = counted
            source = "quota"
            if count is None:
                count = await self.run_db(_stored_file_count, folder.id)
        else:
            used, count = await asyncio.to_thread(storage.usage, directory)
            source = "measured"
        await self.run_db(folder_db.record_usage, folder.id, used, count, at)  # what listings show as cur_size
        limits = self.store.quota(folder.host)
        self.send(
            {
                "id": folder.id.hex,
                "name": folder.name,
                "used_bytes": used,
                "file_count": count,
                "quota": folder.capacity,
                "max_size": folder.capacity,
                "over_capacity": bool(folder.capacity and used > folder.capacity),
                "usage_source": source,
                "capacity_enforced": counted is not None,
                "storage_quota": limits.kind,
            }
        )


def _stored_file_count(db: DB, folder_id: uuid.UUID) -> int:
    return db.scalar(select(m.VFolder.file_count).where(m.VFolder.id == folder_id)) or 0


class FolderQuotaHandler(FolderHandler):
    """Backend.AI's ``GET /folders/_/quota`` {folder_host, id} → {used_bytes, limit_bytes} and
    ``POST /folders/_/quota`` {folder_host, id, input: {size_bytes}} → {size_bytes}.

    Reading needs ``ro``; changing is for who may rename the folder (its owner, admins of a
    group folder's domain), up to the owner's policy's folder capacity (400 past it). The
    answer's ``size_bytes`` is the folder's own quota (0: none); its capacity (``max_size``
    elsewhere) is that or the policy's, the lower. The new capacity is set on the storage
    right away where it enforces capacities, so that sessions running now are held to it.
    """

    async def get(self) -> None:
        folder = await self.folder(self.need(self.json_body(), "id", "vfolder_id", kind=str), "ro")
        await self.directory(folder)
        counted = await asyncio.to_thread(self.store.quota_usage, folder.host, folder.id)
        if counted is None:
            used = await self.run_db(_stored_used_bytes, folder.id)
        else:
            used = counted[0]
        self.send(
            {
                "used_bytes": used,
                "limit_bytes": folder.capacity or 0,
                "enforced": counted is not None,
                "storage_quota": self.store.quota(folder.host).kind,
            }
        )

    async def post(self) -> None:
        data = self.json_body()
        ref = self.need(data, "id", "vfolder_id", kind=str)
        given = data.get("input")
        size = given.get("size_bytes") if isinstance(given, dict) else data.get("size_bytes")
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise APIError(400, "'input.size_bytes' (bytes, 0 for none) is required")

        def change(db: DB) -> tuple[FolderRef, int | None]:
            folder = folder_db.set_folder_quota(db, self.me(db), ref, size)
            capacity = folder_capacity(db, folder)
            return FolderRef(folder.id, folder.host, folder.name, "wd", "owner", capacity), folder.quota

        folder, quota = await self.run_db(change)
        await self.directory(folder)
        await asyncio.to_thread(self.store.set_capacity, folder.host, folder.id, folder.capacity)
        self.send({"size_bytes": quota or 0, "max_size": folder.capacity})


def _stored_used_bytes(db: DB, folder_id: uuid.UUID) -> int:
    return db.scalar(select(m.VFolder.used_bytes).where(m.VFolder.id == folder_id)) or 0


# ``/folders/_/usage`` before ``/folders/{name}/usage``, which would read ``_`` as a folder's name.
handlers = [
    (r"/folders/_/usage", FolderUsageHandler),
    (r"/folders/_/quota", FolderQuotaHandler),
    (rf"{FOLDER_PATH}/usage", FolderUsageHandler),
]
