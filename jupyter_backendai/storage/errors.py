"""Errors of the folder store, each carrying the HTTP status the manager should answer with.

They are :class:`~jupyter_backendai.core.errors.Error` s of the matching kind (``NotFound`` here
is also an ``errors.NotFound``), and derive from :class:`ValueError` so that callers that only
know "bad input" still catch them. Messages name the *relative* path inside the folder and never a host path: they go to
users verbatim, and the store's root (where every user's data lives) is nobody's business.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from decimal import Decimal

from jupyter_backendai.core import errors
from jupyter_backendai.core.slots import format_amount

# The error classes only: the package passes these on as they are (``storage.NotFound``); the
# helpers below (human_size, show_path, translate_oserror) are for the store's own modules.
__all__ = [
    "AlreadyExists",
    "Conflict",
    "InsufficientStorage",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "RangeNotSatisfiable",
    "StorageError",
    "TooDeep",
    "UnknownHost",
    "UnsafePath",
    "UploadTooLarge",
]


class StorageError(errors.Error, ValueError):
    """Base class; also used as is for unexpected filesystem failures (500)."""

    status: int = 500

    @property
    def message(self) -> str:
        return self.reason


class UnsafePath(StorageError, errors.BadRequest):
    """The path could reach outside its folder (``..``, absolute, NUL, a symbolic link on the way)."""

    status = 400


class UnknownHost(StorageError, errors.BadRequest):
    """The storage host is not one this store serves."""

    status = 400


class PermissionDenied(StorageError, errors.Forbidden):
    """The filesystem refused (the hub or manager lacks permission on that entry)."""

    status = 403


class NotFound(StorageError, errors.NotFound):
    """The folder, an entry inside it, or an upload does not exist."""

    status = 404


class Conflict(StorageError, errors.Conflict):
    """The request clashes with what is there (wrong type, wrong upload offset, busy upload)."""

    status = 409


class AlreadyExists(Conflict):
    """The target name is taken."""


class QuotaExceeded(StorageError, errors.TooLarge):
    """The write would take the folder over its quota; the message has the numbers."""

    status = 413

    def __init__(
        self, *, adding: int, used: int, replaced: int, quota: int, more: bool = False, reserved: int = 0
    ) -> None:
        self.adding, self.used, self.replaced, self.quota, self.reserved = adding, used, replaced, quota, reserved
        after = used + reserved - replaced + adding
        what = f"more than {human_size(adding)}" if more else human_size(adding)
        held = f", {human_size(reserved)} held by uploads in progress" if reserved else ""
        super().__init__(
            f"the upload of {what} would take folder usage to {human_size(after)}, "
            f"over its capacity of {human_size(quota)} ({human_size(used)} used{held})"
        )


class TooDeep(StorageError, errors.BadRequest):
    """Directories nested deeper than the store goes (``safepath.MAX_DEPTH``); the message names where."""

    status = 400


class UploadTooLarge(StorageError, errors.TooLarge):
    """More bytes were sent than the upload declared (tus ``Upload-Length``)."""

    status = 413


class RangeNotSatisfiable(StorageError):
    """A ``Range`` header that is malformed or lies outside the file; ``size`` is for ``Content-Range: bytes */size``."""

    status = 416

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class InsufficientStorage(StorageError):
    """The disk (or the filesystem's own quota) is full."""

    status = 507


def human_size(n: int) -> str:
    """``12 MiB``, ``1.01 GiB (1086324736 B)``: the same wording as resource slots elsewhere."""
    return format_amount("mem", Decimal(n))


def show_path(parts: Sequence[str]) -> str:
    """How a relative path appears in messages: quoted with ``repr`` so odd characters stay visible."""
    return repr("/".join(parts)) if parts else "the folder root"


def translate_oserror(exc: OSError, parts: Sequence[str]) -> StorageError:
    """Map an :class:`OSError` to a store error naming ``parts``.

    ``str(exc)`` would include the host path, so only ``strerror`` is used.
    """
    shown = show_path(parts)
    code = exc.errno
    if code == errno.ENOENT:
        return NotFound(f"{shown} does not exist")
    if code in (errno.EEXIST, errno.ENOTEMPTY):
        return AlreadyExists(f"{shown} already exists") if code == errno.EEXIST else Conflict(f"{shown} is not empty")
    if code == errno.ENOTDIR:
        return Conflict(f"{shown} is not a directory")
    if code == errno.EISDIR:
        return Conflict(f"{shown} is a directory")
    if code == errno.ELOOP:
        return UnsafePath(f"{shown} is a symbolic link; symbolic links are not followed")
    if code == errno.ENAMETOOLONG:
        return UnsafePath(f"{shown} has a name that is too long")
    if code in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"permission denied on {shown}")
    if code == errno.EDQUOT:
        # The filesystem's own limit of this folder (storage.quota): its capacity, not the disk.
        return StorageError(f"{shown} could not be written: the folder is full (its capacity is reached)", status=413)
    if code == errno.ENOSPC:
        return InsufficientStorage(f"no space left on the storage for {shown}")
    return StorageError(f"{shown}: {exc.strerror or type(exc).__name__}")
