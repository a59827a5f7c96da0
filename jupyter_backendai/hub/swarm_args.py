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
  Shared GPUs (``cuda.shares``) reserve no generic resource: several sessions share a device.
* Files cannot be placed into a service's container before it starts (no ``put_archive``):
  a spec with an SSH port is refused (:class:`~.spec.SpecError`), since sshd would have no
  keys; the Swarm backend runs sessions without sshd for now, and without ``id_container``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from docker.types import (
    ContainerSpec,
    EndpointSpec,
    Mount,
    Placement,
    Resources,
    RestartPolicy,
    ServiceMode,
    TaskTemplate,
)

from .docker_args import CAP_ADD, bind_mounts, check_limits, create_kwargs, nano_cpus
from .spec import WHOLE, SessionSpec, SpecError, container_files

__all__ = ["GPU_RESOURCE", "GROUP_LABEL", "NodeAgent", "node_agents", "node_gpus", "service_name", "swarm_service_spec"]

#: The generic resource that nodes advertise for NVIDIA GPUs (dockerd's ``node-generic-resources``).
GPU_RESOURCE = "NVIDIA-GPU"


def service_name(spec: SessionSpec) -> str:
    return f"backendai-session-{spec.session_id}"


def swarm_service_spec(
    spec: SessionSpec,
    node_id: str,
    *,
    port: int,
    ip: str,
    network: str = "host",
    gpu_resource: str = GPU_RESOURCE,
) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_service``: one task of the session on ``node_id``.

    The server listens on ``ip:port`` (the node's address, on the node's ``network``, ``host``
    by default: the hub reaches it there).
    """
    if not isinstance(node_id, str) or not node_id or any(c.isspace() or c in "=!," for c in node_id):
        raise SpecError(f"node id {node_id!r} is not a swarm node's id")
    if spec.ssh_port is not None and container_files(spec):
        raise SpecError(
            "a swarm service cannot receive the session's SSH key files before it starts; "
            "the Swarm backend runs sessions without SSH (ssh_enabled = False)"
        )
    check_limits(spec)
    base = create_kwargs(spec, port=port, ip=ip, network=network)
    mounts = [Mount(target, source, type="bind", read_only=ro) for source, target, ro in bind_mounts(spec)]
    if spec.shmem is not None:
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
    task = TaskTemplate(
        container,
        resources=resources,
        restart_policy=RestartPolicy(condition="none"),
        placement=Placement(constraints=[f"node.id=={node_id}"]),
        networks=[network],
    )
    return {
        "name": service_name(spec),
        "task_template": task,
        "labels": dict(spec.labels),
        "mode": ServiceMode("replicated", replicas=1),
        # On the host network nothing is published; the hub reaches the node's address.
        "endpoint_spec": EndpointSpec(mode="dnsrr") if network == "host" else None,
    }


# --- the swarm's nodes as agents ----------------------------------------------------------------

#: The node label that puts a node into a resource group (``docker node update --label-add``).
GROUP_LABEL = "ai.backend.resource-group"


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


def _node_addr(node: dict[str, Any]) -> str:
    addr = (node.get("Status") or {}).get("Addr") or ""
    if addr in ("", "0.0.0.0", "127.0.0.1"):
        # A manager may report 0.0.0.0; its advertised address is in its manager status.
        manager = (node.get("ManagerStatus") or {}).get("Addr") or ""
        addr = manager.rsplit(":", 1)[0].strip("[]") if manager else addr
    return addr


def node_gpus(resources: dict[str, Any], gpu_resource: str = GPU_RESOURCE) -> list[dict[str, Any]]:
    """The node's GPUs from its generic resources: named ones keep their ids, a count numbers them."""
    devices: list[dict[str, Any]] = []
    for entry in resources.get("GenericResources") or []:
        named = entry.get("NamedResourceSpec") or {}
        discrete = entry.get("DiscreteResourceSpec") or {}
        if named.get("Kind") == gpu_resource and named.get("Value"):
            devices.append({"id": str(named["Value"]), "capacity": 1})
        elif discrete.get("Kind") == gpu_resource:
            devices += [{"id": str(i), "capacity": 1} for i in range(int(discrete.get("Value") or 0))]
    return devices


def node_agents(
    nodes: list[dict[str, Any]],
    *,
    group_label: str = GROUP_LABEL,
    default_group: str = "default",
    gpu_resource: str = GPU_RESOURCE,
) -> list[NodeAgent]:
    """The agents a manager's node list (``APIClient.nodes()``) describes, in node-id order.

    ``ready`` nodes are alive, any other state (``down``, ``disconnected``, ``unknown``) lost;
    ``active`` nodes are schedulable, ``drain`` and ``pause`` not. The resource group is the
    node label ``group_label``, else ``default_group``.
    """
    out = []
    for node in sorted(nodes, key=lambda n: n.get("ID", "")):
        spec = node.get("Spec") or {}
        desc = node.get("Description") or {}
        resources = desc.get("Resources") or {}
        state = (node.get("Status") or {}).get("State") or "unknown"
        devices = node_gpus(resources, gpu_resource)
        capacity = {
            "cpu": str(Decimal(int(resources.get("NanoCPUs") or 0)) / 10**9),
            "mem": str(int(resources.get("MemoryBytes") or 0)),
        }
        if devices:
            capacity["cuda.device"] = capacity["cuda.shares"] = str(len(devices))
        group = ((spec.get("Labels") or {}).get(group_label) or "").strip() or default_group
        out.append(
            NodeAgent(
                id=node["ID"],
                hostname=desc.get("Hostname") or "",
                addr=_node_addr(node),
                alive=state == "ready",
                schedulable=spec.get("Availability", "active") == "active",
                resource_group=group,
                capacity=capacity,
                devices=devices,
                state=f"{state}/{spec.get('Availability', 'active')}",
            )
        )
    return out
