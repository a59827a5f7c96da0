"""A background loop of passes, run every few seconds or at once when something changed.

A loop like the image puller's keeps one per process and database: a pass reads its queue from
the database, so one that runs early (on :meth:`PassLoop.wake`) is never wrong, only sooner, and
a pass that fails is retried at the next one.
"""

from __future__ import annotations

import asyncio


class PassLoop:
    """Starts :meth:`_loop` once (again if it ended) and wakes it between passes."""

    def __init__(self) -> None:
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop())

    def wake(self) -> None:
        self._wake.set()

    async def _next_pass(self, interval: float) -> None:
        """Return after ``interval`` seconds, or as soon as :meth:`wake` is called."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    async def _loop(self) -> None:  # pragma: no cover - every loop overrides it
        raise NotImplementedError
