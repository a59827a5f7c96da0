"""TCP relays in the hub process: the only ways into and out of an isolated session.

A Docker session lives in a network namespace of its own, on a bridge network of its own, so
it reaches nothing of the hub host but what the hub relays to it:

* the **hub relay** listens on the session network's gateway address (a host address that
  only that session's bridge routes to) and forwards to the proxy's public address, so the
  session's server reaches the hub's API and the manager exactly as a browser does
  (``/hub/api``, ``/services/backendai``), and nothing else on the host's loopback;
* the **SSH relay** listens on the public address users connect to (``ssh_bind_ip``, one port
  per session) and forwards to the session's sshd inside its namespace.

A relay is a listening socket and two byte pumps per connection; it holds no state that a hub
restart would lose beyond the listener, which the spawner opens again when it finds the
session still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("jupyter_backendai")

#: Bytes read at once per direction; enough for SFTP transfers at disk speed.
CHUNK = 256 * 1024
#: Seconds to connect to the target before the relayed connection is closed.
CONNECT_TIMEOUT = 10.0


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # a half-close (sftp's end of upload) passes through
    except (ConnectionError, OSError):
        pass


class Relay:
    """Forward every connection to ``listen_host:listen_port`` to ``target_host:target_port``."""

    def __init__(self, name: str, listen_host: str, listen_port: int, target_host: str, target_port: int):
        self.name = name
        self.listen_host, self.listen_port = listen_host, listen_port
        self.target_host, self.target_port = target_host, target_port
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"<Relay {self.name} {self.listen_host}:{self.listen_port} -> {self.target_host}:{self.target_port}>"

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, self.listen_host, self.listen_port, reuse_address=True)
        if not self.listen_port:
            self.listen_port = self._server.sockets[0].getsockname()[1]
        log.debug("started %r", self)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), CONNECT_TIMEOUT
                )
            except (OSError, asyncio.TimeoutError) as e:
                log.debug("%r: the target did not answer (%s)", self, e)
                return
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._conns.discard(task)

    async def stop(self) -> None:
        server, self._server = self._server, None
        for task in list(self._conns):
            task.cancel()
        self._conns.clear()
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
