"""Sessions' output, kept after they end: collected by the hub while they run.

A backend hands the collector a *source* of the session's output (stdout and stderr as they
come): the engine's log stream of a container (:class:`StreamSource`, read by a thread of its
own, since the engine's client blocks) or the file a local process writes to
(:class:`FileSource`). :class:`LogCollector` copies what arrived into the database every
``log_flush_interval`` seconds (``db.session_logs``, bounded to ``log_keep_bytes``), where the
manager's ``GET /session/{id}/logs`` reads it while the session runs and after it ended.

Starting is watched too (:meth:`SessionLogsMixin.wait_for_server`): a session whose server
exits, or never listens, before the hub could reach it ends its spawn with the reason and the
last lines of its output, which JupyterHub shows on the spawn (pending) page.
"""

from __future__ import annotations

import asyncio
import html
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from jupyterhub.traitlets import ByteSpecification
from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from ..core.logs import DEFAULT_KEEP_BYTES, OutputTail, last_lines
from ..db import session_logs
from .spawner import SessionRefused


class OutputSource(Protocol):
    """What a session wrote since the last look."""

    def read(self) -> tuple[bytes, int]:
        """(new output, bytes that arrived but were dropped before it); never blocks."""

    @property
    def ended(self) -> bool:
        """Nothing more will come (the next :meth:`read` still returns what is left)."""

    def close(self) -> None:
        """Stop reading now."""


