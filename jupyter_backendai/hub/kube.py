"""``KubeSessionSpawner`` (``backendai-kubernetes``): sessions as pods of a Kubernetes cluster.

Built on kubespawner's ``KubeSpawner``: its API client and configuration (the hub's kubeconfig
or in-cluster service account, ``namespace``, ``k8s_api_*``), its pod reflector (one watch of
the namespace's pods shared by all spawners) and its event reflector; the pod itself comes from
the pure :func:`~.kube_args.pod_manifest` of the session's spec.

**Agents are the cluster's nodes** (:mod:`.kube_nodes`, mixed in): watched, not read per
spawn; a node NotReady for ``node_lost_grace`` seconds, or gone, is LOST and its sessions end
ERROR ``agent lost``.

**Our scheduler places, Kubernetes obeys.** The pod is pinned to the chosen node (``pin``:
``nodeName``, or a required node affinity); a pod the node's kubelet rejects (``OutOfcpu``)
or that fails to start ends the session ERROR with that reason. Sessions run with
``restartPolicy: Never``: a session that dies is not restarted.

**Network.** The hub and the proxy reach the pod at its IP (kubespawner's default); the pod
reaches the hub's API at ``hub_connect_ip`` / ``hub_connect_url``, which must be routable from
pods. ``network_policy`` adds a NetworkPolicy per session (ingress only from ``hub_cidrs``).

**Faults.** The API server unreachable: spawns are refused with the reason (503), running
sessions are reported running (nothing is killed), and the reflectors retry until it is back.
Pods of sessions that ended (their node lost, a hub that crashed) are deleted when the hub
sees them. A hub restart keeps running sessions (the pod name, node and uid are in the
spawner's state).

**SSH.** sshd runs in the pod (port 2200) with the session's keys from its Secret; a NodePort
Service of the session's own forwards a port of every node to it (the user's preferred port
when it is in the cluster's NodePort range and free, else one the API server allocates). Users
connect to the node's public host: ``ssh_public_host``, else the node label
``public_host_label``, else its ExternalIP, else its address (the agent's address, which the API
and the hub's home page show).

**Images** (:mod:`.kube_images`, mixed in): a node's images are those its kubelet lists in the
Node object; an administrator's install, and a spawn whose node lacks its image
(``pull_policy``, by default following ``image_pull_policy``), pull it onto the node with a
one-shot pod pinned there, its state on the pending page; ``pull_policy = "never"`` places
sessions only on nodes that have their image.

Not yet: usage samples from the kubelets.
"""

from __future__ import annotations

import asyncio
import json
import math

from kubernetes_asyncio.client import ApiException
from kubernetes_asyncio.client.rest import RESTResponse
from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Enum, Float, Integer, List, Unicode, default

from ..db import models as m
from .docker import sshd_and_server
from .kube_args import (
    GPU_RESOURCE,
    PIN_AFFINITY,
    PIN_NODE_NAME,
    PodConfig,
    network_policy_manifest,
    owner_reference,
    pod_manifest,
    pod_name,
    ssh_secret_manifest,
    ssh_service_manifest,
)
from .kube_images import KubeImages
from .kube_logs import KubeLogsMixin
from .kube_nodes import KubeNodesMixin, NodeReflector
from .kube_status import api_reason, container_ran, pod_ended, pod_problem
from .spawner import SessionRefused, SessionSpawnerMixin
from .spec import SessionSpec, SpecError, container_files

__all__ = ["KubeSessionSpawner", "NodeReflector"]

#: Seconds between looks at a starting pod (a flat interval: a late look is time the user waits).
POD_POLL_INTERVAL = 0.2
#: Seconds an answer of the API server stands for the spawns that follow it.
API_CHECK_REUSE = 1.0
#: sshd's port inside a session's pod (its own network namespace).
INNER_SSH_PORT = 2200


def read_proxy_once(api) -> None:
    """Read the proxy environment for the API server once, not at every request.

    The Kubernetes client's HTTP session trusts the environment, so aiohttp reads the proxy
    variables and ``~/.netrc`` on a worker thread at every request: two thread hops per API
    call, a tenth of the hub's CPU with a thousand pods at once. The proxy they name for the API
    server (if any) is set on the client instead; ``.netrc`` is not read (the API server
    authenticates with tokens and certificates, and aiohttp refuses netrc credentials beside
    the token's ``Authorization`` header anyway).
    """
    rest = api.api_client.rest_client
    session = rest.pool_manager
    if not getattr(session, "_trust_env", False):
        return
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    if not rest.proxy:
        try:
            proxy, auth = get_env_proxy_for_url(URL(api.api_client.configuration.host))
        except LookupError:
            pass
        else:
            rest.proxy = str(proxy)
            if auth is not None:
                rest.proxy_headers = {**(rest.proxy_headers or {}), "Proxy-Authorization": auth.encode()}
    session._trust_env = False


