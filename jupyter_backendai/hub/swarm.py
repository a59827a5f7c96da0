"""``SwarmSessionSpawner`` (``backendai-swarm``): sessions as services of a Docker Swarm.

Built on dockerspawner's ``SwarmSpawner``; the hub's engine socket (``client_kwargs`` /
``DOCKER_HOST``) talks to a manager node. Every node of the swarm is an agent, read on every
heartbeat and checked for the folder storage (:mod:`.swarm_nodes`, mixed in); a spawn while the
manager does not answer is refused.

Our scheduler places each session on a node; the session is one service with one task pinned
there (``node.id==<id>``, :func:`~.swarm_args.swarm_service_spec`), never restarted. The task
uses its node's network namespace (``host``): its server listens on the node's address at a
port of its own, checked free on the node (a connection to it is refused), where the hub and
the proxy reach it. Sessions on one node therefore share that node's network namespace (see
SECURITY.md's limits). Folders are bind mounts from ``storage_root``, which every node must
mount at the same path.

SSH: sshd runs in the session on a port free on its node; the session's key files are swarm
secrets of the session (removed with it). Users reach it at the node's public host name: the
node label ``public_host_label`` or the operator's ``public_hosts``, else the node's address;
that is the agent's address, which the API and the hub's home page show.

Usage samples (CPU, memory, I/O) come from the engine of the session's node
(``node_docker_urls`` / ``node_docker_url``; the manager the hub talks to needs neither).

Output (:class:`~.logs.SessionLogsMixin`): the service's log as the manager serves it (``docker
service logs``, from whichever node runs the task), followed while the session runs and read once
more, whole, after its task ended: a stop first scales the service to no task, so that the
server's last lines are kept, and only then removes it. A session whose task fails or whose
server exits before it listens ends its spawn with the reason and its last lines. A lost node's
sessions keep what was collected before the loss (its engine no longer answers).

Images (:class:`~.images.SwarmImages`): a session's image missing on its node is pulled there
by a one-task service before the session's own (PULLING), or with ``pull_policy = "never"``
the scheduler only chooses nodes known to have it.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import time
import uuid
from pathlib import Path
from pprint import pformat

import docker.errors
from docker.types import ServiceMode
from dockerspawner import SwarmSpawner
from traitlets import Float, default

from ..core.logs import cap
from ..db import models as m
from ..db import session_logs
from .docker import sshd_and_server
from .images import SwarmImages
from .logs import SessionLogsMixin, StartFailed, StreamSource
from .runtime import PlainImagesMixin
from .spawner import SessionRefused, SessionSpawnerMixin, usage_sample
from .spec import LABEL_SESSION_ID, SessionSpec, SpecError
from .swarm_args import (
    HOMES_DIR,
    account_configs,
    engine_stats_usage,
    plain_image_service_spec,
    service_name,
    session_secrets,
    swarm_service_spec,
)
from .swarm_nodes import SwarmNodesMixin

#: Task states on the way to running; anything else before "running" is a failure.
_STARTING = {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
#: Seconds between looks at a starting task.
TASK_POLL_INTERVAL = 0.25
#: Seconds between looks at a started task while its server is not yet listening.
TASK_END_CHECK = 1.0
#: Ports chosen on a node for sessions' servers and sshd (as pick_ssh_port on the hub's host).
NODE_PORTS = (10000, 65000)
#: Seconds a port stays reserved after it was chosen on a node (its session starting to listen).
PORT_HOLD = 600.0


def port_in_use(addr: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something on ``addr`` accepts connections on ``port`` (refused, unreachable or
    silent: taken as free; the hub must reach the port anyway)."""
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


