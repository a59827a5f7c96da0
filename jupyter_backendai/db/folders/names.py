"""Folder names and the other plain rules of a folder: permissions, usage modes, where it is mounted.

* Names: the rules are :func:`jupyter_backendai.core.home.check_folder_name` (with the rest of
  the session home's layout, which they protect); here they raise the database layer's
  :class:`~..admin.AdminError` like every other check of this package.
* Names are unique per owner only (the database enforces it); every folder is also reachable
  by its id, so functions take a folder as its row, its id or its name.
"""

from __future__ import annotations

import uuid
from typing import Literal

from ...core import home
from .. import admin
from .. import models as m

Perm = Literal["ro", "rw", "wd"]
MAX_NAME_LENGTH = home.MAX_NAME_LENGTH
RESERVED_NAMES = home.RESERVED_NAMES
USAGE_MODES = ("general", "data", "model")
MOUNT_ROOT = home.HOME

#: ro < rw < wd: each permission allows what the lower ones do.
RANK = {"ro": 0, "rw": 1, "wd": 2}


def check_folder_name(name: str) -> str:
    """Return the name in NFC form, or raise AdminError naming the rule it breaks."""
    try:
        return home.check_folder_name(name)
    except home.FolderNameError as e:
        raise admin.AdminError(str(e)) from None


def parse_permission(value: str | m.FolderPermission) -> m.FolderPermission:
    if isinstance(value, m.FolderPermission):
        return value
    try:
        return m.FolderPermission(value)
    except ValueError:
        raise admin.AdminError(f"invalid folder permission {value!r}: choose one of ro, rw, wd") from None


def as_id(ref: m.VFolder | uuid.UUID | str) -> uuid.UUID | None:
    """The folder id ``ref`` is or holds; None when it is a name (or anything else)."""
    if isinstance(ref, m.VFolder):
        return ref.id
    if isinstance(ref, uuid.UUID):
        return ref
    try:
        return uuid.UUID(ref)
    except (TypeError, ValueError, AttributeError):
        return None


def folder_label(ref: m.VFolder | uuid.UUID | str) -> str:
    """How a message names the folder ``ref`` refers to."""
    return ref.name if isinstance(ref, m.VFolder) else str(ref)
