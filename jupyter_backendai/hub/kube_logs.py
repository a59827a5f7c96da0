"""A Kubernetes session's output, kept after it ends: its pod's log, through the API server.

The hub follows the log of the pod's container (``GET .../pods/<pod>/log?follow=true``) from the
moment the pod runs, with the Kubernetes client on the hub's own event loop
(:class:`ResponseSource`; what arrived and is not stored yet is held to ``log_keep_bytes``), and
:class:`~.logs.LogCollector` copies it into the database as for the other backends. The log
lives as long as the pod, so it is read once more, whole, after the container ended and before
the pod is deleted (:meth:`KubeLogsMixin._read_output_once`, bounded in time and memory): a
stop first ends the container and keeps the pod (:meth:`KubeLogsMixin._end_container`, as the
Swarm backend scales its service to no task), so that the server's last lines are kept. A pod
whose container ends before its server listens ends the spawn with the reason and its last
lines; a lost node's session keeps what was followed before the loss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from kubernetes_asyncio.client import ApiException

from ..core.logs import OutputTail, cap
from ..db import session_logs
from .kube_args import CONTAINER_NAME
from .kube_status import api_reason, container_ended, exit_reason, pod_ended
from .logs import SessionLogsMixin, StartFailed

__all__ = ["KubeLogsMixin", "ResponseSource"]

#: Seconds between looks at a pod whose container is being ended.
_END_POLL = 0.2


class ResponseSource:
    """The body of an HTTP response as it comes (a followed log), read by a task of the hub's loop.

    What arrived and nobody fetched yet is held to ``keep`` bytes: a session that writes faster
    than the database takes it costs bounded memory.
    """

    def __init__(self, open_response: Callable[[], Awaitable[aiohttp.ClientResponse]], keep: int):
        self._open = open_response
        self._tail = OutputTail(keep)
        self.error: BaseException | None = None
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        response = None
        try:
            response = await self._open()
            async for chunk in response.content.iter_any():
                self._tail.add(chunk)
        except asyncio.CancelledError:
            pass  # closed: what came is kept
        except Exception as e:  # the pod gone, the API server away: what came is kept
            self.error = e
        finally:
            if response is not None:
                response.close()

    def read(self) -> tuple[bytes, int]:
        return self._tail.take()

    @property
    def held(self) -> int:
        """Bytes that came and were not read yet."""
        return len(self._tail)

    @property
    def ended(self) -> bool:
        return self.task.done()

    def close(self) -> None:
        self.task.cancel()


class KubeLogsMixin(SessionLogsMixin):
    """Keeps a Kubernetes session's output; mixed into the Kubernetes spawner before ``SessionSpawnerMixin``."""

    async def _open_log(self, follow: bool) -> aiohttp.ClientResponse:
        """The response of the pod's log (all of it), its body not read yet."""
        response = await self.api.read_namespaced_pod_log(
            self.pod_name, self.namespace, container=CONTAINER_NAME, follow=follow, _preload_content=False,
            # No end for a followed log (a quiet session writes nothing for hours); a connection bound.
            _request_timeout=aiohttp.ClientTimeout(sock_connect=10, connect=10),
        )  # fmt: skip
        if not 200 <= response.status < 300:
            body = await response.content.read(4096)
            response.close()
            error = ApiException(status=response.status, reason=response.reason)
            error.body = body
            raise RuntimeError(f"the pod's log: {api_reason(error)}")
        return response

    def _output_source(self) -> ResponseSource:
        """The pod's log, followed until its container ends."""
        return ResponseSource(lambda: self._open_log(True), int(self.log_keep_bytes))

    async def _read_output_once(self, timeout: float = 15.0) -> None:
        """Stop following and store the whole log, read to its end, in place of what was followed.

        The container ended, so the server's last lines are in it. A read that fails (the pod
        already gone) or finds nothing leaves what was followed as it is.
        """
        session_id, keep = self.session_id, int(self.log_keep_bytes)
        await self.finish_output(timeout=0.0)
        self.output_finished = session_id
        source = ResponseSource(lambda: self._open_log(False), keep)
        try:
            await asyncio.wait_for(asyncio.shield(source.task), timeout)
        except asyncio.TimeoutError:
            source.close()
            self.log.warning("Reading the output of session %s once more: not done within %g s", session_id, timeout)
            return
        if source.error is not None:
            self.log.warning("Reading the output of session %s once more: %s", session_id, source.error)
            return
        data, dropped = source.read()
        data, cut = cap(data, keep)
        if data:

            def replace(db):
                session_logs.reset(db, session_id)
                session_logs.append(db, session_id, data, keep, dropped + cut)

            await self.run_db(replace)

    def _current_pod(self) -> dict | None:
        reflector = self.pod_reflector
        return reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector is not None else None

    async def _server_exited(self):
        """While the server starts: the pod once its container ended (its log read), else None."""
        pod = self._current_pod()
        if pod is None:
            return {"status": {"reason": "Deleted", "message": "the pod was deleted"}}
        if pod_ended(pod) is None:
            return None
        await self._read_output_once()
        return pod

    async def _exit_reason(self, pod: dict) -> str:
        return exit_reason(pod, self._node, CONTAINER_NAME)

    async def _start_failed(self, pod: dict) -> StartFailed:
        """The container ran and ended while the pod started: the reason and what it wrote."""
        await self._read_output_once()
        return StartFailed(await self._exit_reason(pod), await self.kept_output(), self.start_output_lines)

    async def _end_container(self, timeout: float) -> bool:
        """End the pod's container but keep the pod (and its log): a deadline already passed
        (``activeDeadlineSeconds``), which the kubelet enforces with the pod's grace period.
        True once the container ended; False when it did not within ``timeout`` s.

        The pod's phase turns Failed (DeadlineExceeded) before the kubelet stopped its container,
        so the phase does not say the server's last lines were written: the container's own
        terminated state does, or the end of its followed log (the kubelet ends a followed log when
        its container stops), whichever comes first; without a followed log, the pod's grace period
        after the phase turned.
        """
        pod = self._current_pod()
        if pod is None:
            return False
        collector = self._log_collector
        # A followed log that already ended (it could not be opened) says nothing of the container.
        followed = collector.source if collector is not None and not collector.source.ended else None
        if pod_ended(pod) is None:
            try:
                await self._api(
                    self.api.patch_namespaced_pod, self.pod_name, self.namespace, {"spec": {"activeDeadlineSeconds": 1}}
                )
            except Exception as e:  # gone, or the API server away: deleting it follows anyway
                self.log.debug("Ending the container of %s: %s", self.pod_name, e)
                return False
        loop = asyncio.get_running_loop()
        start = loop.time()
        failed_at: float | None = None
        while (pod := self._current_pod()) is not None:
            if container_ended(pod, CONTAINER_NAME):
                seen = "its status"
            elif isinstance(followed, ResponseSource) and followed.ended:
                seen = "the end of its followed log"
            elif pod_ended(pod) is not None and followed is None:
                failed_at = failed_at if failed_at is not None else loop.time()
                seen = "its pod's grace period" if loop.time() - failed_at > self.delete_grace_period + 1 else ""
            else:
                seen = ""
            if seen:
                self.log.info("The container of %s ended in %.1f s (%s)", self.pod_name, loop.time() - start, seen)
                return True
            if loop.time() > start + timeout:
                return False
            await asyncio.sleep(_END_POLL)
        return False
