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
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from .sync import Client

P = ParamSpec("P")
R = TypeVar("R")


def _on_thread(
    method: Callable[Concatenate[Client, P], R],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]]:
    """``method`` of :class:`Client` as a coroutine method of :class:`AsyncClient`, run on a worker
    thread: the arguments, defaults and docstring are the synchronous method's, written once."""

    @functools.wraps(method)
    async def call(self: AsyncClient, *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(method, self.sync, *args, **kwargs)

    return call


class AsyncClient:
    """:class:`~jupyter_backendai.client.Client`'s API with ``async def`` methods (same arguments)."""

    @functools.wraps(Client.__init__, assigned=())  # inspect.signature shows Client's arguments
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """:class:`Client`'s arguments: the endpoint and credentials, found the same way."""
        self.sync = Client(*args, **kwargs)

    @property
    def endpoint(self) -> str:
        return self.sync.endpoint

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    close = _on_thread(Client.close)
    request = _on_thread(Client.request)
    version = _on_thread(Client.version)
    whoami = _on_thread(Client.whoami)
    list_folders = _on_thread(Client.list_folders)
    get_folder = _on_thread(Client.get_folder)
    create_folder = _on_thread(Client.create_folder)
    delete_folder = _on_thread(Client.delete_folder)
    list_files = _on_thread(Client.list_files)
    mkdir = _on_thread(Client.mkdir)
    delete_files = _on_thread(Client.delete_files)
    upload = _on_thread(Client.upload)
    download = _on_thread(Client.download)
    list_sessions = _on_thread(Client.list_sessions)
    create_session = _on_thread(Client.create_session)
    get_session = _on_thread(Client.get_session)
    destroy_session = _on_thread(Client.destroy_session)
    session_queue = _on_thread(Client.session_queue)
    presets = _on_thread(Client.presets)
    check_presets = _on_thread(Client.check_presets)
    launch_options = _on_thread(Client.launch_options)
