"""A session's home: where it is, whose it is, what the session puts there, what a folder may be named.

Every session runs as the user ``work`` (uid and gid 1000, never root) with the home
``/home/work``; each folder it mounts appears at ``/home/work/<folder name>``. The backends
(Docker, Swarm, Kubernetes, local), the folder store (which gives new folders to uid 1000), the
folder rules in the database and the manager's answers (``mount_path``) all read these
constants, so that the layout is said once.

Two rules on folder names, for two moments:

* :func:`check_folder_name`, when a folder is **created or renamed**: 1–64 characters after
  Unicode NFC normalisation; letters and digits of any script (users of the Korean console name
  folders in Korean; the directory on disk is named by the folder's id, so the name never
  reaches a file system), ``-``, ``_`` and ``.``; combining marks after another character (so
  that Devanagari or decomposed accents work). No white space, no ``/``, no other punctuation
  or symbols, no control or invisible format characters, not ``.`` or ``..``, not starting with
  ``-`` (it would read as an option to command-line tools). Names a session needs for itself
  (:data:`RESERVED_NAMES`, shell rc/profile files) are refused. ``.ssh`` stays allowed (F31:
  its ``authorized_keys`` is honoured beside the session's own key).
* :func:`check_mount_name`, when a folder is **mounted**: one safe path component for the mount
  point, whatever the database holds (rows older than a rule, or written by hand): not empty,
  not ``.``/``..``, no ``/``, no control character, no ``:`` (Docker's bind syntax
  ``host:container:mode`` has no escape for it), at most 255 bytes. A folder named like a file
  the session itself writes at start (:data:`SESSION_FILES`) is never mounted: it would hide
  that file. The other reserved names are only refused at creation, so that an old dot-folder
  that is automounted cannot stop every session of its owner.
"""

from __future__ import annotations

import re
import unicodedata

from . import errors

__all__ = [
    "GID",
    "HOME",
    "ID_CONTAINER",
    "MAX_NAME_LENGTH",
    "RESERVED_NAMES",
    "SESSION_FILES",
    "UID",
    "USERNAME",
    "FolderNameError",
    "check_folder_name",
    "check_mount_name",
    "is_reserved",
    "mount_path",
]

#: The session user's home, and where every folder is mounted (``<HOME>/<name>``).
HOME = "/home/work"
#: The session user's name; images create it with :data:`UID`/:data:`GID` (``useradd -u 1000``).
USERNAME = "work"
UID = 1000
GID = 1000
#: The session's private SSH key (F22), at ``<HOME>/id_container``.
ID_CONTAINER = "id_container"
#: What the backend writes into the home when a session starts; a folder there would hide it.
SESSION_FILES = frozenset({ID_CONTAINER})
#: Names no new folder may take: the session's own files, and what a session keeps in its home
#: for itself (Jupyter's settings, terminal settings), which a folder mounted there would hide.
RESERVED_NAMES = SESSION_FILES | frozenset({".jupyter", ".terminfo", ".tmux.conf"})
#: Shell start-up files (``.bashrc``, ``.zshrc``, ``.bash_profile``): also the session's own.
_RESERVED_PATTERNS = (re.compile(r"^\.[a-z0-9]+rc$"), re.compile(r"^\.[a-z0-9]+_profile$"))
MAX_NAME_LENGTH = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FolderNameError(errors.BadRequest, ValueError):
    """A folder name that breaks a rule (400); the message names the name and the rule."""


def mount_path(name: str, home: str = HOME) -> str:
    """Where the folder ``name`` appears inside a session."""
    return f"{home}/{name}"


def is_reserved(name: str) -> bool:
    """Whether ``name`` is one a session uses in its home itself (no new folder may take it)."""
    return name in RESERVED_NAMES or any(p.match(name) for p in _RESERVED_PATTERNS)


def check_folder_name(name: object) -> str:
    """Return the name of a new folder in NFC form, or raise :class:`FolderNameError`.

    NFC first, so that a name typed with decomposed accents is the same folder as the composed
    one, and the length limit counts what a person sees.
    """
    if not isinstance(name, str):
        raise FolderNameError(f"a folder name must be text, not {name!r}")
    if name and (name[0].isspace() or name[-1].isspace()):
        raise FolderNameError(f"folder name {name!r} starts or ends with a space")
    if any(c.isspace() for c in name):
        raise FolderNameError(f"folder name {name!r} contains a space: use '-' or '_' instead")
    name = unicodedata.normalize("NFC", name)
    if not name:
        raise FolderNameError("a folder name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise FolderNameError(f"folder name {name!r} has {len(name)} characters; the limit is {MAX_NAME_LENGTH}")
    if name in (".", ".."):
        raise FolderNameError(f"{name!r} cannot be a folder name")
    if "/" in name or "\\" in name:
        raise FolderNameError(f"folder name {name!r} contains a slash: folders cannot be nested")
    if name.startswith("-"):
        raise FolderNameError(f"folder name {name!r} starts with '-'")
    for i, c in enumerate(name):
        category = unicodedata.category(c)
        if c in "-_." or category[0] in "LN" or (category[0] == "M" and i > 0):
            continue
        raise FolderNameError(
            f"folder name {name!r} contains {c!r}: use letters, digits, '-', '_' or '.' (a leading '.' for automount)"
        )
    if is_reserved(name):
        raise FolderNameError(f"folder name {name!r} is reserved: sessions use {mount_path(name)} themselves")
    return name


def check_mount_name(name: object) -> str:
    """Return ``name`` if it is one safe path component for a mount point, else raise :class:`FolderNameError`."""
    if not isinstance(name, str) or not name:
        raise FolderNameError(f"folder name {name!r} is empty or not a string")
    if name in (".", ".."):
        raise FolderNameError(f"folder name {name!r} is not allowed: it is not a real directory name")
    if "/" in name:
        raise FolderNameError(f"folder name {name!r} contains '/': a folder name must be a single path component")
    if _CONTROL.search(name):
        raise FolderNameError(f"folder name {name!r} contains a control character")
    if ":" in name:
        raise FolderNameError(f"folder name {name!r} contains ':', which container mount syntax cannot express")
    if len(name.encode()) > 255:
        raise FolderNameError(f"folder name {name[:20]!r}... is longer than 255 bytes")
    return name
