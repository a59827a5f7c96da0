"""Where folders live: ``<root>/<host>/<two hex chars>/<folder uuid hex>``.

The two-character bucket (the first byte of the id) spreads folders over 256 directories per
host, so no directory grows to millions of entries on a big installation. A host is a name
the operator configures (``local``, ``nfs``...), usually a mount point under the root.

Where a host's filesystem has quotas (:mod:`.quota`), folders are made so that it can limit
each one (a btrfs subvolume, an XFS/ext4 project) and their capacities are set there too.
"""

from __future__ import annotations

import os
import re
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

from ..core import home
from . import quota as quotas
from .errors import AlreadyExists, NotFound, StorageError, UnknownHost, UnsafePath
from .safepath import DIR_FLAGS, open_subdir, oserrors, rmtree_at
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

    def quota(self, host: str) -> quotas.FolderQuota:
        """How the filesystem of ``host`` limits folders (probed once per directory and mount)."""
        directory = self._host_dir(host)
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        return quotas.probe(directory)

    def create(
        self,
        host: str,
        folder_id: uuid.UUID | str,
        *,
        capacity: int | None = None,
        owner_uid: int = home.UID,
        owner_gid: int = home.GID,
        mode: int = 0o755,
    ) -> Path:
        """Make the folder's directory; owned by the session user (uid 1000) when we run as root.

        Not root (a developer's laptop, the ``local`` backend) it stays ours: chown would fail
        and the sessions then run as us anyway. ``capacity`` (bytes, None: unlimited) is set
        where the host's filesystem enforces it; a capacity that cannot be set removes the
        directory again and raises.
        """
        fid = _folder_uuid(folder_id)
        path = self.path(host, fid)
        limits = self.quota(host)
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        with oserrors(()):
            bucket = os.open(path.parent, DIR_FLAGS)
        try:
            try:
                limits.make_dir(bucket, fid.hex)
            except FileExistsError:
                raise AlreadyExists(f"folder {fid} already exists on host {host!r}") from None
            fd = open_subdir(fid.hex, bucket, ())
            try:
                with oserrors(()):
                    os.fchmod(fd, mode)
                    if os.geteuid() == 0:
                        os.fchown(fd, owner_uid, owner_gid)
                self._apply(limits, fd, capacity)
            except BaseException:
                os.close(fd)
                fd = -1
                rmtree_at(bucket, fid.hex, ())
                raise
            finally:
                if fd >= 0:
                    os.close(fd)
        finally:
            os.close(bucket)
        return path

    def ensure(self, host: str, folder_id: uuid.UUID | str, *, capacity: int | None = None) -> Path:
        """The folder's directory, made if missing (a folder created by the CLI or the db layer),
        with ``capacity`` set where the filesystem enforces it (it may have changed since)."""
        try:
            return self.create(host, folder_id, capacity=capacity)
        except AlreadyExists:
            self.set_capacity(host, folder_id, capacity)
            return self.path(host, folder_id)

    def set_capacity(self, host: str, folder_id: uuid.UUID | str, capacity: int | None) -> bool:
        """Set the folder's capacity where the filesystem enforces it; True if it does for this folder."""
        limits = self.quota(host)
        if not limits.enforced:
            return False
        fd = self._open(host, folder_id)
        try:
            return self._apply(limits, fd, capacity)
        finally:
            os.close(fd)

    def quota_usage(self, host: str, folder_id: uuid.UUID | str) -> tuple[int, int | None] | None:
        """``(bytes, entries or None)`` as the filesystem's quota counts the folder; None where none does.

        Cheap (one ioctl or one small read), unlike walking the folder.
        """
        limits = self.quota(host)
        if not limits.enforced:
            return None
        try:
            fd = self._open(host, folder_id)
        except NotFound:
            return None
        try:
            return limits.used(fd)
        except OSError as e:
            raise StorageError(
                f"the folder's usage could not be read from the {limits.kind} quota: {e.strerror}"
            ) from None
        finally:
            os.close(fd)

    def _open(self, host: str, folder_id: uuid.UUID | str) -> int:
        path = self.path(host, folder_id)
        with oserrors(()):
            bucket = os.open(path.parent, DIR_FLAGS)
        try:
            return open_subdir(path.name, bucket, ())
        finally:
            os.close(bucket)

    @staticmethod
    def _apply(limits: quotas.FolderQuota, fd: int, capacity: int | None) -> bool:
        if not limits.enforced:
            return False
        try:
            return limits.apply(fd, capacity)
        except OSError as e:
            raise StorageError(
                f"the folder's capacity could not be set on the {limits.kind} quota: {e.strerror}"
            ) from None

    def delete(self, host: str, folder_id: uuid.UUID | str) -> None:
        """Remove the folder and everything in it, following no link; a folder already gone is fine.

        What the folder's quota left behind (a project's limit, a btrfs qgroup) goes too.
        """
        path = self.path(host, folder_id)
        limits = self.quota(host) if host in self.hosts else quotas.Advisory()
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
                ident = None
                if limits.enforced:
                    fd = open_subdir(path.name, bucket, ())
                    try:
                        ident = limits.identify(fd)
                    except OSError:
                        ident = None
                    finally:
                        os.close(fd)
                rmtree_at(bucket, path.name, ())
                if ident is not None:
                    try:
                        limits.forget(bucket, ident)
                    except OSError:
                        pass  # a limit left on an id nothing uses any more limits nothing
            else:
                with oserrors(()):
                    os.unlink(path.name, dir_fd=bucket)
        finally:
            os.close(bucket)
