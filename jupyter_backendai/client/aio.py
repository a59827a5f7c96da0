"""The asynchronous client: the synchronous one run on worker threads.

Why threads and not ``tornado.httpclient``: the transfers (tus PATCHes streamed from disk,
ranged downloads, resumes, progress bars) and the signing are then written and tested once,
and both clients behave the same by construction. The cost is a worker thread per call in
flight, which is nothing next to a transfer and fine for API calls from notebooks and widgets.
Calls may run concurrently: ``requests.Session``'s connection pool is thread-safe and the
client keeps no other per-request state (it sends no cookies the manager needs).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .progress import ProgressFactory
from .sync import DEFAULT_CHUNK_SIZE, DEFAULT_RETRIES, Client, MiB


class AsyncClient:
    """:class:`~jupyter_backendai.client.Client`'s API with ``async def`` methods (same arguments)."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        token: str | None = None,
        timeout: float = 60,
    ):
        self.sync = Client(endpoint, access_key=access_key, secret_key=secret_key, token=token, timeout=timeout)

    @property
    def endpoint(self) -> str:
        return self.sync.endpoint

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        return await asyncio.to_thread(self.sync.request, method, path, params=params, body=body)

    async def version(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.version)

    async def whoami(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.whoami)

    async def list_folders(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.list_folders)

    async def get_folder(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.get_folder, name)

    async def create_folder(self, name: str, host: str = "local", group: str | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.create_folder, name, host, group)

    async def delete_folder(self, name: str) -> None:
        await asyncio.to_thread(self.sync.delete_folder, name)

    async def list_files(self, folder: str, path: str = "") -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.list_files, folder, path)

    async def mkdir(
        self, folder: str, path: str | list[str], parents: bool = False, exist_ok: bool = False
    ) -> list[str]:
        return await asyncio.to_thread(self.sync.mkdir, folder, path, parents, exist_ok)

    async def delete_files(self, folder: str, paths: str | list[str], recursive: bool = False) -> list[str]:
        return await asyncio.to_thread(self.sync.delete_files, folder, paths, recursive)

    async def upload(
        self,
        folder: str,
        local_path: str | os.PathLike[str],
        remote_path: str | None = None,
        *,
        progress: bool | ProgressFactory = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        retries: int = DEFAULT_RETRIES,
    ) -> str:
        return await asyncio.to_thread(
            self.sync.upload, folder, local_path, remote_path, progress=progress, chunk_size=chunk_size, retries=retries
        )

    async def download(
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
        return await asyncio.to_thread(
            self.sync.download, folder, remote_path, local_path,
            progress=progress, resume=resume, retries=retries, chunk_size=chunk_size,
        )  # fmt: skip

    async def list_sessions(self, status: str = "running", page: int = 1, page_size: int = 20) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.list_sessions, status, page, page_size)

    async def create_session(
        self,
        name: str,
        image: str | None = None,
        preset: str | None = None,
        resources: dict[str, Any] | None = None,
        folders: Iterable[str] = (),
        scaling_group: str | None = None,
        group: str | None = None,
    ) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.sync.create_session, name, image, preset, resources, tuple(folders), scaling_group, group
        )

    async def get_session(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.get_session, name)

    async def destroy_session(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.destroy_session, name)

    async def session_queue(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.session_queue, name)

    async def presets(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.presets)

    async def check_presets(self, group: str | None = None, scaling_group: str | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.check_presets, group, scaling_group)

    async def launch_options(self, group: str | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.launch_options, group)