class StreamSource:
    """A blocking iterator of output chunks (the engine's log stream), read by a daemon thread.

    What the thread read and nobody fetched yet is held to ``keep`` bytes, so a session that
    writes faster than the database takes it costs bounded memory.
    """

    def __init__(self, open_stream: Callable[[], Iterable[bytes]], keep: int, name: str = "session-logs"):
        self._open = open_stream
        self._lock = threading.Lock()
        self._tail = OutputTail(keep)
        self._stream: Any = None
        self._closing = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            stream = self._open()
            self._stream = stream
            if self._closing:
                return
            for chunk in stream:
                if not chunk:
                    continue
                with self._lock:
                    self._tail.add(chunk)
                if self._closing:
                    return
        except Exception as e:  # the engine went away, the container is gone: what came is kept
            self.error = e
        finally:
            close = getattr(self._stream, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass

    def read(self) -> tuple[bytes, int]:
        with self._lock:
            return self._tail.take()

    @property
    def ended(self) -> bool:
        return not self._thread.is_alive()

    def close(self) -> None:
        self._closing = True
        close = getattr(self._stream, "close", None)
        if close is not None:
            try:
                close()  # unblocks the thread's read (docker's CancellableStream)
            except Exception:
                pass


class FileSource:
    """The file a local session's process writes its output to (opened ``O_APPEND``).

    Once ``trim_at`` bytes were read and the file has nothing more, it is truncated: the
    process's appends go on at the new end, and the file stays about that size. Output that a
    process appends between the last read and the truncation (microseconds) is lost.
    """

    def __init__(self, path: str, trim_at: int, keep: int):
        self.path = path
        self._trim_at = max(trim_at, 1)
        self._keep = keep
        self._offset = 0
        self._ended = False

    def read(self) -> tuple[bytes, int]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return b"", 0
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < self._offset:
                self._offset = 0  # truncated by someone else: read it all again
            dropped = max(0, size - self._offset - self._keep)
            self._offset += dropped
            f.seek(self._offset)
            data = f.read(size - self._offset)
            self._offset += len(data)
            if self._offset >= self._trim_at and os.fstat(f.fileno()).st_size == self._offset:
                os.truncate(self.path, 0)
                self._offset = 0
        return data, dropped

    @property
    def ended(self) -> bool:
        return self._ended

    def end(self) -> None:
        """The process is gone: the next look reads what is left, and collecting stops."""
        self._ended = True

    def close(self) -> None:
        self._ended = True

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class LogCollector:
    """Copies a source's output into the database until the source ends."""

    def __init__(
        self,
        run_db: Callable[..., Awaitable[Any]],
        session_id: uuid.UUID,
        source: OutputSource,
        *,
        keep: int,
        interval: float,
        log: Any,
        reset: bool,
    ):
        self.session_id = session_id
        self.source = source
        self._run_db = run_db
        self._keep = keep
        self._interval = interval
        self._log = log
        self._reset = reset
        self.task: asyncio.Task | None = None

    def start(self) -> LogCollector:
        self.task = asyncio.ensure_future(self._run())
        return self

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    async def _run(self) -> None:
        if self._reset:
            await self._db(session_logs.reset, self.session_id)
        while True:
            ended = self.source.ended  # looked at first: the read after it gets the rest
            data, dropped = self.source.read()
            if data or dropped:
                await self._db(session_logs.append, self.session_id, data, self._keep, dropped)
            if ended:
                return
            await asyncio.sleep(self._interval)

    async def _db(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await self._run_db(fn, *args)
        except Exception:
            self._log.exception("Keeping the output of session %s failed", self.session_id)

    async def finish(self, timeout: float) -> None:
        """Wait until the source ended and all of it is stored; stop reading after ``timeout`` s."""
        if self.task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
            return
        except asyncio.TimeoutError:
            self.source.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 5)
        except asyncio.TimeoutError:
            self.task.cancel()

    def cancel(self) -> None:
        self.source.close()
        if self.task is not None:
            self.task.cancel()


class StartFailed(SessionRefused):
    """A session's server ended (or never listened) while it started; the spawn page shows its output."""

    def __init__(self, reason: str, output: str, lines: int = 20):
        super().__init__(reason, 500)
        tail = last_lines(output, lines)
        if tail:
            self.jupyterhub_message = f"{reason}. The end of its output:\n{tail}"
            self.jupyterhub_html_message = (
                f"<p>{html.escape(reason)}. The end of its output:</p>"
                f'<pre class="backendai-start-output">{html.escape(tail)}</pre>'
            )
        else:
            self.jupyterhub_message = f"{reason} (it wrote no output)."

    def __str__(self) -> str:
        return self.reason


class SessionLogsMixin(LoggingConfigurable):
    """Keeps sessions' output; mixed into a backend's spawner before ``SessionSpawnerMixin``."""

    log_keep_bytes = ByteSpecification(
        DEFAULT_KEEP_BYTES,
        config=True,
        help="""How much of a session's output (its stdout and stderr) is kept, from its end.

        The hub copies the output into the product's database while the session runs (where
        ``GET /session/{id}/logs``, the lab's Sessions panel and ``backend.ai session logs``
        read it) and keeps it after the session ended, as long as the session's record. Older
        output beyond this size is dropped. A number of bytes or a size like ``10M`` or ``1G``.
        """,
    )
    log_flush_interval = Float(
        0.5,
        config=True,
        help="Seconds between copies of a running session's new output into the database.",
    )
    start_output_lines = Integer(
        20,
        config=True,
        help="""How many of its last output lines a session that fails to start shows on the spawn page.""",
    )

    _log_collector: LogCollector | None = None
    #: The session whose output was stored to its end by this spawner.
    output_finished: uuid.UUID | None = None

    def collect_output(self, source: OutputSource, *, reset: bool) -> LogCollector:
        """Start copying ``source`` into the session's kept output.

        ``reset``: what was kept is forgotten first, for a source that gives the whole output again
        (a hub that restarted follows a session from its start). A new session has nothing kept:
        its start skips that transaction (a thousand starts, a thousand transactions).
        """
        old, self._log_collector = self._log_collector, None
        if old is not None and not old.done:
            old.cancel()
        self._log_collector = LogCollector(
            self.run_db, self.session_id, source, keep=int(self.log_keep_bytes),
            interval=self.log_flush_interval, log=self.log, reset=reset,
        ).start()  # fmt: skip
        return self._log_collector

    async def finish_output(self, timeout: float = 10.0) -> bool:
        """Store the rest of the output once the session ended; False when nothing collected it."""
        collector, self._log_collector = self._log_collector, None
        if collector is None:
            return False
        if isinstance(collector.source, FileSource):
            collector.source.end()
        await collector.finish(timeout)
        if isinstance(collector.source, FileSource):
            collector.source.remove()
        self.output_finished = collector.session_id
        return True

    async def kept_output(self, session_id: uuid.UUID | None = None) -> str:
        kept = await self.run_db(session_logs.read, session_id or self.session_id)
        return kept.text if kept is not None else ""

    async def wait_for_server(
        self, ip: str, port: int, exited: Callable[[], Awaitable[Any]], describe: Callable[[Any], Awaitable[str]]
    ) -> None:
        """Return once ``ip:port`` accepts connections; raise :class:`StartFailed` when the session
        ended first (``exited()`` says so, ``describe(status)`` says how) or did not listen
        within ``http_timeout``."""
        deadline = time.monotonic() + self.http_timeout
        host = "127.0.0.1" if ip in ("", "0.0.0.0") else ip
        while True:
            status = await exited()
            if status is not None:
                reason = await describe(status)
                await self.finish_output()
                raise StartFailed(reason, await self.kept_output(), self.start_output_lines)
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
            except (OSError, asyncio.TimeoutError):
                pass
            else:
                writer.close()
                return
            if time.monotonic() > deadline:
                # Whatever it printed so far is in the database already (flushed every interval).
                await asyncio.sleep(self.log_flush_interval * 2)
                raise StartFailed(
                    f"the session's server did not listen on port {port} within {self.http_timeout:g} s",
                    await self.kept_output(),
                    self.start_output_lines,
                )
            await asyncio.sleep(0.2)
