"""Folder names and the other plain rules of a folder: permissions, usage modes, where it is mounted.

* Names: 1–64 characters after Unicode NFC normalisation; letters and digits of any script
  (users of the Korean console name folders in Korean; the directory on disk is named by the
  folder's id, so the name never reaches a file system), ``-``, ``_`` and ``.``; combining marks
  after another character (so that Devanagari or decomposed accents work). No white space, no
  ``/``, no other punctuation or symbols, no control or invisible format characters, not ``.`` or
  ``..``, not starting with ``-`` (it would read as an option to command-line tools). Names a
  session needs for itself (:data:`RESERVED_NAMES`, shell rc/profile files) are refused because
  the folder is mounted at ``/home/work/<name>``. ``.ssh`` stays allowed (F31).
* Names are unique per owner only (the database enforces it); every folder is also reachable
  by its id, so functions take a folder as its row, its id or its name.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Literal

from .. import admin
from .. import models as m

Perm = Literal["ro", "rw", "wd"]
MAX_NAME_LENGTH = 64
#: What a session puts at ``/home/work/<name>`` itself; a folder mounted there would hide it.
RESERVED_NAMES = frozenset({"id_container", ".jupyter", ".terminfo", ".tmux.conf"})
_RESERVED_PATTERNS = (re.compile(r"^\.[a-z0-9]+rc$"), re.compile(r"^\.[a-z0-9]+_profile$"))
USAGE_MODES = ("general", "data", "model")
MOUNT_ROOT = "/home/work"

#: ro < rw < wd: each permission allows what the lower ones do.
RANK = {"ro": 0, "rw": 1, "wd": 2}


def check_folder_name(name: str) -> str:
    """Return the name in NFC form, or raise AdminError naming the rule it breaks.

    NFC first, so that a name typed with decomposed accents is the same folder as the composed
    one, and the length limit counts what a person sees.
    """
    if not isinstance(name, str):
        raise admin.AdminError(f"a folder name must be text, not {name!r}")
    if name and (name[0].isspace() or name[-1].isspace()):
        raise admin.AdminError(f"folder name {name!r} starts or ends with a space")
    if any(c.isspace() for c in name):
        raise admin.AdminError(f"folder name {name!r} contains a space: use '-' or '_' instead")
    name = unicodedata.normalize("NFC", name)
    if not name:
        raise admin.AdminError("a folder name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise admin.AdminError(f"folder name {name!r} has {len(name)} characters; the limit is {MAX_NAME_LENGTH}")
    if name in (".", ".."):
        raise admin.AdminError(f"{name!r} cannot be a folder name")
    if "/" in name or "\\" in name:
        raise admin.AdminError(f"folder name {name!r} contains a slash: folders cannot be nested")
    if name.startswith("-"):
        raise admin.AdminError(f"folder name {name!r} starts with '-'")
    for i, c in enumerate(name):
        category = unicodedata.category(c)
        if c in "-_." or category[0] in "LN" or (category[0] == "M" and i > 0):
            continue
        raise admin.AdminError(
            f"folder name {name!r} contains {c!r}: use letters, digits, '-', '_' or '.' (a leading '.' for automount)"
        )
    if name in RESERVED_NAMES or any(p.match(name) for p in _RESERVED_PATTERNS):
        raise admin.AdminError(f"folder name {name!r} is reserved: sessions use {MOUNT_ROOT}/{name} themselves")
    return name


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
