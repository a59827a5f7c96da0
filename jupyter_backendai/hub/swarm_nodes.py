"""The Swarm backend's agents: the swarm's nodes, read on every heartbeat, and their storage checked.

Every node of the swarm is an agent (:func:`~.swarm_args.node_agents`): ready and active nodes
are ALIVE and schedulable with their CPUs, memory and generic-resource GPUs, in the resource
group of their node label ``node_group_label`` (else ``default``); drained or paused nodes are
unschedulable; down or missing nodes are LOST, and the sessions they held end ERROR ``agent
lost``; the agent's ``status_info`` says why. The node list is read at the hub's start
(:func:`~.first_run.register_agent_at_start`) and on every heartbeat (``agent_heartbeat_interval``,
10 s), so nodes joining and leaving show up without any spawn. The heartbeat also removes the
services, secrets and configs of sessions that ended (:meth:`SwarmNodesMixin._sweep_services`).

Each node is checked once it is seen ready (``storage_probe``): a one-shot task pinned to it
reads a marker file the hub wrote under ``storage_root``; a node that does not see it is
registered unschedulable with the reason, and nothing is placed there until a later probe
passes (``storage_probe_retry``). A probe that cannot run (its image missing on the node) leaves
the node as it is, with the reason in ``status_info``.

Usage samples come from the engine of a session's node (:meth:`SwarmNodesMixin.node_client`:
``node_docker_urls`` / ``node_docker_url``; the manager the hub talks to needs neither).

:class:`SwarmNodesMixin` is mixed into :class:`~.swarm.SwarmSessionSpawner`; what it keeps (the
nodes, the probes' verdicts, the manager's last error) is shared by all the hub's spawners, on
the class.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import time
import uuid
from pathlib import Path

from sqlalchemy import select
from traitlets import Bool, Dict, Float, Unicode, default
from traitlets.config import LoggingConfigurable

from ..core.scheduling import backend_schedulable
from ..core.slots import ResourceSlots
from ..db import admin
from ..db import models as m
from ..db import sessions as store
from .spawner import SessionRefused, SessionSpawnerMixin
from .spec import LABEL_SESSION_ID
from .swarm_args import (
    GPU_RESOURCE,
    GROUP_LABEL,
    PROBE_DIR,
    PROBE_LABEL,
    PUBLIC_HOST_LABEL,
    NodeAgent,
    node_agents,
    probe_verdict,
    storage_probe_spec,
)

#: What a node not yet checked for the folder storage says.
CHECKING_STORAGE = "checking that the node sees the folder storage"


class SwarmNodesMixin(LoggingConfigurable):
    """The swarm's nodes as agents; mixed into the Swarm spawner before ``SessionSpawnerMixin``."""

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
    public_host_label = Unicode(
        PUBLIC_HOST_LABEL,
        config=True,
        help="""The node label naming the host name users' SSH clients reach a node at
        (``docker node update --label-add ai.backend.public-host=gpu1.example.org <node>``);
        shown as the agent's address. Without it (and without ``public_hosts``): the node's address.""",
    )
    public_hosts = Dict(
        config=True,
        help="""Public host names of nodes by node id or host name, e.g. ``{"gpu1": "gpu1.example.org"}``;
        takes precedence over the node label ``public_host_label``.""",
    )
    storage_probe = Bool(
        True,
        config=True,
        help="""Check that every node sees the folder storage before sessions go there: a short task
        pinned to the node reads a marker file the hub wrote under ``storage_root``. A node that
        does not see it is registered unschedulable with the reason.""",
    )
    storage_probe_image = Unicode(
        "",
        config=True,
        help="""The image of the storage probe's task (it needs ``sh``, ``test`` and ``cat``), present on
        every node. Default: the first installed session image of the database.""",
    )
    storage_probe_timeout = Float(
        60.0, config=True, help="Seconds a node's storage probe may take before its result counts as unknown."
    )
    storage_probe_retry = Float(
        60.0,
        config=True,
        help="Seconds after which a node whose storage probe failed (or could not run) is probed again.",
    )
    node_docker_urls = Dict(
        config=True,
        help="""Docker engine URLs of nodes by node id or host name, e.g. ``{"gpu1": "tcp://gpu1:2376"}``:
        where the hub reads sessions' usage (CPU, memory, I/O) on their node, with the hub's own
        ``tls_config``. The manager node the hub talks to needs no entry.""",
    )
    node_docker_url = Unicode(
        "",
        config=True,
        help="""A template for nodes without an entry in ``node_docker_urls``: ``{addr}``, ``{hostname}``
        and ``{id}`` are the node's (e.g. ``tcp://{hostname}:2376``). Empty: such nodes' sessions
        have no usage samples.""",
    )

    @default("agent_heartbeat_interval")
    def _default_heartbeat(self):
        return 10.0  # nodes joining and leaving show up within this

    _heartbeat_task: asyncio.Task | None = None
    _manager_error: str | None = None
    #: Agents this backend made unschedulable (a drained node), to make schedulable again when
    #: the node is active again; an administrator's own choice is left alone otherwise.
    _drained: set[str] = set()
    #: The nodes as last read (by id): host names and addresses for the engines of usage samples.
    _nodes: dict[str, NodeAgent] = {}
    #: Storage probes' results by node id: (verdict, reason, when); a node without one is unchecked.
    _probes: dict[str, tuple[str, str, float]] = {}
    #: Nodes that wait for their first check before anything is placed there.
    _unchecked: set[str] = set()
    _probe_task: asyncio.Task | None = None
    #: Engines of nodes (usage samples), by URL.
    _node_clients: dict[str, object] = {}
    _manager_node: str | None = None

    async def check_swarm(self) -> None:
        """Before a spawn: refuse it while the manager does not answer (gone since the last
        heartbeat: better now than half-way), and wait for the storage probes under way."""
        await self.ensure_agent()
        try:
            await asyncio.wait_for(self.docker("ping"), 10)
        except Exception as e:
            SwarmNodesMixin._manager_error = str(e) or type(e).__name__
        else:
            if SwarmNodesMixin._manager_error:  # back since the last heartbeat: read the nodes now
                SessionSpawnerMixin._agent_seen = 0.0
                await self.ensure_agent()
        if SwarmNodesMixin._manager_error:
            raise SessionRefused(f"the swarm manager does not answer: {SwarmNodesMixin._manager_error}", 503)
        await self._settle_probes()

    async def node_address(self, node_id: str) -> str:
        """The node's own address, where the hub reaches its sessions."""
        known = SwarmNodesMixin._nodes.get(node_id)
        if known is None:  # not in the last node list (this hub process just started): ask
            known = node_agents([await self.docker("inspect_node", node_id)])[0]
        return known.addr

    async def ensure_agent(self) -> None:
        try:
            await super().ensure_agent()
        except Exception as e:  # the manager unreachable: refuse spawns, kill nothing running
            SwarmNodesMixin._manager_error = str(e) or type(e).__name__
            self.log.warning("The swarm manager did not answer: %s", e)
        if SwarmNodesMixin._heartbeat_task is None or SwarmNodesMixin._heartbeat_task.done():
            SwarmNodesMixin._heartbeat_task = asyncio.ensure_future(self._heartbeat())

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.agent_heartbeat_interval)
            SessionSpawnerMixin._agent_seen = 0.0  # this is the heartbeat: read the nodes now
            await self.ensure_agent()

    async def _register_agent(self) -> None:
        nodes = await asyncio.wait_for(self.docker("nodes"), 30)
        agents = node_agents(
            nodes,
            group_label=self.node_group_label,
            default_group=self.agent_scaling_group,
            gpu_resource=self.gpu_resource,
            public_host_label=self.public_host_label,
            public_hosts=self.public_hosts,
            shares_per_device=self.gpu_shares_per_device,
        )
        if self.agent_capacity:
            capacity = {k: str(v) for k, v in ResourceSlots.parse(self.agent_capacity).items()}
            agents = [dataclasses.replace(a, capacity=capacity) for a in agents]
        SwarmNodesMixin._nodes = {a.id: a for a in agents}
        for agent in agents:
            if not agent.alive:  # checked again when it is back: its mounts may have changed
                SwarmNodesMixin._probes.pop(agent.id, None)
        ended = await self.run_db(self._sync_agents, agents)
        SwarmNodesMixin._manager_error = None
        await self._sweep_services()
        if ended:
            self.log.warning("Sessions ended because their node was lost: %s", ", ".join(map(str, ended)))
            self.scheduler.wake()
        SessionSpawnerMixin._agent_registered = True
        # Drained or paused nodes run no task, the probe's neither: they are checked once active.
        due = [a.id for a in agents if a.alive and a.schedulable and self._probe_due(a.id)]
        task = SwarmNodesMixin._probe_task
        if due and (task is None or task.done()):
            SwarmNodesMixin._probe_task = asyncio.ensure_future(self._probe_nodes(due))

    def _probe_due(self, node_id: str) -> bool:
        if not self.storage_probe:
            return False
        probe = SwarmNodesMixin._probes.get(node_id)
        return probe is None or (probe[0] != "ok" and time.monotonic() - probe[2] >= self.storage_probe_retry)

    def _storage_state(self, agent: NodeAgent, row: m.Agent | None) -> tuple[str, str]:
        """(why the node must not be scheduled on, what to say about its storage) from its probe."""
        if not self.storage_probe:
            return "", ""
        probe = SwarmNodesMixin._probes.get(agent.id)
        if probe is None:
            # A node new to the database (or back from LOST) waits for its check; one that was
            # alive before this hub started keeps its sessions and its place meanwhile.
            if row is None or row.status != m.AgentStatus.ALIVE or not agent.schedulable:
                SwarmNodesMixin._unchecked.add(agent.id)
            if agent.id in SwarmNodesMixin._unchecked:
                return CHECKING_STORAGE, ""
            return "", CHECKING_STORAGE
        SwarmNodesMixin._unchecked.discard(agent.id)
        verdict, reason, _ = probe
        if verdict == "missing":
            return reason, ""
        return "", reason if verdict == "unknown" else ""

    def _sync_agents(self, db, agents: list[NodeAgent]) -> list:
        seen = set()
        lost: dict[str, str] = {}
        for agent in agents:
            seen.add(agent.id)
            if not agent.alive:
                lost[agent.id] = agent.reason
                continue
            group = agent.resource_group
            row = db.get(m.Agent, agent.id)
            blocked, note = self._storage_state(agent, row)
            if not agent.schedulable:
                blocked = agent.reason
            elif db.get(m.ScalingGroup, group) is None:
                self.log.warning("Node %s names the unknown resource group %r", agent.id, group)
                blocked = f"the node's label names the unknown resource group {group!r}"
                group = admin.DEFAULT
            schedulable = backend_schedulable(SwarmNodesMixin._drained, agent.id, bool(blocked), row is not None)
            store.register_agent(
                db,
                agent.id,
                scaling_group=group,
                capacity=ResourceSlots.parse(agent.capacity),
                devices=agent.devices,
                # Where users' SSH clients reach the node (the API and the home page show it);
                # the hub reaches sessions at the node's own address (open_network).
                addr=agent.public_host,
                region=agent.hostname or "swarm",
                version=self.backend_name,
                schedulable=schedulable,
                status_info=blocked or note or None,
            )
        # Nodes that left the swarm (``docker node rm``) are lost too.
        alive = select(m.Agent).where(m.Agent.version == self.backend_name, m.Agent.status == m.AgentStatus.ALIVE)
        for row in db.scalars(alive):
            if row.id not in seen:
                lost[row.id] = "node left the swarm"
        return store.lose_agents(db, list(lost), reasons=lost)

    # --- the storage probe ------------------------------------------------------------------------

    async def _probe_nodes(self, node_ids: list[str]) -> None:
        """Probe the nodes' storage at once; each verdict registers its node again as it comes."""
        image = self.storage_probe_image or await self.run_db(_first_installed_image)

        async def probe(node_id: str) -> None:
            if not image:
                verdict, reason = "unknown", "no image to run the storage probe with (set storage_probe_image)"
            else:
                try:
                    verdict, reason = await self._probe_node(node_id, image)
                except Exception as e:
                    verdict, reason = "unknown", f"the storage probe failed: {e}"
            if verdict != "ok":
                self.log.warning("Storage probe of node %s: %s: %s", node_id, verdict, reason)
            SwarmNodesMixin._probes[node_id] = (verdict, reason, time.monotonic())
            SessionSpawnerMixin._agent_seen = 0.0  # register the node with its verdict now
            await self.ensure_agent()
            self.scheduler.wake()

        await asyncio.gather(*(probe(n) for n in node_ids))

    async def _probe_node(self, node_id: str, image: str) -> tuple[str, str]:
        token = secrets.token_hex(16)
        marker = Path(self.storage_root) / PROBE_DIR / token

        def write() -> None:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.parent.chmod(0o755)
            marker.write_text(token)
            marker.chmod(0o644)

        await asyncio.to_thread(write)
        service = None
        try:
            kwargs = storage_probe_spec(
                node_id, image=image, storage_root=os.path.abspath(self.storage_root), token=token,
                network=self.network_name,
            )  # fmt: skip
            service = await self.docker("create_service", **kwargs)
            deadline = time.monotonic() + self.storage_probe_timeout
            while True:
                tasks = await self.docker("tasks", filters={"service": service["ID"]})
                verdict = probe_verdict(tasks[0] if tasks else None)
                if verdict is not None:
                    return verdict
                if time.monotonic() > deadline:
                    state = ((tasks[0] if tasks else {}).get("Status") or {}).get("State") or "no task"
                    return (
                        "unknown",
                        f"the storage probe did not finish within {self.storage_probe_timeout:.0f} s ({state})",
                    )
                await asyncio.sleep(0.5)
        finally:
            if service is not None:
                try:
                    await self.docker("remove_service", service["ID"])
                except Exception as e:  # the heartbeat's sweep removes what is left
                    self.log.debug("Removing the storage probe %s: %s", service["ID"], e)
            await asyncio.to_thread(marker.unlink, missing_ok=True)

    async def _settle_probes(self) -> None:
        """Wait (bounded) for the storage probes under way: admission counts only checked nodes."""
        task = SwarmNodesMixin._probe_task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), self.storage_probe_timeout + 10)
            except (asyncio.TimeoutError, Exception) as e:  # noqa: BLE001 - the spawn goes on without
                self.log.warning("The nodes' storage probes did not settle: %r", e)

    async def _sweep_services(self) -> None:
        """Remove the services and secrets of sessions that ended (a lost node's, one whose removal
        failed) and storage probes left over.

        Only those of sessions this hub's database knows as finished: another hub's sessions on
        the same swarm are left alone.
        """
        services = await self.docker("services", filters={"label": LABEL_SESSION_ID})
        stored = await self.docker("secrets", filters={"label": LABEL_SESSION_ID})
        configs = await self.docker("configs", filters={"label": LABEL_SESSION_ID})
        by_session: dict[uuid.UUID, list[tuple[str, str]]] = {}
        for kind, items in (("service", services), ("secret", stored), ("config", configs)):
            for item in items:
                sid = ((item.get("Spec") or {}).get("Labels") or {}).get(LABEL_SESSION_ID)
                try:
                    by_session.setdefault(uuid.UUID(sid), []).append((kind, item["ID"]))
                except (TypeError, ValueError):
                    continue
        if by_session:

            def finished(db):
                rows = db.scalars(select(m.Session).where(m.Session.id.in_(list(by_session))))
                return [r.id for r in rows if r.status in m.FINISHED_SESSION_STATUSES]

            for sid in await self.run_db(finished):
                # Services first: a secret in use by a service cannot be removed.
                for kind, item_id in sorted(by_session[sid], key=lambda k: k[0] != "service"):
                    self.log.info("Removing the %s %s of the ended session %s", kind, item_id, sid)
                    try:
                        await self.docker(f"remove_{kind}", item_id)
                    except Exception as e:
                        self.log.warning("Removing the %s of the ended session %s: %s", kind, sid, e)
                await asyncio.to_thread(self._remove_home, sid)
        task = SwarmNodesMixin._probe_task
        if task is None or task.done():
            for probe in await self.docker("services", filters={"label": PROBE_LABEL}):
                try:
                    await self.docker("remove_service", probe["ID"])
                except Exception as e:
                    self.log.debug("Removing a left-over storage probe: %s", e)

    async def agent_info(self):  # pragma: no cover - _register_agent reads the nodes instead
        raise NotImplementedError

    async def node_client(self, node_id: str):
        """The API client of a node's own engine (``node_docker_urls`` / ``node_docker_url``; the
        hub's own client for the manager node it talks to), or None when the hub has no way there."""
        node = SwarmNodesMixin._nodes.get(node_id)
        url = self.node_docker_urls.get(node_id) or (self.node_docker_urls.get(node.hostname) if node else None)
        if not url and self.node_docker_url and node is not None:
            url = self.node_docker_url.format(addr=node.addr, hostname=node.hostname, id=node.id)
        if not url:
            if SwarmNodesMixin._manager_node is None:
                info = await self.docker("info")
                SwarmNodesMixin._manager_node = (info.get("Swarm") or {}).get("NodeID") or ""
            return self.client if node_id == SwarmNodesMixin._manager_node else None
        client = SwarmNodesMixin._node_clients.get(url)
        if client is None:
            import docker

            kwargs = {"version": "auto", "base_url": url, "timeout": 30}
            if self.tls_config:
                kwargs["tls"] = docker.tls.TLSConfig(**self.tls_config)
            client = SwarmNodesMixin._node_clients[url] = await asyncio.to_thread(lambda: docker.APIClient(**kwargs))
        return client


def _first_installed_image(db) -> str:
    row = db.scalars(select(m.Image).where(m.Image.installed.is_(True)).order_by(m.Image.name, m.Image.tag)).first()
    return row.reference if row is not None else ""