class KubeSessionSpawner(KubeImages, KubeNodesMixin, KubeLogsMixin, SessionSpawnerMixin, KubeSpawner):
    backend_name = "kubernetes"
    isolates_users = True

    gpu_resource = Unicode(
        GPU_RESOURCE,
        config=True,
        help="The extended resource of whole GPUs (the NVIDIA device plugin's ``nvidia.com/gpu``).",
    )
    gpu_shares_resources = Dict(
        value_trait=Integer(min=1),
        config=True,
        help="""Extended resources that GPU shares (``cuda.shares``) are requested as, with their units
        per whole GPU: ``{"nvidia.com/gpucores": 100, "nvidia.com/gpumem-percentage": 100}`` for
        HAMi, ``{"nvidia.com/gpu.shared": 4}`` for the NVIDIA device plugin's time-slicing with 4
        replicas. A session gets ``ceil(shares × units)`` of each. Empty: sessions cannot ask for
        shares (they are refused with the reason).""",
    )
    gpu_shares_device_resource = Unicode(
        "",
        config=True,
        help="""An extended resource counting the devices a shares session spans, for device plugins
        that need both (HAMi: ``nvidia.com/gpu``); empty: none.""",
    )
    pin = Enum(
        [PIN_NODE_NAME, PIN_AFFINITY],
        PIN_NODE_NAME,
        config=True,
        help="""How a pod is pinned to the node our scheduler chose: ``nodeName`` (the node's kubelet
        admits it directly; a pod that does not fit fails at once with the reason, e.g.
        ``OutOfcpu``) or ``affinity`` (a required node affinity: the kube-scheduler binds it,
        honouring taints and its own view of the node; a pod that does not fit stays Pending until
        ``start_pod_timeout``).""",
    )
    storage_volumes = Dict(
        config=True,
        help="""The volume of each storage host, as a Kubernetes volume source: folders are sub-paths of
        it, e.g. ``{"local": {"persistentVolumeClaim": {"claimName": "backendai-storage"}}}`` (a
        ReadWriteMany claim in the sessions' namespace) or ``{"local": {"nfs": {"server":
        "nfs.example.org", "path": "/export/backendai/local"}}}``. A host without an entry is a
        ``hostPath`` of ``storage_root/<host>``: the storage must then be mounted at the same
        path on every node.""",
    )
    session_tolerations = List(
        Dict(),
        config=True,
        help="""Tolerations of session pods (e.g. of a taint that keeps other pods off GPU nodes). A node
        tainted NoSchedule/NoExecute with a key not tolerated here is an unschedulable agent.""",
    )
    start_pod_timeout = Float(
        120.0,
        config=True,
        help="Seconds a session's pod may take to run (image pull included) before the start fails.",
    )
    watch_server_start = Bool(
        True,
        config=True,
        help="""Whether a start waits until the session's server listens at its pod's IP, looking at the
        pod meanwhile: a server that exits while it starts then ends its spawn with the reason and
        the last lines of its output. Off: the start returns once the pod runs and JupyterHub waits
        for the server (``http_timeout``), which fails such a spawn with a timeout only (for pods
        that run nothing, such as on simulated nodes).""",
    )
    stop_pod_timeout = Float(
        60.0,
        config=True,
        help="""Seconds to wait for a stopped session's pod to be gone from its node (its slots are
        given to the next session only then, so that the node's kubelet admits that one).""",
    )
    api_check_timeout = Float(
        5.0,
        config=True,
        help="Seconds the API server may take to answer the check before a spawn (else the spawn is refused).",
    )
    network_policy = Bool(
        False,
        config=True,
        help="""Create a NetworkPolicy per session that admits into the pod only ``hub_cidrs`` (to the
        server's port) and ``ssh_cidrs`` (to sshd). It takes effect only where the cluster's
        network plugin enforces policies (Calico, Cilium, ...).""",
    )
    hub_cidrs = List(
        Unicode(),
        config=True,
        help="Where the hub and the proxy reach pods from (CIDRs), for ``network_policy``.",
    )
    ssh_cidrs = List(
        Unicode(),
        ["0.0.0.0/0"],
        config=True,
        help="Where users' SSH clients may reach sessions' sshd from (CIDRs), for ``network_policy``.",
    )
    ssh_node_ports = List(
        Integer(),
        [30000, 32767],
        minlen=2,
        maxlen=2,
        config=True,
        help="""The cluster's NodePort range (the API server's ``--service-node-port-range``): a user's
        preferred SSH port inside it is asked for; otherwise the API server allocates one.""",
    )

    @default("agent_heartbeat_interval")
    def _default_heartbeat(self):
        return 5.0  # nodes are watched; the heartbeat only ends grace periods and removes stale pods

    @default("image_pull_policy")
    def _default_pull_policy(self):
        return "IfNotPresent"

    _spec: SessionSpec | None = None
    _node: str | None = None
    _secret_name: str | None = None
    _service_name: str | None = None
    _pod_created = False
    pod_id: str | None = None  # the pod's uid (KubeSpawner sets it as a plain attribute too)

    # --- agents: the cluster's nodes ---------------------------------------------------------

    #: The check of the API server that spawns arriving now share, and when one last succeeded.
    _api_check: asyncio.Future | None = None
    _api_answered: tuple[float, asyncio.AbstractEventLoop | None] = (-math.inf, None)

    async def _check_api(self) -> None:
        """Refuse the spawn (503) when the API server does not answer.

        A thousand spawns at once share one check (and one that answered within the last
        second): asked a thousand times, it competed with their pods' own requests.
        """
        loop = asyncio.get_running_loop()
        answered_at, answered_loop = KubeSessionSpawner._api_answered
        if answered_loop is loop and loop.time() - answered_at < API_CHECK_REUSE:
            return
        check = KubeSessionSpawner._api_check
        if check is None or check.done() or check.get_loop() is not loop:
            check = KubeSessionSpawner._api_check = asyncio.ensure_future(
                asyncio.wait_for(self.api.get_api_resources(), self.api_check_timeout)
            )
        try:
            await asyncio.shield(check)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            reason = getattr(e, "reason", None) or str(e) or type(e).__name__
            raise SessionRefused(f"the Kubernetes API server does not answer: {reason}", 503) from None
        KubeSessionSpawner._api_answered = (loop.time(), loop)

    async def start(self):
        read_proxy_once(self.api)
        await self.ensure_agent()
        if KubeSessionSpawner._api_error:
            raise SessionRefused(f"the Kubernetes API server does not answer: {KubeSessionSpawner._api_error}", 503)
        await self._check_api()
        return await SessionSpawnerMixin.start(self)

    def server_address(self) -> tuple[str, int]:
        return "0.0.0.0", self.port  # in the pod's own network namespace

    def session_command(self, ssh_port: int | None) -> tuple[str, ...]:
        return ("sh", "-c", sshd_and_server("0.0.0.0"), "session", "jupyterhub-singleuser")

    def session_ssh_port(self, public_port: int) -> int:
        return INNER_SSH_PORT

    def choose_ssh_port(self, preferred: int | None) -> int:
        """The user's preferred port if the cluster can give it as a NodePort, else 0 (the API
        server allocates one when the Service is made; the session's port is set then)."""
        low, high = self.ssh_node_ports
        return preferred if preferred and low <= preferred <= high else 0

    async def open_network(self) -> None:
        """Nothing to open: the pod gets its network from the cluster; the node the scheduler
        chose is read with the rest of the session (``_prepare``, one transaction less a start)."""

    def _prepare(self, db, hub_env: dict[str, str], user_env: dict[str, str] | None = None) -> SessionSpec:
        """Find the node the scheduler chose (the pod is pinned to it) and the session's image, then the spec."""
        session = db.get(m.Session, self.session_id)
        agent = db.get(m.Agent, session.agent_id) if session and session.agent_id else None
        if agent is None or agent.status != m.AgentStatus.ALIVE:
            raise SpecError(f"the session's node {session.agent_id if session else None} is not available")
        self._node, self.image = agent.id, session.image
        self.ssh_host = agent.addr or self._node  # shown on the hub's home page
        # KubeSpawner's get_env named its image before the session's was known here.
        hub_env = {**hub_env, **{k: self.image for k in ("JUPYTER_IMAGE_SPEC", "JUPYTER_IMAGE") if k in hub_env}}
        return super()._prepare(db, hub_env, user_env)

    def _pod_config(self, ssh_secret: str | None) -> PodConfig:
        return PodConfig(
            namespace=self.namespace,
            name=self.pod_name,
            port=self.port,
            image_pull_policy=self.image_pull_policy,
            image_pull_secrets=[s["name"] if isinstance(s, dict) else s for s in self.image_pull_secrets or []],
            pin=self.pin,
            storage_root=self.storage_root,
            storage_volumes=self.storage_volumes,
            gpu_resource=self.gpu_resource,
            gpu_shares_resources=self.gpu_shares_resources,
            gpu_shares_device_resource=self.gpu_shares_device_resource,
            ssh_secret=ssh_secret,
            extra_labels=self._build_pod_labels(self._expand_all(self.extra_labels)),
            extra_annotations=self._build_common_annotations(self._expand_all(self.extra_annotations)),
            tolerations=self.session_tolerations,
            priority_class_name=self.priority_class_name or "",
            termination_grace_seconds=self.delete_grace_period,
        )

    async def _api(self, call, *args, **kwargs):
        return await asyncio.wait_for(call(*args, **kwargs), self.k8s_api_request_retry_timeout)

    async def start_session(self, spec: SessionSpec):
        self._spec = spec
        self.pod_name = pod_name(spec)
        # Before the pod: a node that lacks the image pulls it while the session is PULLING.
        await self.ensure_image(self._node, spec.image)
        await self._pods()
        if self.events_enabled:
            await self._start_watching_events()
            events = self.events
            self._last_event = events[-1]["metadata"]["uid"] if events else None
        files = container_files(spec)
        self._secret_name = f"backendai-ssh-{spec.session_id}" if files else None
        config = self._pod_config(self._secret_name)
        pod = pod_manifest(spec, self._node, config)
        try:
            if self._secret_name:
                secret = ssh_secret_manifest(spec, self._secret_name, config)
                await self._create("secret", secret, read=False)
            self.log.info("Creating pod %s/%s on node %s", self.namespace, self.pod_name, self._node)
            self._pod_created = True
            created = await self._create("pod", pod)
            self.pod_id = created["metadata"]["uid"]
            owner = owner_reference(self.pod_name, self.pod_id)
            if self._secret_name:
                # Owned by the pod from now on: the garbage collector deletes it with the pod.
                await self._api_json(
                    self.api.patch_namespaced_secret,
                    self._secret_name,
                    self.namespace,
                    {"metadata": {"ownerReferences": [owner]}},
                    read=False,
                )
            if spec.ssh_port is not None:
                await self._open_ssh(spec, config, owner)
            if self.network_policy:
                policy = network_policy_manifest(spec, config, hub_cidrs=self.hub_cidrs, ssh_cidrs=self.ssh_cidrs)
                policy["metadata"]["ownerReferences"] = [owner]
                await self._create("network_policy", policy, read=False)
            running = await self._wait_running()
            self.collect_output(self._output_source(), reset=False)
            if self.watch_server_start:
                await self.wait_for_server(
                    running["status"]["podIP"], self.port, exited=self._server_exited, describe=self._exit_reason
                )
        except BaseException:
            await asyncio.shield(self._remove_session_objects(force=True))
            raise
        return self._get_pod_url(running)

    async def _open_ssh(self, spec: SessionSpec, config: PodConfig, owner: dict) -> None:
        """The session's NodePort Service; the port users connect to is the one it got."""
        self._service_name = f"backendai-ssh-{spec.session_id}"
        pod = {"name": self.pod_name, "uid": owner["uid"]}
        wanted = self.ssh_port or None
        manifest = ssh_service_manifest(spec, self._service_name, config, node_port=wanted, owner=pod)
        try:
            service = await self._create("service", manifest)
        except RuntimeError:
            if wanted is None:
                raise
            # The preferred port is taken (or outside the range): any port will do.
            self.log.info("NodePort %s not available for session %s: taking another", wanted, self.session_id)
            manifest = ssh_service_manifest(spec, self._service_name, config, owner=pod)
            service = await self._create("service", manifest)
        self.ssh_port = service["spec"]["ports"][0]["nodePort"]

        def record(db, port=self.ssh_port):
            db.get(m.Session, self.session_id).ssh_port = port

        await self.run_db(record)

    async def _create(self, kind: str, manifest: dict, *, read: bool = True) -> dict:
        """Create an object, its JSON as the API server answered (``read``, else ``{}``); one of
        the same name (a start that failed half-way) is replaced."""
        if kind == "network_policy":
            from kubespawner.clients import shared_client

            api = shared_client("NetworkingV1Api")
        else:
            api = self.api
        create = getattr(api, f"create_namespaced_{kind}")
        try:
            return await self._api_json(create, self.namespace, manifest, read=read)
        except ApiException as e:
            if e.status != 409:
                raise RuntimeError(f"the API server refused the session's {kind}: {api_reason(e)}") from None
        await self._api(getattr(api, f"delete_namespaced_{kind}"), manifest["metadata"]["name"], self.namespace)
        if kind == "pod":
            await self._wait_gone(manifest["metadata"]["name"], self.stop_pod_timeout)
        return await self._api_json(create, self.namespace, manifest, read=read)

    async def _api_json(self, call, *args, read: bool = True, **kwargs) -> dict:
        """An API call's answer as plain JSON (``read``; else ``{}``, for answers nobody reads).

        The client's own models (every field of a pod made an object, its times parsed) cost the
        hub's one process more CPU than the call itself, for a field or two read; and so does
        parsing answers nobody reads: with a thousand pods at once, seconds of the time they took.
        """

        async def call_and_read() -> dict:
            response = await call(*args, _preload_content=False, **kwargs)
            async with response:
                data = await response.read()
            if not 200 <= response.status <= 299:
                raise ApiException(http_resp=RESTResponse(response, data))
            return json.loads(data) if read else {}

        return await asyncio.wait_for(call_and_read(), self.k8s_api_request_retry_timeout)

    async def _wait_running(self) -> dict:
        """Until the pod runs; a pod its node rejects or whose container cannot start fails with why."""
        key = f"{self.namespace}/{self.pod_name}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_pod_timeout
        while True:
            pod = self.pod_reflector.pods.get(key)
            if pod is not None:
                if self.is_pod_running(pod):
                    return pod
                problem = pod_problem(pod)
                if problem and container_ran(pod):
                    raise await self._start_failed(pod)  # its server ended: say why with what it wrote
                if problem:
                    raise RuntimeError(f"the pod on node {self._node} {problem}")
            if loop.time() > deadline:
                last = "; ".join(
                    f"{e.get('reason')}: {e.get('message')}" for e in self.events[-3:]
                ) or json.dumps((pod or {}).get("status", {}).get("conditions") or "not seen")  # fmt: skip
                raise RuntimeError(f"the pod did not run within {self.start_pod_timeout:.0f} s ({last})")
            await asyncio.sleep(POD_POLL_INTERVAL)

    async def _delete_pod(self, name: str, namespace: str, *, wait: bool, force: bool = False) -> None:
        """Delete a pod; ``force`` (grace 0) also where its node is gone (its kubelet would never
        confirm), in which case the kubelet, if the node comes back, removes the containers."""
        node = None
        if self.pod_reflector is not None:
            node = (self.pod_reflector.pods.get(f"{namespace}/{name}") or {}).get("spec", {}).get("nodeName")
        if node and not self._node_ready(node):
            force = True
        grace = 0 if force else self.delete_grace_period
        try:
            await self._api(self.api.delete_namespaced_pod, name, namespace, grace_period_seconds=grace)
        except ApiException as e:
            if e.status != 404:
                raise
        if wait:
            await self._wait_gone(name, self.stop_pod_timeout, namespace)

    async def _wait_gone(self, name: str, timeout: float, namespace: str | None = None) -> None:
        key = f"{namespace or self.namespace}/{name}"
        deadline = asyncio.get_running_loop().time() + timeout
        while self.pod_reflector is not None and key in self.pod_reflector.pods:
            if asyncio.get_running_loop().time() > deadline:
                self.log.warning("The pod %s is still there after %.0f s", key, timeout)
                return
            await asyncio.sleep(POD_POLL_INTERVAL)

    async def _remove_session_objects(self, *, force: bool = False, wait: bool = False) -> None:
        if self._pod_created or self.pod_id:
            try:
                await self._delete_pod(self.pod_name, self.namespace, wait=wait, force=force)
            except Exception as e:
                self.log.warning("Deleting the pod %s: %s", self.pod_name, e)
        # Owned by the pod, they go with it; deleted here too in case the owner was never set.
        for kind, name in (("secret", self._secret_name), ("service", self._service_name)):
            if not name:
                continue
            try:
                await self._api(getattr(self.api, f"delete_namespaced_{kind}"), name, self.namespace)
            except Exception as e:  # already gone with its pod is fine
                self.log.debug("Deleting the %s %s: %s", kind, name, e)

    async def _pods(self):
        """The pod reflector, loaded; started again if its watch gave up (the API server was down)."""
        reflector = self.pod_reflector
        # (A reflector whose watch_task is None is still loading: another spawner started it.)
        dead = reflector is not None and reflector.watch_task is not None and reflector.watch_task.done()
        return await self._start_watching_pods(replace=dead)

    async def delete_forever(self) -> None:
        """Nothing of a deleted server outlives its stop: no per-user volume claim (KubeSpawner's
        ``delete_forever`` would delete one, which the hub has no right to and does not make)."""

    async def stop_session(self, now: bool) -> None:
        await self._pods()
        if self.session_id and self.output_finished != self.session_id and (self._pod_created or self.pod_id):
            # The container ends first and the pod stays, so that its whole log, the server's last
            # lines included, is read before the pod (and its log) is deleted.
            if not now and await self._end_container(self.delete_grace_period + 10):
                await self._read_output_once()
        await self._remove_session_objects(force=now, wait=True)
        await self.finish_output(timeout=5.0)  # what was followed, when the whole log could not be read
        self._pod_created = False

    async def poll_session(self):
        if self.session_id:
            status = await self.run_db(lambda db: getattr(db.get(m.Session, self.session_id), "status", None))
            if status == m.SessionStatus.ERROR:
                # Its node was lost: store what was followed before the loss (its kubelet does not
                # answer for more), and delete the pod (it would run on when the node comes back).
                await self.finish_output(timeout=0.0)
                await self._remove_session_objects(force=True)
                return "ended ERROR"
        if not (self._pod_created or self.pod_id):
            return 0  # no pod was made (refused or failed before it): nothing runs
        try:
            reflector = await self._pods()
        except Exception as e:
            # The API server unreachable: say nothing ended; killing what runs would be worse.
            self.log.warning("Polling the pod %s: the API server did not answer: %s", self.pod_name, e)
            return None
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}")
        if pod is None:
            return 1  # deleted from outside
        ended = pod_ended(pod)
        if ended is None:
            if self._log_collector is None and self.session_id and not self._stopping:
                # Running, and nothing follows its output (the hub restarted): read it all again.
                self.collect_output(self._output_source(), reset=True)
            return None
        if not self._stopping:
            if self.session_id and self.output_finished != self.session_id:
                await self._read_output_once()  # before its pod, and its log, go
            await self._remove_session_objects()  # never restarted: remove what is left of it
        return ended

    def backend_object_id(self) -> str | None:
        return self.pod_id or None

    # --- progress: the queue, then the pod's events ----------------------------------------------

    async def progress(self):
        async for event in SessionSpawnerMixin.progress(self):
            yield event
        seen = set()
        for _ in range(int(self.start_pod_timeout / 0.5)):
            if self.session_id is None or (self.pod_id and self.ready):
                return
            for e in self.events:
                uid = e["metadata"]["uid"]
                if uid not in seen:
                    seen.add(uid)
                    yield {"progress": 60, "message": f"{e.get('type')} {e.get('reason')}: {e.get('message')}"}
            status = await self.run_db(lambda db: getattr(db.get(m.Session, self.session_id), "status", None))
            if status != m.SessionStatus.PREPARING:
                return
            await asyncio.sleep(0.5)

    # --- state across hub restarts ------------------------------------------------------------

    def get_state(self):
        state = super().get_state()
        if self._node:
            state["backendai_node"] = self._node
        if self.pod_id:
            state["backendai_pod_uid"] = self.pod_id
        if self._secret_name:
            state["backendai_secret"] = self._secret_name
        if self._service_name:
            state["backendai_service"] = self._service_name
        return state

    def load_state(self, state):
        super().load_state(state)
        self._node = state.get("backendai_node")
        self.pod_id = state.get("backendai_pod_uid")
        self._secret_name = state.get("backendai_secret")
        self._service_name = state.get("backendai_service")
        self._pod_created = bool(self.pod_id)

    def clear_state(self):
        super().clear_state()
        self._node = None
        self.pod_id = None
        self._secret_name = None
        self._service_name = None
