"""The synchronous client, on ``requests``.

Every API call is one request: signed with the keypair (Backend.AI's HMAC scheme, the same
code the manager verifies with) or carrying the JupyterHub token. Transfers go to the URLs
that ``request-upload`` / ``request-download`` hand out; those carry their own short-lived
token in the query string, so no credentials are sent to them.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import requests

from ..core import signing
from .config import discover_credentials, discover_endpoint, host_header
from .errors import ManagerError, TransferError
from .progress import Progress, ProgressFactory, move_to, progress_bar

MiB = 1024 * 1024
DEFAULT_CHUNK_SIZE = 8 * MiB
TUS_VERSION = "1.0.0"
#: Connection failures (or offset conflicts) tolerated in a row before a transfer gives up.
DEFAULT_RETRIES = 5
#: Seconds before the n-th retry: short, since a resume costs one HEAD.
BACKOFF = (0.2, 0.5, 1, 2, 4, 8)
#: What counts as "the connection broke": worth a resume, unlike an HTTP refusal.
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def q(name: str) -> str:
    """A folder or session name as one URL path segment (``/`` and all included)."""
    return urllib.parse.quote(name, safe="")


def raise_for(response: requests.Response) -> None:
    """Turn a 4xx/5xx into :class:`ManagerError` with the service's ``title`` (or the HTTP reason)."""
    if response.status_code < 400:
        return
    body: dict[str, Any] = {}
    try:
        data = response.json()
        if isinstance(data, dict):
            body = data
    except ValueError:
        pass
    title = str(body.get("title") or body.get("message") or response.reason or response.text[:200])
    raise ManagerError(response.status_code, title, body, method=response.request.method or "", url=response.url)


class _Slice:
    """``length`` bytes of an open file from its current position, read by ``requests`` as it sends.

    It has ``read`` and ``__len__`` but no ``__iter__``, so requests sends it with a
    ``Content-Length`` (tus wants one) and streams it in blocks instead of holding the chunk in
    memory; each block read advances the progress bar.
    """

    def __init__(self, f: IO[bytes], length: int, bar: Progress):
        self._f = f
        self._left = length
        self._length = length
        self._bar = bar

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(size)
        self._left -= len(data)
        self._bar.update(len(data))
        return data


