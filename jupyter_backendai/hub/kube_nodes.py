"""The Kubernetes backend's agents: the cluster's nodes, watched, written to the agents.

A node reflector (kubespawner's reflector pattern: one list, then a watch, restarted on errors;
:class:`NodeReflector`) keeps the Node objects, optionally only those matching
``agent_node_selector``, and every change is written to the agents at once
(:func:`~.kube_args.node_agents`): a Ready node is an ALIVE agent with its allocatable CPU,
memory and GPUs, in the resource group of its label ``node_group_label`` (else ``default``); a
cordoned node (or one with a taint the sessions do not tolerate) is unschedulable; a node that
is NotReady for ``node_lost_grace`` seconds, or gone, is LOST and its sessions end ERROR
``agent lost`` (their slots free at once, the queue moves). The heartbeat also deletes the pods
of sessions that ended (:meth:`KubeNodesMixin._sweep_pods`). No API call per spawn reads nodes.

:class:`KubeNodesMixin` is mixed into :class:`~.kube.KubeSessionSpawner`; what it keeps (the
reflector, the grace periods) is shared by all the hub's spawners, on the class.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from functools import partial
from typing import Any

from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiException
from kubespawner.reflector import ResourceReflector
from sqlalchemy import select
from traitlets import Any as AnyTrait
from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from ..core.scheduling import backend_schedulable
from ..core.slots import ResourceSlots
from ..db import admin
from ..db import models as m
from ..db import sessions as store
from .kube_args import GROUP_LABEL, node_agents
from .spawner import SessionSpawnerMixin
from .spec import LABEL_MANAGED, LABEL_SESSION_ID
from .swarm_args import PUBLIC_HOST_LABEL, NodeAgent

#: Seconds after which a sync reads every node's agent row again though no node changed: rows
#: that an administrator or another hub changed meanwhile, a resource group created since. More
#: often, a thousand nodes' rows read at every heartbeat competed with the sessions' starts.
FULL_SYNC_INTERVAL = 30.0


class NodeReflector(ResourceReflector):
    """The cluster's Node objects by name, kept up to date by a list and a watch.

    kubespawner's ``ResourceReflector`` keys namespaced objects by ``namespace/name``; nodes
    have no namespace, so the list and the watch are its own here, with two differences: every
    change calls ``on_change`` (agents follow nodes at once), and a watch that keeps failing
    (the API server down) keeps retrying, at most every 10 s, instead of giving up: the
    agents must follow the nodes again when it is back. ``error`` says why the last try failed.
    """

    kind = "nodes"
    list_method_name = "list_node"
    omit_namespace = True
    on_change = AnyTrait(None, allow_none=True, help="Called without arguments after the nodes changed.")
    error: str | None = None

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        return self.resources

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def _list_and_update(self, resource_version=None):
        kwargs: dict[str, Any] = {
            "label_selector": self.label_selector,
            "_request_timeout": self.request_timeout,
            "_preload_content": False,
        }
        response = await self.api.list_node(**kwargs)
        if not response.ok:
            raise ApiException(status=response.status, reason=response.reason)
        data = json.loads(await response.read())
        self.resources = {n["metadata"]["name"]: n for n in data["items"]}
        self.error = None
        if not self.first_load_future.done():
            self.first_load_future.set_result(None)
        self._changed()
        return data["metadata"]["resourceVersion"]

    async def _watch_and_update(self):
        delay = 0.1
        resource_version = None
        while not self._stopping:
            started = time.monotonic()
            w = watch.Watch()
            try:
                resource_version = await self._list_and_update()
                delay = 0.1
                method = partial(self.api.list_node, _preload_content=False)
                async with w.stream(
                    method,
                    label_selector=self.label_selector,
                    resource_version=resource_version,
                    timeout_seconds=self.timeout_seconds,
                    _request_timeout=self.request_timeout,
                ) as stream:
                    async for event in stream:
                        node = event["raw_object"]
                        name = node.get("metadata", {}).get("name")
                        if event["type"] == "DELETED":
                            self.resources.pop(name, None)
                        elif event["type"] in ("ADDED", "MODIFIED") and name:
                            self.resources[name] = node
                        self._changed()
                        if self._stopping or time.monotonic() - started >= self.restart_seconds:
                            break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.error = str(e) or type(e).__name__
                self.log.warning("Watching the cluster's nodes: %s; retrying in %.1f s", self.error, delay)
                self._changed()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                w.stop()
                await w.close()

    async def start(self):
        # The first list is the watch loop's first step: a failing API server is retried by it.
        if self.watch_task and not self.watch_task.done():
            raise RuntimeError("the node watch is already running")
        self.watch_task = asyncio.create_task(self._watch_and_update())


class KubeNodesMixin(LoggingConfigurable):
    """The cluster's nodes as agents; mixed into the Kubernetes spawner before ``SessionSpawnerMixin``."""

    node_group_label = Unicode(
        GROUP_LABEL,
        config=True,
        help="""The node label that names a node's resource group (``kubectl label node gpu1
        ai.backend.resource-group=gpu``); nodes without it are in ``default``. A node naming a
        resource group that does not exist is registered unschedulable.""",
    )
    agent_node_selector = Unicode(
        "",
        config=True,
        help="""A label selector of the nodes that are agents (e.g. ``ai.backend.agent=true``); empty:
        every node. A node that stops matching leaves like a node that is gone (LOST).""",
    )
    node_lost_grace = Float(
        0.0,
        config=True,
        help="""Seconds a node may stay NotReady before it is LOST and its sessions end ``agent lost``
        (meanwhile it takes no new sessions). The controller-manager has already waited its
        ``--node-monitor-grace-period`` (40 s by default) before a node turns NotReady.""",
    )
    public_host_label = Unicode(
        PUBLIC_HOST_LABEL,
        config=True,
        help="""The node label naming the host users' SSH clients reach a node at (``kubectl label node
        gpu1 ai.backend.public-host=gpu1.example.org``); without it: the node's ExternalIP, else its
        address. Shown as the agent's address.""",
    )
    ssh_public_host = Unicode(
        "",
        config=True,
        help="""One host name for SSH to every session (a load balancer or gateway in front of the nodes'
        NodePorts), instead of each node's own public host.""",
    )

    _node_reflector: NodeReflector | None = None
    _heartbeat_task: asyncio.Task | None = None
    _sync_task: asyncio.Task | None = None
    _sync_again = False
    #: One sync at a time: the first list of nodes is synced both by the registration and by the
    #: watch's change, and two at once would both insert a new node's agent.
    _sync_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
    _api_error: str | None = None
    #: When each node was first seen not Ready (for ``node_lost_grace``).
    _not_ready_since: dict[str, float] = {}
    #: Agents this backend made unschedulable (cordoned, in their grace period), to make
    #: schedulable again when they are not; an administrator's own choice is left alone otherwise.
    _cordoned: set[str] = set()
    _last_sweep = 0.0
    #: The agents of the nodes as last read: {(node, resourceVersion): agent}, for the settings.
    _agent_memo: tuple[str, dict[tuple[str, str | None], NodeAgent]] = ("", {})
    #: What the last sync wrote, and when (see FULL_SYNC_INTERVAL).
    _last_sync: tuple[tuple, float] | None = None

    async def ensure_agent(self) -> None:
        try:
            await super().ensure_agent()
        except Exception as e:  # the API server unreachable: refuse spawns, kill nothing running
            KubeNodesMixin._api_error = str(e) or type(e).__name__
            self.log.warning("The Kubernetes API server did not answer: %s", e)
        task = KubeNodesMixin._heartbeat_task
        if task is None or task.done():
            KubeNodesMixin._heartbeat_task = asyncio.ensure_future(self._heartbeat())

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.agent_heartbeat_interval)
            try:
                await self._sync_nodes()
            except Exception:
                self.log.exception("Syncing the cluster's nodes to the agents failed")

    async def _start_watching_nodes(self) -> NodeReflector:
        reflector = KubeNodesMixin._node_reflector
        if reflector is None or reflector.watch_task is None or reflector.watch_task.done():
            labels = {}
            reflector = NodeReflector(parent=self, labels=labels, on_change=self._nodes_changed)
            if self.agent_node_selector:
                reflector.label_selector = self.agent_node_selector
            KubeNodesMixin._node_reflector = reflector
            await reflector.start()
        return reflector

    def _nodes_changed(self) -> None:
        """A node changed: write the agents soon (changes coming together are written once)."""
        task = KubeNodesMixin._sync_task
        if task is not None and not task.done():
            KubeNodesMixin._sync_again = True
            return
        KubeNodesMixin._sync_task = asyncio.ensure_future(self._sync_soon())

    async def _sync_soon(self) -> None:
        while True:
            KubeNodesMixin._sync_again = False
            await asyncio.sleep(0.2)
            try:
                await self._sync_nodes()
            except Exception:
                self.log.exception("Syncing the cluster's nodes to the agents failed")
            if not KubeNodesMixin._sync_again:
                return

    async def _register_agent(self) -> None:
        reflector = await self._start_watching_nodes()
        # Until the first list of nodes arrives or fails (the watch retries it on its own).
        deadline = asyncio.get_running_loop().time() + self.api_check_timeout
        while not reflector.first_load_future.done():
            if reflector.error or asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(reflector.error or "no answer to the first list of nodes")
            await asyncio.sleep(0.05)
        await self._sync_nodes()
        SessionSpawnerMixin._agent_registered = True

    def _agents(self, reflector: NodeReflector) -> list[NodeAgent]:
        """The nodes' agents, in name order; a node is read again only when it changed."""
        settings = dict(
            group_label=self.node_group_label,
            default_group=self.agent_scaling_group,
            gpu_resource=self.gpu_resource,
            gpu_shares_resources=self.gpu_shares_resources,
            tolerated=[t.get("key") for t in self.session_tolerations if t.get("key")],
            public_host_label=self.public_host_label,
        )
        settings_key = repr(sorted(settings.items()))
        memo = KubeNodesMixin._agent_memo if KubeNodesMixin._agent_memo[0] == settings_key else (settings_key, {})
        agents, seen = [], {}
        for name in sorted(reflector.nodes):
            node = reflector.nodes[name]
            key = (name, (node.get("metadata") or {}).get("resourceVersion"))
            agent = memo[1].get(key)
            if agent is None or key[1] is None:
                agent = node_agents([node], **settings)[0]
            seen[key] = agent
            agents.append(agent)
        KubeNodesMixin._agent_memo = (settings_key, seen)
        if self.agent_capacity:
            capacity = {k: str(v) for k, v in ResourceSlots.parse(self.agent_capacity).items()}
            agents = [dataclasses.replace(a, capacity=capacity) for a in agents]
        return agents

    async def _sync_nodes(self) -> None:
        loop = asyncio.get_running_loop()
        if KubeNodesMixin._sync_lock is None or KubeNodesMixin._sync_lock[0] is not loop:
            KubeNodesMixin._sync_lock = (loop, asyncio.Lock())
        async with KubeNodesMixin._sync_lock[1]:
            await self._sync_nodes_now()

    async def _sync_nodes_now(self) -> None:
        reflector = KubeNodesMixin._node_reflector
        if reflector is None or not reflector.first_load_future.done():
            return
        if reflector.error:
            # The nodes as last seen stay as they are: a node is not lost because the API is down.
            KubeNodesMixin._api_error = reflector.error
            return
        KubeNodesMixin._api_error = None
        agents = self._agents(reflector)
        now = time.monotonic()
        for agent in agents:
            if agent.alive:
                KubeNodesMixin._not_ready_since.pop(agent.id, None)
            else:
                KubeNodesMixin._not_ready_since.setdefault(agent.id, now)
        images = self._node_images_changed(reflector.nodes)
        # No node changed since the last sync, and none is in its grace period: the rows are
        # as that sync left them (read again every FULL_SYNC_INTERVAL for what others changed).
        key = (self.db_url, self.backend_name, self.ssh_public_host, agents)
        last = KubeNodesMixin._last_sync
        if (
            last is not None and last[0] == key and now - last[1] < FULL_SYNC_INTERVAL
            and not images and not KubeNodesMixin._not_ready_since
        ):  # fmt: skip
            ended = []
        else:
            KubeNodesMixin._last_sync = None
            ended = await self.run_db(self._sync_agents, agents, now, images)
            KubeNodesMixin._last_sync = (key, now)
        self._node_images_reported(images)
        if ended:
            self.log.warning("Sessions ended because their node was lost: %s", ", ".join(map(str, ended)))
            self.scheduler.wake()
        if ended or now - KubeNodesMixin._last_sweep >= self.agent_heartbeat_interval:
            KubeNodesMixin._last_sweep = now
            await self._sweep_pods()

    def _sync_agents(self, db, agents: list[NodeAgent], now: float, images: dict | None = None) -> list:
        """Write what changed (agents of unchanged nodes are not written again); lose the lost;
        report the image lists that changed (``images``, :mod:`.kube_images`)."""
        rows = {
            row.id: row for row in db.scalars(select(m.Agent).where(m.Agent.version == self.backend_name))
        }  # fmt: skip
        # Once per sync, not once per node: a thousand nodes asked a thousand times.
        known_groups = set(db.scalars(select(m.ScalingGroup.name)))
        seen: set[str] = set()
        lost: dict[str, str] = {}
        for agent in agents:
            seen.add(agent.id)
            blocked = "" if agent.schedulable else agent.reason
            if not agent.alive:
                since = KubeNodesMixin._not_ready_since.get(agent.id, now)
                if now - since >= self.node_lost_grace:
                    lost[agent.id] = agent.reason
                    continue
                blocked = f"{agent.reason} (lost after {self.node_lost_grace:g} s)"  # nothing new goes there
            group = agent.resource_group
            if group not in known_groups:
                self.log.warning("Node %s names the unknown resource group %r", agent.id, group)
                blocked = blocked or f"the node's label names the unknown resource group {group!r}"
                group = admin.DEFAULT
            row = rows.get(agent.id)
            schedulable = backend_schedulable(KubeNodesMixin._cordoned, agent.id, bool(blocked), row is not None)
            capacity = ResourceSlots.parse(agent.capacity)
            addr = self.ssh_public_host or agent.public_host or agent.addr
            if (
                row is not None
                and row.status == m.AgentStatus.ALIVE
                and row.scaling_group == group
                and ResourceSlots.parse(row.available_slots or {}) == capacity
                and (row.devices or []) == agent.devices
                and row.addr == addr
                and (row.status_info or "") == blocked
                and (schedulable is None or row.schedulable == schedulable)
            ):
                continue
            store.register_agent(
                db,
                agent.id,
                scaling_group=group,
                capacity=capacity,
                devices=agent.devices,
                # Where users' SSH clients reach the node (the API and the home page show it);
                # the hub reaches sessions at their pods' IPs.
                addr=addr,
                region=agent.hostname or "kubernetes",
                version=self.backend_name,
                schedulable=schedulable,
                status_info=blocked or None,
            )
        # Nodes deleted from the cluster (or no longer matching the selector) are lost too.
        for row in rows.values():
            if row.id not in seen and row.status == m.AgentStatus.ALIVE:
                lost[row.id] = "node deleted from the cluster"
        if images:
            self._report_node_images(db, images, seen - set(lost))
        return store.lose_agents(db, list(lost), reasons=lost)

    async def _sweep_pods(self) -> None:
        """Delete the pods of sessions that ended (a lost node's, a hub that crashed meanwhile).

        Only pods of sessions this hub's database knows as finished: another hub's are left alone.
        """
        reflector = self.pod_reflector
        if reflector is None:
            return
        by_session: dict[str, dict] = {}
        for pod in list(reflector.pods.values()):
            labels = pod.get("metadata", {}).get("labels") or {}
            if labels.get(LABEL_MANAGED) == "true" and labels.get(LABEL_SESSION_ID):
                by_session[labels[LABEL_SESSION_ID]] = pod
        if not by_session:
            return

        def finished(db):
            import uuid

            ids = []
            for sid in by_session:
                try:
                    ids.append(uuid.UUID(sid))
                except ValueError:
                    continue
            rows = db.execute(select(m.Session.id, m.Session.status).where(m.Session.id.in_(ids)))
            return [str(session_id) for session_id, status in rows if status in m.FINISHED_SESSION_STATUSES]

        for sid in await self.run_db(finished):
            pod = by_session[sid]
            if pod["metadata"].get("deletionTimestamp") and self._node_ready(pod["spec"].get("nodeName")):
                continue  # its kubelet is already stopping it
            self.log.info("Deleting the pod %s of the ended session %s", pod["metadata"]["name"], sid)
            await self._delete_pod(pod["metadata"]["name"], pod["metadata"]["namespace"], wait=False)

    # Images on nodes: :class:`~.kube_images.KubeImages` (before this mixin) does them.

    def _node_images_changed(self, nodes: dict[str, dict]) -> dict:
        return {}

    def _node_images_reported(self, changed: dict) -> None:
        pass

    def _report_node_images(self, db, changed: dict, alive: set[str]) -> None:
        pass

    def _node_ready(self, name: str | None) -> bool:
        reflector = KubeNodesMixin._node_reflector
        node = reflector.nodes.get(name) if reflector is not None and name else None
        if node is None:
            return False
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in node.get("status", {}).get("conditions") or []
        )

    async def agent_info(self):  # pragma: no cover - _register_agent reads the nodes instead
        raise NotImplementedError
