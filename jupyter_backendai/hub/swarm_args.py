"""A :class:`~.spec.SessionSpec` in Docker Swarm's terms: keyword arguments for ``create_service``.

Pure translation, no engine, on the same rules as :mod:`.docker_args` (the engine's minimum
CPU and memory, CPUs rounded down to a nano-CPU, the folders' bind mounts, the server's command
line, uid 1000, no capabilities)::

    kw = swarm_service_spec(spec, node_id, port=port, ip=node_address)
    client.create_service(**kw)

One session is one service with one replica, pinned to the node our scheduler chose
(``node.id==<id>``); its CPU and memory are both the reservation (the swarm places nothing
beyond a node's capacity, a second safety behind our scheduler) and the limit (the
container's cgroup). The service is never restarted: a session that dies is not silently
re-created on another node; the hub notices and ends it.

What the service API of the engines this targets (API 1.41, Docker 20.10) cannot express, and
how it is covered:

* ``no-new-privileges`` has no field in a service's spec. All capabilities are dropped
  (``CapabilityDrop: ALL``) and the session runs as uid 1000, so it holds no capability and
  its bounding set is empty: a setuid binary gains uid 0 but no capability.
* Swap cannot be limited (no ``MemorySwap``): the container gets the engine's default.
* ``/dev/shm``'s size has no field: a tmpfs of the session's ``shmem`` size is mounted there.
* Device requests do not exist for services: GPUs are reserved as generic resources
  (``NVIDIA-GPU`` by default, one per whole device, so the swarm places no more sessions on
  a node's GPUs than it advertises), while the devices our scheduler chose are named in
  ``NVIDIA_VISIBLE_DEVICES`` (in the spec's environment), which the NVIDIA runtime honours.
  Shared GPUs (``cuda.shares``) reserve no generic resource: several sessions share a device,
  within the shares our scheduler counts per device. The swarm picks *which* of a node's
  generic resources a whole-GPU task holds (its ``DOCKER_RESOURCE_*`` variable), which may not be
  the device our scheduler chose: the NVIDIA runtime must follow ``NVIDIA_VISIBLE_DEVICES``
  (its default), not the swarm's pick (``swarm-resource`` unset in its ``config.toml``).
* Files cannot be placed into a service's container before it starts (no ``put_archive``):
  the session's key files (:func:`~.spec.container_files`: ``id_container`` and sshd's
  authorized key) become swarm secrets of the session (:func:`session_secrets`, stored
  encrypted by the managers), mounted read-only at their paths, owned by the session user with
  mode 0600; a spec with key files and no secret for each of them is refused.

The node's own checks are built here too: the storage probe (:func:`storage_probe_spec`, a
one-shot task pinned to a node that reads a marker the hub wrote under ``storage_root``, and
:func:`probe_verdict` reading its task).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from docker.types import (
    ConfigReference,
    ContainerSpec,
    EndpointSpec,
    Mount,
    Placement,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    TaskTemplate,
)

from ..core.nvidia import configured_devices, gpu_slots
from .docker_args import CAP_ADD, bind_mounts, check_limits, create_kwargs, nano_cpus
from .runtime_args import MOUNT, ImageFacts, ImagePlan, Runtime, supplied_create_kwargs
from .spec import LABEL_SESSION_ID, WHOLE, SessionSpec, SpecError, container_files

__all__ = [
    "GPU_RESOURCE",
    "HOMES_DIR",
    "account_configs",
    "check_node_id",
    "host_endpoint",
    "pinned_service",
    "plain_image_service_spec",
    "GROUP_LABEL",
    "engine_stats_usage",
    "PROBE_LABEL",
    "PUBLIC_HOST_LABEL",
    "NodeAgent",
    "SessionSecret",
    "node_agents",
    "node_gpus",
    "probe_verdict",
    "service_name",
    "session_secrets",
    "storage_probe_spec",
    "swarm_service_spec",
]

#: The generic resource that nodes advertise for NVIDIA GPUs (dockerd's ``node-generic-resources``).
GPU_RESOURCE = "NVIDIA-GPU"


def service_name(spec: SessionSpec) -> str:
    return f"backendai-session-{spec.session_id}"


@dataclass(frozen=True)
class SessionSecret:
    """One of the session's files as a swarm secret: ``name`` and ``data`` for ``create_secret``,
    mounted at ``target`` with ``mode``, owned by the session user."""

    name: str
    data: str = field(repr=False)
    target: str
    mode: int
    labels: dict[str, str] = field(default_factory=dict)


def session_secrets(spec: SessionSpec) -> list[SessionSecret]:
    """The session's files (:func:`~.spec.container_files`) as swarm secrets, one per file."""
    return [
        SessionSecret(
            name=f"backendai-{spec.session_id}-{i}",
            data=f.content,
            target=f.path,
            mode=f.mode,
            labels={LABEL_SESSION_ID: str(spec.session_id)},
        )
        for i, f in enumerate(container_files(spec))
    ]


