"""What makes ``GET /folders`` cheap: the JSON of listed rows kept per row, and sizes measured in the background."""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from sqlalchemy.orm import Session as DB

from ... import storage
from ...db import folders as folder_db
from ...db.types import utcnow
from .common import folder_json

log = logging.getLogger(__name__)


class ListedJSON:
    """The JSON text of listed folders, kept per exact row and access (least recently used out).

    A row that did not change since the last listing (same columns, same permission, owner
    and limits: the whole key) has the same JSON; only new or changed rows are converted and
    encoded. There is nothing to invalidate: a change makes a different key. About 1.5 kB an
    entry: 20,000 entries (twenty users with a thousand folders each) hold some 30 MB.
    """

    def __init__(self, size: int = 20_000):
        self.size = size
        # key → (JSON text, usage_at, id, host): what the size refresh needs, without decoding again
        self._texts: OrderedDict[tuple, tuple[str, dt.datetime | None, uuid.UUID, str]] = OrderedDict()
        self._lock = threading.Lock()

    def texts(
        self,
        entries: list[folder_db.ListedFolder],
        decode: folder_db.RawFolderDecoder,
        stale_before: dt.datetime | None = None,
        stale_max: int = 0,
    ) -> tuple[list[str], list[tuple[uuid.UUID, str]]]:
        """The entries' JSON, and up to ``stale_max`` (id, host) measured before ``stale_before``, stalest first."""
        out = []
        stale: list[tuple[dt.datetime, int, uuid.UUID, str]] = []
        oldest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        with self._lock:
            texts = self._texts
            for e in entries:
                key = (e.raw, e.permission, e.via, e.owner_email, e.group_name, e.owner_limit)
                kept = texts.get(key)
                if kept is None:
                    f = decode(e.raw)
                    view = folder_json(f, e.permission, e.via, e.capacity, e.owner_email, e.group_name)
                    kept = texts[key] = (json.dumps(view), f["usage_at"], f["id"], f["host"])
                else:
                    texts.move_to_end(key)
                out.append(kept[0])
                if stale_before is not None and (kept[1] is None or kept[1] < stale_before):
                    stale.append((kept[1] or oldest, len(stale), kept[2], kept[3]))
            while len(texts) > self.size:
                texts.popitem(last=False)
        return out, [(fid, host) for _, _, fid, host in heapq.nsmallest(stale_max, stale)]


class UsageRefresh:
    """Measures folders' sizes in the background: a batch at a time, at most one batch a second.

    A listing hands over the stalest folders it showed; while a batch runs or within a second
    of the last one, further listings add nothing (they will hand the still-stale ones over
    again). So a user who keeps listing a thousand folders costs the walks of eight of them
    and one small write a second, whatever the listing rate. A folder without a directory
    yet holds nothing; one on a host this store does not serve is left alone.
    """

    BATCH = 8
    INTERVAL = 1.0

    def __init__(self) -> None:
        self._busy = False
        self._last = -self.INTERVAL
        self._lock = threading.Lock()

    def start(self, manager: Any, folders: list[tuple[uuid.UUID, str]]) -> asyncio.Future | None:
        now = time.monotonic()
        with self._lock:
            if self._busy or not folders or now - self._last < self.INTERVAL:
                return None
            self._busy, self._last = True, now
        return asyncio.get_running_loop().run_in_executor(None, self._run, manager, folders)

    def _run(self, manager: Any, folders: list[tuple[uuid.UUID, str]]) -> None:
        try:
            measured = []
            for folder_id, host in folders:
                at = utcnow()
                try:
                    measured.append((folder_id, *storage.usage(manager.store.path(host, folder_id)), at))
                except storage.NotFound:
                    measured.append((folder_id, 0, 0, at))
                except storage.StorageError:
                    continue
            manager.database.transaction(_record_usages, measured)
        except Exception:  # noqa: BLE001 - a background measurement must not take anything down
            log.warning("measuring folder sizes failed", exc_info=True)
        finally:
            with self._lock:
                self._busy = False


def _record_usages(db: DB, measured: list[tuple[uuid.UUID, int, int, dt.datetime]]) -> None:
    for folder_id, used, count, at in measured:
        folder_db.record_usage(db, folder_id, used, count, at)


REFRESH = UsageRefresh()
LISTED = ListedJSON()
_DECODERS: dict[str, folder_db.RawFolderDecoder] = {}


def decoder(db: DB) -> folder_db.RawFolderDecoder:
    dialect = db.get_bind().dialect
    decoder = _DECODERS.get(dialect.name)
    if decoder is None:
        decoder = _DECODERS[dialect.name] = folder_db.RawFolderDecoder(dialect)
    return decoder


def in_group(folder: dict[str, Any], group_name: str | None, wanted: str) -> bool:
    """``?group=``: the folders of that group (by id or name), and every user folder."""
    return folder["group_id"] is None or wanted in (str(folder["group_id"]), group_name)
