"""Where folders live: ``<root>/<host>/<two hex chars>/<folder uuid hex>``.

The two-character bucket (the first byte of the id) spreads folders over 256 directories per
host, so no directory grows to millions of entries on a big installation. A host is a name
the operator configures (``local``, ``nfs``...), usually a mount point under the root.
"""

from __future__ import annotations

import os
import re
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

from ._fs import DIR_FLAGS, open_subdir, oserrors, rmtree_at
from .errors import AlreadyExists, UnknownHost, UnsafePath
from .uploads import UploadStore

__all__ = ["FolderStore"]

_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _folder_uuid(folder_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(folder_id, uuid.UUID):
        return folder_id
    try:
        return uuid.UUID(str(folder_id))
    except ValueError:
        raise UnsafePath(f"{folder_id!r} is not a folder id") from None


class FolderStore(UploadStore):
    """The folders of one storage root, one directory each, plus resumable uploads.

    Folder contents are handled by the functions of :mod:`jupyter_backendai.storage.files`
    on ``store.path(host, folder_id)``.
    """

    def __init__(self, root: Path | str, hosts: Iterable[str] = ("local",)) -> None:
        self.root = Path(root)
        names = (hosts,) if isinstance(hosts, str) else tuple(hosts)
        for host in names:
            # Hosts become directory names: no separators, no dot-names (".uploads" is ours).
            if not isinstance(host, str) or not _HOST.fullmatch(host):
                raise UnknownHost(f"{host!r} is not a valid storage host name")
        self.hosts: tuple[str, ...] = names
        self.root.mkdir(parents=True, exist_ok=True)

    def _host_dir(self, host: str) -> Path:
        if host not in self.hosts:
            raise UnknownHost(f"unknown storage host {host!r}; this store serves {', '.join(self.hosts)}")
        return self.root / host

    def path(self, host: str, folder_id: uuid.UUID | str) -> Path:
        """The host directory of a folder (whether it exists or not)."""
        fid = _folder_uuid(folder_id)
        return self._host_dir(host) / fid.hex[:2] / fid.hex

    def exists(self, host: str, folder_id: uuid.UUID | str) -> bool:
        """Whether the folder's directory is there (a link in its place does not count)."""
        try:
            st = os.lstat(self.path(host, folder_id))
        except FileNotFoundError:
            return False
        return stat.S_ISDIR(st.st_mode)

    def create(
        self,
        host: str,
        folder_id: uuid.UUID | str,
        *,
        owner_uid: int = 1000,
        owner_gid: int = 1000,
        mode: int = 0o755,
    ) -> Path:
        """Make the folder's directory; owned by the session user (uid 1000) when we run as root.

        Not root (a developer's laptop, the ``local`` backend) it stays ours: chown would fail
        and the sessions then run as us anyway.
        """
        fid = _folder_uuid(folder_id)
        path = self.path(host, fid)
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        with oserrors(()):
            bucket = os.open(path.parent, DIR_FLAGS)
        try:
            try:
                os.mkdir(fid.hex, 0o700, dir_fd=bucket)
            except FileExistsError:
                raise AlreadyExists(f"folder {fid} already exists on host {host!r}") from None
            fd = open_subdir(fid.hex, bucket, ())
            try:
                with oserrors(()):
                    os.fchmod(fd, mode)
                    if os.geteuid() == 0:
                        os.fchown(fd, owner_uid, owner_gid)
            finally:
                os.close(fd)
        finally:
            os.close(bucket)
        return path

    def delete(self, host: str, folder_id: uuid.UUID | str) -> None:
        """Remove the folder and everything in it, following no link; a folder already gone is fine."""
        path = self.path(host, folder_id)
        try:
            bucket = os.open(path.parent, DIR_FLAGS)
        except FileNotFoundError:
            return
        try:
            try:
                st = os.stat(path.name, dir_fd=bucket, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISDIR(st.st_mode):
                rmtree_at(bucket, path.name, ())
            else:
                with oserrors(()):
                    os.unlink(path.name, dir_fd=bucket)
        finally:
            os.close(bucket)