def swarm_service_spec(
    spec: SessionSpec,
    node_id: str,
    *,
    port: int,
    ip: str,
    network: str = "host",
    gpu_resource: str = GPU_RESOURCE,
    secrets: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_service``: one task of the session on ``node_id``.

    The server listens on ``ip:port`` (the node's address, on the node's ``network``, ``host``
    by default: the hub reaches it there). ``secrets`` maps the name of each of
    :func:`session_secrets` to the id the manager gave it.
    """
    check_node_id(node_id)
    wanted = session_secrets(spec)
    missing = [s.name for s in wanted if not (secrets or {}).get(s.name)]
    if missing:
        raise SpecError(
            "a swarm service receives the session's key files only as secrets; "
            f"none was created for {', '.join(missing)}"
        )
    refs = [
        SecretReference(secrets[s.name], s.name, filename=s.target, uid=str(spec.uid), gid=str(spec.gid), mode=s.mode)
        for s in wanted
    ]
    check_limits(spec)
    base = create_kwargs(spec, port=port, ip=ip, network=network)
    mounts = [Mount(target, source, type="bind", read_only=ro) for source, target, ro in bind_mounts(spec)]
    if spec.shmem is not None and not any(target == "/dev/shm" for _s, target, _ro in bind_mounts(spec)):
        # (The MPS daemon's /dev/shm, gpu_mps_shm_directory, replaces the session's own.)
        shm = Mount("/dev/shm", None, type="tmpfs", tmpfs_size=spec.shmem, tmpfs_mode=0o1777)
        del shm["Source"]  # a tmpfs has none
        mounts.append(shm)
    container = ContainerSpec(
        base["image"],
        # Args, not Command: Docker's create_container command is the image's CMD (the
        # entrypoint stays), and a service's Command would replace the entrypoint instead.
        args=base["command"],
        env=base["environment"],
        workdir=base["working_dir"],
        user=base["user"],
        labels=base["labels"],
        mounts=mounts,
        init=True,
        cap_drop=["ALL"],
        cap_add=list(CAP_ADD) or None,
        secrets=refs or None,
    )
    cpus, mem = nano_cpus(spec), int(spec.slots["mem"])
    whole_gpus = len(spec.gpu_placement.get(WHOLE) or {})
    resources = Resources(
        cpu_limit=cpus,
        mem_limit=mem,
        cpu_reservation=cpus,
        mem_reservation=mem,
        generic_resources={gpu_resource: whole_gpus} if whole_gpus else None,
    )
    if spec.pids_limit is not None:
        resources["Limits"]["Pids"] = spec.pids_limit  # API 1.41; docker-py has no argument for it
    return {
        **pinned_service(service_name(spec), container, node_id, network, dict(spec.labels), resources=resources),
        "endpoint_spec": host_endpoint(network),
    }


def check_node_id(node_id: Any) -> None:
    """Refuse what cannot be a swarm node's id (it goes into a placement constraint)."""
    if not isinstance(node_id, str) or not node_id or any(c.isspace() or c in "=!," for c in node_id):
        raise SpecError(f"node id {node_id!r} is not a swarm node's id")


def pinned_service(
    name: str,
    container: ContainerSpec,
    node_id: str,
    network: str,
    labels: dict[str, str],
    *,
    resources: Resources | None = None,
) -> dict[str, Any]:
    """``create_service`` arguments of one task on ``node_id`` alone that is never restarted: a
    session's, a storage probe's or an image pull's (the task's end is the answer)."""
    task = TaskTemplate(
        container,
        resources=resources,
        restart_policy=RestartPolicy(condition="none"),
        placement=Placement(constraints=[f"node.id=={node_id}"]),
        networks=[network],
    )
    return {"name": name, "task_template": task, "labels": labels, "mode": ServiceMode("replicated", replicas=1)}


def host_endpoint(network: str) -> EndpointSpec | None:
    """On the host network nothing is published (the hub reaches the node's address): no virtual IP."""
    return EndpointSpec(mode="dnsrr") if network == "host" else None


# --- the swarm's nodes as agents ----------------------------------------------------------------

#: The node label that puts a node into a resource group (``docker node update --label-add``).
GROUP_LABEL = "ai.backend.resource-group"
#: The node label naming the host name users' SSH clients reach the node at.
PUBLIC_HOST_LABEL = "ai.backend.public-host"


@dataclass(frozen=True)
class NodeAgent:
    """One swarm node as an agent: ``alive`` (status ready) and ``schedulable`` (availability active)."""

    id: str
    hostname: str
    addr: str
    alive: bool
    schedulable: bool
    resource_group: str
    capacity: dict[str, str]
    devices: list[dict[str, Any]] = field(default_factory=list)
    state: str = ""
    #: Where users' SSH clients reach the node: its label, the operator's mapping, else ``addr``.
    public_host: str = ""
    #: Why the node is lost or not schedulable (``""`` when it is neither).
    reason: str = ""


def _node_addr(node: dict[str, Any]) -> str:
    addr = (node.get("Status") or {}).get("Addr") or ""
    if addr in ("", "0.0.0.0", "127.0.0.1"):
        # A manager may report 0.0.0.0; its advertised address is in its manager status.
        manager = (node.get("ManagerStatus") or {}).get("Addr") or ""
        addr = manager.rsplit(":", 1)[0].strip("[]") if manager else addr
    return addr


def node_gpus(
    resources: dict[str, Any], gpu_resource: str = GPU_RESOURCE, shares_per_device: Decimal | int = 1
) -> list[dict[str, Any]]:
    """The node's GPUs from its generic resources: named ones keep their ids, a count numbers them.

    Each offers ``shares_per_device`` shares (``gpu_shares_per_device``), as an agent's devices
    from nvidia-smi do (:func:`~jupyter_backendai.core.nvidia.agent_devices`).
    """
    ids: list[str] = []
    for entry in resources.get("GenericResources") or []:
        named = entry.get("NamedResourceSpec") or {}
        discrete = entry.get("DiscreteResourceSpec") or {}
        if named.get("Kind") == gpu_resource and named.get("Value"):
            ids.append(str(named["Value"]))
        elif discrete.get("Kind") == gpu_resource:
            ids += [str(i) for i in range(int(discrete.get("Value") or 0))]
    return configured_devices([{"id": i} for i in ids], shares_per_device) if ids else []


def node_agents(
    nodes: list[dict[str, Any]],
    *,
    group_label: str = GROUP_LABEL,
    default_group: str = "default",
    gpu_resource: str = GPU_RESOURCE,
    public_host_label: str = PUBLIC_HOST_LABEL,
    public_hosts: Mapping[str, str] | None = None,
    shares_per_device: Decimal | int = 1,
) -> list[NodeAgent]:
    """The agents a manager's node list (``APIClient.nodes()``) describes, in node-id order.

    ``ready`` nodes are alive, any other state (``down``, ``disconnected``, ``unknown``) lost;
    ``active`` nodes are schedulable, ``drain`` and ``pause`` not. The resource group is the
    node label ``group_label``, else ``default_group``. The public host is ``public_hosts``'
    entry for the node's id or host name, else its label ``public_host_label``, else its address.
    """
    out = []
    for node in sorted(nodes, key=lambda n: n.get("ID", "")):
        spec = node.get("Spec") or {}
        desc = node.get("Description") or {}
        resources = desc.get("Resources") or {}
        state = (node.get("Status") or {}).get("State") or "unknown"
        devices = node_gpus(resources, gpu_resource, shares_per_device)
        capacity = {
            "cpu": str(Decimal(int(resources.get("NanoCPUs") or 0)) / 10**9),
            "mem": str(int(resources.get("MemoryBytes") or 0)),
        }
        if devices:
            capacity.update({k: str(v) for k, v in gpu_slots(devices).items()})
        labels = spec.get("Labels") or {}
        group = (labels.get(group_label) or "").strip() or default_group
        addr = _node_addr(node)
        hostname = desc.get("Hostname") or ""
        mapped = public_hosts or {}
        public = (mapped.get(node["ID"]) or mapped.get(hostname) or labels.get(public_host_label) or "").strip()
        availability = spec.get("Availability", "active")
        if state != "ready":
            reason = f"node {state}" + (
                f": {node['Status']['Message']}" if (node.get("Status") or {}).get("Message") else ""
            )
        elif availability != "active":
            reason = f"node availability {availability}"
        else:
            reason = ""
        out.append(
            NodeAgent(
                id=node["ID"],
                hostname=hostname,
                addr=addr,
                alive=state == "ready",
                schedulable=availability == "active",
                resource_group=group,
                capacity=capacity,
                devices=devices,
                state=f"{state}/{availability}",
                public_host=public or addr,
                reason=reason,
            )
        )
    return out


# --- the storage probe ----------------------------------------------------------------------------

#: The label of a storage probe's service (its value: the node it checks).
PROBE_LABEL = "ai.backend.storage-probe"
#: Where the probe sees ``storage_root`` inside its container.
PROBE_MOUNT = "/backendai-storage"
#: The directory under ``storage_root`` where the hub writes the probes' markers.
PROBE_DIR = ".backendai-probe"


def storage_probe_spec(
    node_id: str, *, image: str, storage_root: str, token: str, network: str = "host"
) -> dict[str, Any]:
    """Keyword arguments for ``create_service``: a one-shot task on ``node_id`` that succeeds
    only when the node sees ``<storage_root>/.backendai-probe/<token>`` holding ``token``.

    ``storage_root`` is bind-mounted read-only (a node that lacks the path rejects the task);
    the task runs as root with every capability dropped, is never restarted and reserves nothing.
    """
    check_node_id(node_id)
    if not token.isalnum():
        raise SpecError("the probe token must be letters and digits")
    marker = f"{PROBE_MOUNT}/{PROBE_DIR}/{token}"
    container = ContainerSpec(
        image,
        # Command, not Args: any image with a shell will do, whatever its entrypoint.
        command=["sh", "-c", f'test "$(cat {marker})" = {token}'],
        user="0:0",
        mounts=[Mount(PROBE_MOUNT, storage_root, type="bind", read_only=True)],
        cap_drop=["ALL"],
        labels={PROBE_LABEL: node_id},
    )
    return {
        **pinned_service(f"backendai-storage-probe-{token[:12]}", container, node_id, network, {PROBE_LABEL: node_id}),
        "endpoint_spec": host_endpoint(network),
    }


def probe_verdict(task: dict[str, Any] | None) -> tuple[str, str] | None:
    """What a storage probe's task says: ``None`` while it has not ended, else ``("ok", "")``,
    ``("missing", why)`` when the node does not see the storage, or ``("unknown", why)`` when
    the probe could not run there (an image missing on the node, say)."""
    if not task:
        return None
    status = task.get("Status") or {}
    state = (status.get("State") or "").lower()
    err = (status.get("Err") or "").strip()
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if state == "complete":
        return "ok", ""
    if state == "failed" and code == 1:  # the probe's test ran and failed
        return "missing", "the node does not see the folder storage (the hub's marker file is not there)"
    if state in ("failed", "rejected"):
        if "bind source path does not exist" in err:
            return "missing", "the node does not have the folder storage's path"
        return "unknown", f"the storage probe could not run on the node: {err or state}"
    if state == "pending" and "no suitable node" in err:  # drained or paused meanwhile
        return "unknown", f"the storage probe could not be placed on the node: {err}"
    if state in ("shutdown", "orphaned", "remove"):
        return "unknown", f"the storage probe's task ended {state}"
    return None


def engine_stats_usage(stats: dict[str, Any]) -> tuple[float, int, int, int]:
    """(CPU seconds, memory bytes, bytes read, bytes written) from an engine's container stats."""
    cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0) / 1e9
    mem = (stats.get("memory_stats") or {}).get("usage", 0)
    read = write = 0
    for entry in (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (entry.get("op") or "").lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    return cpu, int(mem), int(read), int(write)


# --- plain images ---------------------------------------------------------------------------------

#: The directory under ``storage_root`` of the homes made for sessions of images without one.
HOMES_DIR = ".backendai-homes"


def account_configs(spec: SessionSpec, plan: ImagePlan) -> list[SessionSecret]:
    """The plan's ``/etc/passwd`` and ``/etc/group`` as swarm configs of the session (root's, 0444).

    A service's container cannot be written into before it starts (Docker's backend puts the
    files into the container's layer): the manager keeps them as configs, mounted as files over
    the image's own (which are not changed).
    """
    out = []
    for what, text in (("passwd", plan.passwd), ("group", plan.group)):
        if text is not None:
            out.append(
                SessionSecret(
                    name=f"backendai-{spec.session_id}-{what}",
                    data=text,
                    target=f"/etc/{what}",
                    mode=0o444,
                    labels={LABEL_SESSION_ID: str(spec.session_id)},
                )
            )
    return out


def plain_image_service_spec(
    kwargs: dict[str, Any],
    spec: SessionSpec,
    *,
    facts: ImageFacts,
    plan: ImagePlan,
    runtime: Runtime | None = None,
    home: str | None = None,
    configs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """:func:`swarm_service_spec`'s arguments for an image without the server or the work user.

    As Docker's :func:`~.runtime_args.supplied_create_kwargs`: with ``runtime`` the container's
    command (the image's entry point replaced) is the runtime's ``jupyterhub-singleuser`` with the
    server's arguments, the runtime is bind-mounted read-only at :data:`~.runtime_args.MOUNT`
    (``runtime_dir`` must be at the same path on every node), and the environment is the
    runtime's. ``home`` (the plan says the image has no home of uid 1000): a directory of the
    shared storage, made by the hub for this session and owned by uid 1000, bind-mounted at the
    home. ``configs`` maps the names of :func:`account_configs` to the ids the manager gave them.
    """
    out = copy.deepcopy(kwargs)
    container = out["task_template"]["ContainerSpec"]
    mounts = list(container.get("Mounts") or [])
    if plan.supply_runtime:
        if runtime is None:
            raise SpecError("the image needs the product's runtime, and none was given")
        env = dict(e.split("=", 1) for e in container.get("Env") or [])
        docker_like = supplied_create_kwargs(
            {"command": container.get("Args") or [], "environment": env}, runtime, facts
        )
        container["Command"] = docker_like["entrypoint"]
        container["Args"] = docker_like["command"]
        container["Env"] = [f"{k}={v}" for k, v in docker_like["environment"].items()]
        mounts.append(Mount(MOUNT, runtime.host_dir, type="bind", read_only=True))
    if plan.make_home:
        if not home:
            raise SpecError(f"the image has no {spec.home} of uid {spec.uid}, and no home was made for the session")
        mounts.append(Mount(spec.home, home, type="bind"))
    container["Mounts"] = mounts
    wanted = account_configs(spec, plan)
    missing = [c.name for c in wanted if not (configs or {}).get(c.name)]
    if missing:
        raise SpecError(f"a swarm service receives account files only as configs; none was created for {missing}")
    if wanted:
        container["Configs"] = [
            ConfigReference(configs[c.name], c.name, filename=c.target, uid="0", gid="0", mode=c.mode) for c in wanted
        ]
    return out
