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
  a spec with SSH keys is refused (:class:`~.spec.SpecError`); the Swarm backend runs sessions
  without sshd for now.
"""

from __future__ import annotations

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

__all__ = ["GPU_RESOURCE", "service_name", "swarm_service_spec"]

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
    if container_files(spec):
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
