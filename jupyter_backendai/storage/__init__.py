"""The folder (vfolder) store on a filesystem.

Used by the hub (creating folders and mounting them into sessions) and by the manager's REST
API (file browser, tus uploads, ranged downloads). No database and no HTTP here: callers map
the :class:`StorageError` family to answers with each error's ``status``.

- :class:`FolderStore`: ``<root>/<host>/<xx>/<folder uuid hex>`` directories, and resumable
  uploads under ``<root>/.uploads/``.
- :mod:`.files`: operations inside one folder (list, stat, mkdir, rename, move, delete,
  read, atomic write, usage), all relative paths checked and walked by descriptor so that
  neither ``..`` nor a symbolic link, even one planted by a session mid-operation, leads out.
- :mod:`.ranges`: ``Range`` header parsing and ranged reads.
- :mod:`.archive`: a directory or several entries as a streamed ZIP (no temporary file, no link followed).
- :mod:`.quota`: folder capacities the filesystem enforces (XFS/ext4 project quotas, btrfs
  qgroups), chosen per storage host; advisory elsewhere.
"""

from __future__ import annotations

from . import errors
from .archive import ArchivePlan, ArchiveStats, plan_archive, write_archive
from .errors import *  # noqa: F403
from .files import (
    TEMP_PREFIX,
    FileEntry,
    delete,
    list_dir,
    mkdir,
    move,
    normalize_relpath,
    open_read,
    rename,
    resolve,
    stat,
    usage,
    write_atomic,
)
from .ranges import content_range, parse_range, read_range
from .safepath import split_relpath
from .store import FolderStore
from .uploads import UploadInfo, UploadWriter

__all__ = [
    *errors.__all__,
    "TEMP_PREFIX",
    "ArchivePlan",
    "ArchiveStats",
    "FileEntry",
    "FolderStore",
    "UploadInfo",
    "UploadWriter",
    "content_range",
    "delete",
    "list_dir",
    "mkdir",
    "move",
    "normalize_relpath",
    "open_read",
    "parse_range",
    "plan_archive",
    "read_range",
    "rename",
    "resolve",
    "split_relpath",
    "stat",
    "usage",
    "write_archive",
    "write_atomic",
]