class SwarmSessionSpawner(
    SwarmNodesMixin, PlainImagesMixin, SwarmImages, SessionLogsMixin, SessionSpawnerMixin, SwarmSpawner
):
    backend_name = "swarm"
    isolates_users = True

    start_task_timeout = Float(
        120.0,
        config=True,
        help="Seconds a session's task may take to reach running on its node before the start fails.",
    )

    @default("network_name")
    def _default_network_name(self):
        return "host"  # the node's network namespace: the hub reaches the node's address

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        return True

    _spec: SessionSpec | None = None
    _node_id: str | None = None
    _node_addr: str | None = None
    _node_host: str | None = None  # the node's public host name, where users reach SSH
    #: Ports chosen on nodes for starting sessions: (node id, port) -> when.
    _ports: dict[tuple[str, int], float] = {}

    # --- the session --------------------------------------------------------------------------

    async def start(self):
        await self.check_swarm()
        return await super().start()

    def server_address(self) -> tuple[str, int]:
        # The node is known once the scheduler placed the session: open_network picks the port there.
        return "0.0.0.0", 0

    async def open_network(self) -> None:
        """Find the node the scheduler chose (the service is pinned to it) and a port free there:
        the hub reaches the server at the node's address, users its sshd at its public host."""

        def node(db):
            session = db.get(m.Session, self.session_id)
            agent = db.get(m.Agent, session.agent_id) if session and session.agent_id else None
            if agent is None or agent.status != m.AgentStatus.ALIVE:
                raise SpecError(f"the session's node {session.agent_id if session else None} is not available")
            return agent.id, agent.addr

        self._node_id, self._node_host = await self.run_db(node)
        self._node_addr = await self.node_address(self._node_id)
        if not self._node_addr:
            raise SpecError(f"the swarm node {self._node_id} reports no address")
        self.ip = self._node_addr
        self.ssh_host = self._node_host or self._node_addr
        self.port = await asyncio.to_thread(self._node_port, None)

    def _node_port(self, preferred: int | None) -> int:
        """A port free on the session's node: the preferred one when nothing there answers on it."""
        now = time.monotonic()
        taken = SwarmSessionSpawner._ports
        for key, at in list(taken.items()):
            if now - at > PORT_HOLD:
                taken.pop(key, None)
        low, high = NODE_PORTS
        candidates = ([preferred] if preferred and low <= preferred <= high else []) + [
            random.randint(low, high) for _ in range(50)
        ]
        for port in candidates:
            if (self._node_id, port) in taken or port_in_use(self._node_addr, port):
                continue
            taken[(self._node_id, port)] = now
            return port
        raise SessionRefused(f"no free port on the swarm node {self._node_id}", 503)

    def choose_ssh_port(self, preferred: int | None) -> int:
        return self._node_port(preferred)

    def session_command(self, ssh_port: int | None) -> tuple[str, ...]:
        # sshd on every address of the node (its public host name may resolve to any of them).
        return ("sh", "-c", sshd_and_server("0.0.0.0"), "session", "jupyterhub-singleuser")

    async def start_session(self, spec: SessionSpec):
        self._spec = spec
        self.image = spec.image
        self.object_name = service_name(spec)
        self._node_lost = False
        ip_port = await SwarmSpawner.start(self)
        self.collect_output(self._output_source(), reset=False)
        await self.wait_for_server(*ip_port, exited=self._task_ended, describe=self._exit_reason)
        return ip_port

    async def check_allowed(self, image):
        return image  # checked at admission against the images allowed for the user

    async def create_object(self):
        # The key files as the session's secrets first: the service refers to them.
        ids = {}
        for secret in session_secrets(self._spec):
            created = await self.docker("create_secret", secret.name, secret.data.encode(), labels=secret.labels)
            ids[secret.name] = created["ID"]
        kwargs = swarm_service_spec(
            self._spec, self._node_id, port=self.port, ip=self._node_addr, network=self.network_name,
            gpu_resource=self.gpu_resource, secrets=ids,
        )  # fmt: skip
        kwargs = await self._adapt_to_image(kwargs)
        self.log.info("Creating service %s on node %s", kwargs["name"], self._node_id)
        return await self.docker("create_service", **kwargs)

    async def _adapt_to_image(self, kwargs: dict) -> dict:
        """An image without the server or the work user: the runtime, the account files as
        configs, a home on the shared storage (docs/plain-images.md)."""
        spec = self._spec
        # Looked into on the session's node (the image was pulled there) where the hub reaches it.
        client = await self.node_client(self._node_id)
        try:
            facts, plan = await self.runnable_image_plan(spec.image, client)
        except docker.errors.ImageNotFound:
            # Pulled onto its node only, where the hub cannot look: it runs as it is (a plain
            # image there fails to start, and says so on the pending page).
            self.log.info("Image %s is not on an engine the hub reaches: no look into it", spec.image)
            return kwargs
        if not plan.plain:
            return kwargs
        runtime = await self.supplied_runtime() if plan.supply_runtime else None
        home = await asyncio.to_thread(self._make_home) if plan.make_home else None
        configs = {}
        for config in account_configs(spec, plan):
            created = await self.docker("create_config", config.name, config.data.encode(), labels=config.labels)
            configs[config.name] = created["ID"]
        if runtime is not None:
            self.log.info("Session %s: image %s runs on the runtime %s", spec.session_id, spec.image, runtime.host_dir)
        return plain_image_service_spec(
            kwargs, spec, facts=facts, plan=plan, runtime=runtime, home=home, configs=configs
        )

    def _home_dir(self, session_id) -> Path:
        return Path(self.storage_root) / HOMES_DIR / str(session_id)

    def _make_home(self) -> str:
        """The session's home on the shared storage (every node sees it), owned by the session user."""
        home = self._home_dir(self._spec.session_id)
        home.parent.mkdir(mode=0o711, exist_ok=True)
        home.mkdir(mode=0o755, exist_ok=True)
        try:
            os.chown(home, self._spec.uid, self._spec.gid)
        except PermissionError:
            raise SpecError(
                f"the image has no home of uid {self._spec.uid}, and the hub (not root) cannot make one for "
                "the session on the folder storage"
            ) from None
        return str(home)

    async def start_object(self):
        """Wait (bounded) until the task runs; a rejected or failed task fails the start with its error."""
        deadline = asyncio.get_running_loop().time() + self.start_task_timeout
        while True:
            task = await self.get_task()
            status = (task or {}).get("Status") or {}
            state = (status.get("State") or "").lower()
            if state == "running":
                return
            if task is not None and state not in _STARTING:
                if (status.get("ContainerStatus") or {}).get("ContainerID"):
                    # Its container ran and ended: say why with what it wrote.
                    await self._read_output_once()
                    raise StartFailed(
                        await self._exit_reason(status), await self.kept_output(), self.start_output_lines
                    )
                raise RuntimeError(f"the session's task on node {self._node_id} is {state}: {status.get('Err') or ''}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"the session's task did not run within {self.start_task_timeout:.0f} s: {pformat(status)}"
                )
            # A flat, short interval: a task runs within seconds, and every late look is time the
            # user waits (a growing one noticed a running task up to 1.7 s after its server answered).
            await asyncio.sleep(TASK_POLL_INTERVAL)

    async def get_ip_and_port(self):
        return self._node_addr, self.port

    # --- the session's output ----------------------------------------------------------------------

    _node_lost = False  # the session's node was lost: its engine does not answer for the output

    def _open_logs(self, follow: bool):
        """The service's log stream from the manager (from the task's node), all of it."""
        from docker.types.daemon import CancellableStream

        client = self.client
        params = {"stdout": 1, "stderr": 1, "follow": int(follow), "tail": "all", "timestamps": 0, "details": 0}
        res = client._get(client._url("/services/{0}/logs", self.object_id), params=params, stream=True)
        client._raise_for_status(res)
        # Cancellable: closing it ends a follow blocked on a quiet session (or a node gone).
        return CancellableStream(client._multiplexed_response_stream_helper(res), res)

    def _output_source(self) -> StreamSource:
        """The service's log, followed (the stream outlives the task: see _read_output_once)."""
        return StreamSource(lambda: self._open_logs(True), int(self.log_keep_bytes), name=f"logs-{self.session_id}")

    async def _read_output_once(self, timeout: float = 15.0) -> None:
        """Stop following and store the whole log, read to its end, in place of what was followed.

        The task ended (or was scaled away), so the server's last lines are in it. A read that
        fails or finds nothing leaves what was followed as it is.
        """
        session_id, keep = self.session_id, int(self.log_keep_bytes)
        await self.finish_output(timeout=0.0)
        self.output_finished = session_id

        def read_all() -> tuple[bytes, int]:
            stream = self._open_logs(False)
            chunks, size, dropped = [], 0, 0
            try:
                for chunk in stream:
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > 2 * keep:
                        data, cut = cap(b"".join(chunks), keep)
                        chunks, size, dropped = [data], len(data), dropped + cut
            finally:
                stream.close()
            data, cut = cap(b"".join(chunks), keep)
            return data, dropped + cut

        try:
            data, dropped = await asyncio.wait_for(asyncio.to_thread(read_all), timeout)
        except Exception as e:  # the node gone, the manager away: what was followed stays
            self.log.warning("Reading the output of session %s once more: %r", session_id, e)
            return
        if data:

            def replace(db):
                session_logs.reset(db, session_id)
                session_logs.append(db, session_id, data, keep, dropped)

            await self.run_db(replace)

    _task_checked = 0.0

    async def _task_ended(self):
        # The server's port is tried every 0.2 s; its task, two calls to the manager (which may be
        # the node starting it), at most every TASK_END_CHECK s: an exit is seen that much later.
        now = time.monotonic()
        if now - self._task_checked < TASK_END_CHECK:
            return None
        self._task_checked = now
        task = await self.get_task()
        state = (((task or {}).get("Status") or {}).get("State") or "").lower()
        if task is None or state == "running" or state in _STARTING:
            return None
        # The follow stream of a service outlives its task: read the log whole instead.
        await self._read_output_once()
        return (task or {}).get("Status") or {}

    async def _exit_reason(self, status) -> str:
        container = status.get("ContainerStatus") or {}
        reason = (
            f"the session's container exited with status {container.get('ExitCode', '?')} before its server "
            f"listened (its task on node {self._node_id} is {status.get('State') or '?'})"
        )
        err = (status.get("Err") or "").strip()
        return f"{reason}: {err}" if err else reason

    async def _shut_down_task(self, timeout: float = 20.0) -> None:
        """Scale the service to no task and wait (bounded) until its container stopped: the server
        writes its last lines while it shuts down, and the service's log keeps them until removal."""
        try:
            service = await self.docker("inspect_service", self.object_id)
            await self.docker(
                "update_service", self.object_id, service["Version"]["Index"],
                mode=ServiceMode("replicated", replicas=0), fetch_current_spec=True,
            )  # fmt: skip
        except Exception as e:  # removed meanwhile, the manager away: removal follows anyway
            self.log.debug("Scaling down the service %s: %s", self.object_name, e)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                tasks = await self.docker("tasks", filters={"service": self.object_id})
            except Exception:
                return
            states = {((t.get("Status") or {}).get("State") or "").lower() for t in tasks}
            if not states & (_STARTING | {"running"}):
                return
            await asyncio.sleep(TASK_POLL_INTERVAL)

    async def remove_object(self):
        # The service's log goes with it: store the rest first.
        if self.object_id and self.session_id and self.output_finished != self.session_id:
            if self._node_lost:
                # What came before the loss is all there is: store what was read, at once (the
                # hub forgets the session only after this, and its user waits to start again).
                await self.finish_output(timeout=0.0)
            else:
                await self._read_output_once()
        await SwarmSpawner.remove_object(self)

    async def stop_session(self, now: bool) -> None:
        session_id, ports = self.session_id, (self.port, self.ssh_port)  # stop() clears the state
        if self.object_id:
            if not self._node_lost and self.output_finished != self.session_id:
                await self._shut_down_task()
            await SwarmSpawner.stop(self, now=now)
        await self._remove_secrets(session_id)
        for port in ports:
            SwarmSessionSpawner._ports.pop((self._node_id, port), None)

    async def poll_session(self):
        if self.session_id:
            status = await self.run_db(lambda db: getattr(db.get(m.Session, self.session_id), "status", None))
            if status == m.SessionStatus.ERROR:
                # Its node was lost (the heartbeat ended it): remove the service, whose task
                # would otherwise run on when the node comes back; the hub then forgets it.
                self._node_lost = True
                await self._remove_service()
                return "ended ERROR"
        if not self.object_id:
            return 0  # no service was made (refused or failed before it): nothing runs
        try:
            status = await SwarmSpawner.poll(self)
        except Exception as e:
            # The manager unreachable: say nothing ended; killing what runs would be worse.
            self.log.warning("Polling the service %s: the swarm manager did not answer: %s", self.object_name, e)
            return None
        if status is not None and not self._stopping:
            await self._remove_service()  # a task that ended is never restarted: remove its service
        elif status is None and self._log_collector is None and self.session_id and not self._stopping:
            # Running, and nothing follows its output (the hub restarted): read it all again.
            self.collect_output(self._output_source(), reset=True)
        return status

    async def _remove_service(self) -> None:
        if not self.object_id:
            return
        try:
            await self.remove_object()
        except Exception as e:  # already gone is fine; the heartbeat's sweep retries the rest
            self.log.debug("Removing the ended service %s: %s", self.object_name, e)
        await self._remove_secrets(self.session_id)

    async def _remove_secrets(self, session_id: uuid.UUID | None) -> None:
        """The session's secrets and configs, and the home made for it (a plain image's)."""
        if session_id is None:
            return
        try:
            for kind in ("secret", "config"):
                for item in await self.docker(f"{kind}s", filters={"label": f"{LABEL_SESSION_ID}={session_id}"}):
                    await self.docker(f"remove_{kind}", item["ID"])
        except Exception as e:  # the heartbeat's sweep removes what is left
            self.log.debug("Removing the secrets of session %s: %s", session_id, e)
        await asyncio.to_thread(self._remove_home, session_id)

    def _remove_home(self, session_id) -> None:
        home = self._home_dir(session_id)
        if home.is_dir() and not home.is_symlink():
            shutil.rmtree(home, ignore_errors=True)

    # --- usage --------------------------------------------------------------------------------------

    async def sample_usage(self):
        """CPU, memory and I/O of the session's container, from its node's engine."""
        if not self.object_id:
            return {}
        try:
            task = await self.get_task()
        except Exception as e:  # the manager unreachable: no sample this time
            self.log.warning("Usage of %s: the swarm manager did not answer: %s", self.object_name, e)
            return {}
        container = (((task or {}).get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        node_id = (task or {}).get("NodeID")
        if not container or not node_id:
            return {}
        try:
            stats = await self._node_stats(node_id, container)
        except Exception as e:  # the node's engine unreachable (the node lost, say)
            self.log.warning("Usage of %s: the engine of node %s did not answer: %s", self.object_name, node_id, e)
            return {}
        return usage_sample(self, *engine_stats_usage(stats)) if stats else {}

    async def _node_stats(self, node_id: str, container: str) -> dict | None:
        client = await self.node_client(node_id)
        if client is None:
            self.log.debug("No engine URL for node %s (node_docker_urls): no usage samples", node_id)
            return None
        return await asyncio.to_thread(client.stats, container, stream=False, one_shot=True)

    def backend_object_id(self) -> str | None:
        return self.object_id or None

    # --- state across hub restarts ------------------------------------------------------------

    def get_state(self):
        state = super().get_state()
        if self._node_id:
            state["backendai_node_id"] = self._node_id
            state["backendai_node_addr"] = self._node_addr
            state["backendai_node_host"] = self._node_host
        return state

    def load_state(self, state):
        super().load_state(state)
        self._node_id = state.get("backendai_node_id")
        self._node_addr = state.get("backendai_node_addr")
        self._node_host = state.get("backendai_node_host")
        if self._node_host:
            self.ssh_host = self._node_host