class Client:
    """A client of the manager's REST API (folders, transfers, sessions, resources).

    ``endpoint`` and the credentials are discovered when not given (see
    :mod:`jupyter_backendai.client.config`): inside a JupyterHub session ``Client()`` is enough.
    ``timeout`` (seconds) bounds connecting and each wait for the server, not a whole transfer.
    Use it as a context manager, or call :meth:`close`, to release its connections.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        token: str | None = None,
        timeout: float = 60,
    ):
        self.endpoint = discover_endpoint(endpoint)
        self.credentials = discover_credentials(access_key, secret_key, token)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "jupyter-backendai-client"

    def __repr__(self) -> str:
        return f"Client({self.endpoint!r}, {self.credentials!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # --- plumbing --------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None, ok: Iterable[int] = ()
    ) -> Any:
        """One authenticated API call: the decoded JSON answer (None when empty), or ManagerError."""
        url = self.endpoint + path
        params = {k: v for k, v in (params or {}).items() if v is not None}
        data = json.dumps(body).encode() if body is not None else None
        request = requests.Request(method, url, params=params, data=data)
        prepared = self.session.prepare_request(request)
        host = host_header(url)
        prepared.headers["Host"] = host
        prepared.headers["Content-Type"] = "application/json"
        if self.credentials.signed:
            # Signed per attempt: the manager accepts each signature once and dates must be fresh.
            assert self.credentials.access_key is not None and self.credentials.secret_key is not None
            prepared.headers.update(
                signing.headers(
                    self.credentials.access_key, self.credentials.secret_key, method, prepared.path_url, host
                )
            )
        else:
            prepared.headers["Authorization"] = f"token {self.credentials.token}"
        response = self.session.send(prepared, timeout=self.timeout)
        if response.status_code not in ok:
            raise_for(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ManagerError(response.status_code, "the answer is not JSON", method=method, url=url) from None

    # --- account and version ---------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        """``GET /``: the API version and the manager's version (no authentication needed)."""
        return self.request("GET", "/")

    def whoami(self) -> dict[str, Any]:
        """Who the credentials belong to: username, email, role, domain, access_key, via."""
        return self.request("GET", "/auth/whoami")

    # --- folders --------------------------------------------------------------------------------

    def list_folders(self) -> list[dict[str, Any]]:
        """The folders the caller may use (own, invited, group), in Backend.AI's shape."""
        return self.request("GET", "/folders")

    def get_folder(self, name: str) -> dict[str, Any]:
        """One folder (by name or id)."""
        return self.request("GET", f"/folders/{q(name)}")

    def create_folder(self, name: str, host: str = "local", group: str | None = None) -> dict[str, Any]:
        """A new folder; ``group`` (a name or id, admins only) makes it a group folder."""
        body: dict[str, Any] = {"name": name, "host": host}
        if group is not None:
            body["group"] = group
        return self.request("POST", "/folders", body=body)

    def delete_folder(self, name: str) -> None:
        """Delete a folder and its files (owners, with ``wd``)."""
        self.request("DELETE", f"/folders/{q(name)}")

    def list_files(self, folder: str, path: str = "") -> list[dict[str, Any]]:
        """The entries of a directory: name, type (file, dir, symlink), size, modified, ..."""
        return self.request("GET", f"/folders/{q(folder)}/files", params={"path": path})["items"]

    def mkdir(self, folder: str, path: str | list[str], parents: bool = False, exist_ok: bool = False) -> list[str]:
        """Make directories; the answer is their normalised paths."""
        body = {"path": path, "parents": parents, "exist_ok": exist_ok}
        return self.request("POST", f"/folders/{q(folder)}/mkdir", body=body)["results"]

    def delete_files(self, folder: str, paths: str | list[str], recursive: bool = False) -> list[str]:
        """Delete files (directories need ``recursive``); one bad path deletes nothing.

        Sent as POST, which the manager takes like DELETE: some proxies drop DELETE bodies.
        """
        files = [paths] if isinstance(paths, str) else list(paths)
        body = {"files": files, "recursive": recursive}
        return self.request("POST", f"/folders/{q(folder)}/delete-files", body=body)["deleted"]

    # --- transfers ------------------------------------------------------------------------------

    def upload(
        self,
        folder: str,
        local_path: str | os.PathLike[str],
        remote_path: str | None = None,
        *,
        progress: bool | ProgressFactory = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        retries: int = DEFAULT_RETRIES,
    ) -> str:
        """Upload a file (tus 1.0.0), resuming after broken connections; returns the remote path.

        The file goes in PATCHes of ``chunk_size`` bytes, each streamed from disk. When a
        connection breaks, the server keeps what arrived; a HEAD asks it how far it got and the
        upload goes on from there, up to ``retries`` failures in a row. A remote file appears
        only when every byte is there (the server moves it into place atomically).
        ``remote_path`` defaults to the file's name at the folder's top.
        """
        local = Path(local_path)
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        size = local.stat().st_size
        target = remote_path if remote_path is not None else local.name
        ticket = self.request("POST", f"/folders/{q(folder)}/request-upload", body={"path": target, "size": size})
        url = ticket["url"]
        tus = {"Tus-Resumable": TUS_VERSION}
        bar = progress_bar(progress, size, 0, local.name)
        try:
            if size == 0:  # no PATCH comes; the HEAD completes the empty upload
                self._tus_offset(url)
                return ticket.get("path", target)
            offset, failures = 0, 0
            with open(local, "rb") as f:
                while offset < size:
                    length = min(chunk_size, size - offset)
                    f.seek(offset)
                    headers = {
                        **tus,
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                        "Content-Length": str(length),
                    }
                    try:
                        response = self.session.patch(
                            url, data=_Slice(f, length, bar), headers=headers, timeout=self.timeout
                        )
                    except NETWORK_ERRORS as e:
                        failures = self._retry_or_raise(failures, retries, e)
                        offset = self._resume_offset(url, failures, retries)
                        move_to(bar, offset)
                        continue
                    if response.status_code == 409:
                        # Our offset was stale, or a broken PATCH is still being written ("busy"):
                        # wait a little, then take the server's offset.
                        failures = self._retry_or_raise(failures, retries, None)
                        if response.headers.get("Upload-Offset", "").isdigit():
                            offset = int(response.headers["Upload-Offset"])
                        else:
                            offset = self._resume_offset(url, failures, retries)
                        move_to(bar, offset)
                        continue
                    raise_for(response)
                    offset = int(response.headers.get("Upload-Offset", offset + length))
                    move_to(bar, offset)
                    failures = 0
        finally:
            bar.close()
        return ticket.get("path", target)

    def _tus_offset(self, url: str) -> int:
        response = self.session.head(url, headers={"Tus-Resumable": TUS_VERSION}, timeout=self.timeout)
        raise_for(response)
        return int(response.headers["Upload-Offset"])

    def _retry_or_raise(self, failures: int, retries: int, error: BaseException | None) -> int:
        """Count a failure; raise when there were too many in a row, else wait a little."""
        failures += 1
        if failures > retries:
            raise TransferError(0, f"the transfer failed {failures} times in a row: {error}") from error
        time.sleep(BACKOFF[min(failures - 1, len(BACKOFF) - 1)])
        return failures

    def _resume_offset(self, url: str, failures: int, retries: int) -> int:
        """The server's offset after a broken PATCH (the HEAD itself may fail while the network is down)."""
        while True:
            try:
                return self._tus_offset(url)
            except NETWORK_ERRORS as e:
                failures = self._retry_or_raise(failures, retries, e)

    def download(
        self,
        folder: str,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        progress: bool | ProgressFactory = True,
        resume: bool = True,
        retries: int = DEFAULT_RETRIES,
        chunk_size: int = MiB,
    ) -> Path:
        """Download a file, streaming; returns where it was written.

        ``local_path`` may be a directory (the remote name is kept). With ``resume``, an existing
        shorter local file is taken as the start of this one and only the rest is fetched
        (``Range``); a broken connection resumes the same way, up to ``retries`` times in a row.
        Resuming trusts that the remote file did not change meanwhile (the API has no ETag).
        """
        local = Path(local_path)
        if local.is_dir():
            local = local / remote_path.rstrip("/").rsplit("/", 1)[-1]
        ticket = self.request("POST", f"/folders/{q(folder)}/request-download", body={"path": remote_path})
        url = ticket["url"]
        if not resume and local.exists():
            local.unlink()
        have = local.stat().st_size if local.exists() else 0
        bar: Progress | None = None
        failures = 0
        try:
            while True:
                headers = {"Range": f"bytes={have}-"} if have else {}
                try:
                    with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
                        total = self._download_total(response, have)
                        if response.status_code == 416:
                            if total is not None and have == total:
                                return local  # complete already
                            have = 0  # longer than the remote file: not a prefix of it; start over
                            local.unlink(missing_ok=True)
                            continue
                        raise_for(response)
                        if response.status_code == 200:
                            have = 0  # the whole file came: the server ignored or did not need the range
                        if bar is None:
                            bar = progress_bar(progress, total or 0, have, local.name)
                        else:
                            move_to(bar, have)
                        with open(local, "r+b" if have else "wb") as f:
                            f.seek(have)
                            f.truncate()
                            for block in response.iter_content(chunk_size):
                                f.write(block)
                                have += len(block)
                                bar.update(len(block))
                    if total is not None and have < total:
                        raise requests.exceptions.ChunkedEncodingError(f"the body ended at {have} of {total} bytes")
                    if total is not None and have != total:
                        raise TransferError(0, f"got {have} bytes of a {total}-byte file")
                    return local
                except NETWORK_ERRORS as e:
                    failures = self._retry_or_raise(failures, retries, e)
                    have = local.stat().st_size if local.exists() else 0
        finally:
            if bar is not None:
                bar.close()

    @staticmethod
    def _download_total(response: requests.Response, have: int) -> int | None:
        """The whole file's size: from ``Content-Range`` (206, 416) or ``Content-Length`` (200)."""
        content_range = response.headers.get("Content-Range", "")
        if "/" in content_range:
            total = content_range.rsplit("/", 1)[1]
            return int(total) if total.isdigit() else None
        length = response.headers.get("Content-Length", "")
        return int(length) if length.isdigit() and response.status_code == 200 else None

    # --- sessions -------------------------------------------------------------------------------

    def list_sessions(self, status: str = "running", page: int = 1, page_size: int = 20) -> dict[str, Any]:
        """A page of the caller's sessions: {total_count, page, page_size, status, items}."""
        return self.request("GET", "/session", params={"status": status, "page": page, "page_size": page_size})

    def create_session(
        self,
        name: str,
        image: str | None = None,
        preset: str | None = None,
        resources: dict[str, Any] | None = None,
        folders: Iterable[str] = (),
        scaling_group: str | None = None,
        group: str | None = None,
    ) -> dict[str, Any]:
        """Start a session (a named server of the hub) in Backend.AI's request shape.

        ``resources`` are slot amounts (``{"cpu": 2, "mem": "4g"}``), ``folders`` are mounted
        in the session's home folder as ``<name>``. The answer has sessionId, sessionName, status, ...
        """
        config: dict[str, Any] = {}
        folders = list(folders)  # once: an iterator is consumed by reading it
        if resources:
            config["resources"] = resources
        if folders:
            config["mounts"] = folders
        if scaling_group:
            config["scaling_group"] = scaling_group
        body: dict[str, Any] = {"name": name, "config": config}
        for key, value in (("image", image), ("preset", preset), ("group", group)):
            if value is not None:
                body[key] = value
        return self.request("POST", "/session", body=body)

    def get_session(self, name: str) -> dict[str, Any]:
        """One session's details (by name, server name or id)."""
        return self.request("GET", f"/session/{q(name)}")

    def destroy_session(self, name: str) -> dict[str, Any]:
        """Stop a session through the hub; the answer has its final status."""
        return self.request("DELETE", f"/session/{q(name)}")

    def session_queue(self, name: str) -> dict[str, Any]:
        """A session's status and, while PENDING, its ``position`` of ``length`` in its resource group's queue."""
        return self.request("GET", f"/session/{q(name)}/queue")

    # --- resources ------------------------------------------------------------------------------

    def presets(self) -> list[dict[str, Any]]:
        """Every resource preset."""
        return self.request("GET", "/resource/presets")["presets"]

    def check_presets(self, group: str | None = None, scaling_group: str | None = None) -> dict[str, Any]:
        """Limits, what is in use and which presets still fit, for a group and resource group."""
        body = {k: v for k, v in (("group", group), ("scaling_group", scaling_group)) if v is not None}
        return self.request("POST", "/resource/check-presets", body=body)

    def launch_options(self, group: str | None = None) -> dict[str, Any]:
        """What a launch may choose: the caller's projects, and the images and resource groups of one."""
        return self.request("GET", "/resource/launch-options", params={"group": group})
