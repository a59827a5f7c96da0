"""``SwarmSessionSpawner`` (``backendai-swarm``): sessions as services of a Docker Swarm.

Built on dockerspawner's ``SwarmSpawner``; the hub's engine socket (``client_kwargs`` /
``DOCKER_HOST``) talks to a manager node. Every node of the swarm is an agent
(:func:`~.swarm_args.node_agents`): ready and active nodes are ALIVE and schedulable with their
CPUs, memory and generic-resource GPUs, in the resource group of their node label
``node_group_label`` (else ``default``); drained or paused nodes are unschedulable; down or
missing nodes are LOST, and the sessions they held end ERROR ``agent lost``. The node list is
read on every heartbeat (``agent_heartbeat_interval``, 10 s).

Our scheduler places each session on a node; the session is one service with one task pinned
there (``node.id==<id>``, :func:`~.swarm_args.swarm_service_spec`), never restarted. The task
uses its node's network namespace (``host``): its server listens on the node's address at a
port of its own, where the hub and the proxy reach it. Sessions on one node therefore share
that node's network namespace (see SECURITY.md's limits). Folders are bind mounts from
``storage_root``, which every node must mount at the same path.

Not yet: SSH into swarm sessions (keys cannot be placed into a service before it starts),
usage samples (they live on each node's engine), a storage probe per node.

Images (:class:`~.images.SwarmImages`): a session's image missing on its node is pulled there
by a one-task service before the session's own (PULLING), or with ``pull_policy = "never"``
the scheduler only chooses nodes known to have it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pprint import pformat

from dockerspawner import SwarmSpawner
from jupyterhub.utils import random_port
from sqlalchemy import select
from traitlets import Float, Unicode, default

from ..core.slots import ResourceSlots
from ..db import admin
from ..db import models as m
from ..db import sessions as store
from .images import SwarmImages
from .spawner import SessionRefused, SessionSpawnerMixin
from .spec import LABEL_SESSION_ID, SessionSpec, SpecError
from .swarm_args import GPU_RESOURCE, GROUP_LABEL, NodeAgent, node_agents, service_name, swarm_service_spec

#: Task states on the way to running; anything else before "running" is a failure.
_STARTING = {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
#: Seconds between looks at a starting task.
TASK_POLL_INTERVAL = 0.25


class SwarmSessionSpawner(SwarmImages, SessionSpawnerMixin, SwarmSpawner):
    backend_name = "swarm"
    isolates_users = True

    node_group_label = Unicode(
        GROUP_LABEL,
        config=True,
        help="""The node label that names a swarm node's resource group (``docker node update
        --label-add ai.backend.resource-group=gpu <node>``); nodes without it are in ``default``.
        A node naming a resource group that does not exist is registered unschedulable.""",
    )
    gpu_resource = Unicode(
        GPU_RESOURCE,
        config=True,
        help="""The generic resource under which nodes advertise their GPUs (dockerd's
        ``--node-generic-resource NVIDIA-GPU=<id>``); sessions reserve one per whole GPU.""",
    )
    start_task_timeout = Float(
        120.0,
        config=True,
        help="Seconds a session's task may take to reach running on its node before the start fails.",
    )

    @default("agent_heartbeat_interval")
    def _default_heartbeat(self):
        return 10.0  # nodes joining and leaving show up within this

    @default("ssh_enabled")
    def _default_ssh_enabled(self):
        return False  # a service cannot receive the session's key files before it starts

    @default("network_name")
    def _default_network_name(self):
        return "host"  # the node's network namespace: the hub reaches the node's address

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        return True

    _spec: SessionSpec | None = None
    _node_id: str | None = None
    _node_addr: str | None = None

    # --- agents: the swarm's nodes ---------------------------------------------------------------

    _heartbeat_task: asyncio.Task | None = None
    _manager_error: str | None = None
    #: Agents this backend made unschedulable (a drained node), to make schedulable again when
    #: the node is active again; an administrator's own choice is left alone otherwise.
    _drained: set[str] = set()

    async def ensure_agent(self) -> None:
        try:
            await super().ensure_agent()
        except Exception as e:  # the manager unreachable: refuse spawns, kill nothing running
            SwarmSessionSpawner._manager_error = str(e) or type(e).__name__
            self.log.warning("The swarm manager did not answer: %s", e)
        if SwarmSessionSpawner._heartbeat_task is None or SwarmSessionSpawner._heartbeat_task.done():
            SwarmSessionSpawner._heartbeat_task = asyncio.ensure_future(self._heartbeat())

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.agent_heartbeat_interval)
            await self.ensure_agent()

    async def _register_agent(self) -> None:
        nodes = await asyncio.wait_for(self.docker("nodes"), 30)
        agents = node_agents(
            nodes,
            group_label=self.node_group_label,
            default_group=self.agent_scaling_group,
            gpu_resource=self.gpu_resource,
        )
        if self.agent_capacity:
            capacity = {k: str(v) for k, v in ResourceSlots.parse(self.agent_capacity).items()}
            agents = [dataclasses.replace(a, capacity=capacity) for a in agents]
        ended = await self.run_db(self._sync_agents, agents)
        SwarmSessionSpawner._manager_error = None
        await self._sweep_services()
        if ended:
            self.log.warning("Sessions ended because their node was lost: %s", ", ".join(map(str, ended)))
            self.scheduler.wake()
        SessionSpawnerMixin._agent_registered = True

    def _sync_agents(self, db, agents: list[NodeAgent]) -> list:
        seen = set()
        lost = []
        for agent in agents:
            seen.add(agent.id)
            if not agent.alive:
                lost.append(agent.id)
                continue
            group = agent.resource_group
            schedulable = agent.schedulable
            if db.get(m.ScalingGroup, group) is None:
                self.log.warning("Node %s names the unknown resource group %r", agent.id, group)
                group, schedulable = admin.DEFAULT, False
            row = db.get(m.Agent, agent.id)
            if not schedulable:
                SwarmSessionSpawner._drained.add(agent.id)
            elif agent.id in SwarmSessionSpawner._drained or row is None:
                SwarmSessionSpawner._drained.discard(agent.id)
            else:
                schedulable = None  # keep the administrator's choice
            store.register_agent(
                db,
                agent.id,
                scaling_group=group,
                capacity=ResourceSlots.parse(agent.capacity),
                devices=agent.devices,
                addr=agent.addr,
                region=agent.hostname or "swarm",
                version=self.backend_name,
                schedulable=schedulable,
            )
        # Nodes that left the swarm (``docker node rm``) are lost too.
        alive = select(m.Agent).where(m.Agent.version == self.backend_name, m.Agent.status == m.AgentStatus.ALIVE)
        for row in db.scalars(alive):
            if row.id not in seen:
                lost.append(row.id)
        return store.lose_agents(db, lost)

    async def _sweep_services(self) -> None:
        """Remove the services of sessions that ended (a lost node's, one whose removal failed).

        Only services of sessions this hub's database knows as finished: another hub's sessions
        on the same swarm are left alone.
        """
        services = await self.docker("services", filters={"label": LABEL_SESSION_ID})
        by_session = {}
        for service in services:
            sid = ((service.get("Spec") or {}).get("Labels") or {}).get(LABEL_SESSION_ID)
            try:
                by_session[uuid.UUID(sid)] = service
            except (TypeError, ValueError):
                continue
        if not by_session:
            return

        def finished(db):
            rows = db.scalars(select(m.Session).where(m.Session.id.in_(list(by_session))))
            return [r.id for r in rows if r.status in m.FINISHED_SESSION_STATUSES]

        for sid in await self.run_db(finished):
            service = by_session[sid]
            self.log.info("Removing the service %s of the ended session %s", service["Spec"].get("Name"), sid)
            try:
                await self.docker("remove_service", service["ID"])
            except Exception as e:
                self.log.warning("Removing the service of the ended session %s: %s", sid, e)

    async def agent_info(self):  # pragma: no cover - _register_agent reads the nodes instead
        raise NotImplementedError

    # --- the session --------------------------------------------------------------------------

    async def start(self):
        await self.ensure_agent()
        if SwarmSessionSpawner._manager_error:
            raise SessionRefused(f"the swarm manager does not answer: {SwarmSessionSpawner._manager_error}", 503)
        return await super().start()

    def server_address(self) -> tuple[str, int]:
        # The node is known once the scheduler placed the session (open_network sets the address).
        return "0.0.0.0", random_port()

    async def open_network(self) -> None:
        """Find the node the scheduler chose: the service is pinned to it, the hub reaches its address."""

        def node(db):
            session = db.get(m.Session, self.session_id)
            agent = db.get(m.Agent, session.agent_id) if session and session.agent_id else None
            if agent is None or agent.status != m.AgentStatus.ALIVE:
                raise SpecError(f"the session's node {session.agent_id if session else None} is not available")
            return agent.id, agent.addr

        self._node_id, self._node_addr = await self.run_db(node)
        if not self._node_addr:
            raise SpecError(f"the swarm node {self._node_id} reports no address")
        self.ip = self._node_addr

    async def start_session(self, spec: SessionSpec):
        self._spec = spec
        self.image = spec.image
        self.object_name = service_name(spec)
        return await SwarmSpawner.start(self)

    async def check_allowed(self, image):
        return image  # checked at admission against the images allowed for the user

    async def create_object(self):
        kwargs = swarm_service_spec(
            self._spec, self._node_id, port=self.port, ip=self._node_addr, network=self.network_name,
            gpu_resource=self.gpu_resource,
        )  # fmt: skip
        self.log.info("Creating service %s on node %s", kwargs["name"], self._node_id)
        return await self.docker("create_service", **kwargs)

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

    async def stop_session(self, now: bool) -> None:
        if self.object_id:
            await SwarmSpawner.stop(self, now=now)

    async def poll_session(self):
        if self.session_id:
            status = await self.run_db(lambda db: getattr(db.get(m.Session, self.session_id), "status", None))
            if status == m.SessionStatus.ERROR:
                # Its node was lost (the heartbeat ended it): remove the service, whose task
                # would otherwise run on when the node comes back; the hub then forgets it.
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
        return status

    async def _remove_service(self) -> None:
        if not self.object_id:
            return
        try:
            await self.remove_object()
        except Exception as e:  # already gone is fine; the heartbeat's sweep retries the rest
            self.log.debug("Removing the ended service %s: %s", self.object_name, e)

    def backend_object_id(self) -> str | None:
        return self.object_id or None

    # --- state across hub restarts ------------------------------------------------------------

    def get_state(self):
        state = super().get_state()
        if self._node_id:
            state["backendai_node_id"] = self._node_id
            state["backendai_node_addr"] = self._node_addr
        return state

    def load_state(self, state):
        super().load_state(state)
        self._node_id = state.get("backendai_node_id")
        self._node_addr = state.get("backendai_node_addr")
