"""A :class:`~.spec.SessionSpec` in Kubernetes' terms: the pod, its SSH key Secret, its NetworkPolicy.

Pure translation, no API server, plain dicts in the shape of the API's JSON (what
``create_namespaced_pod`` takes as its body), the way kubespawner keeps ``make_pod`` a plain
object builder::

    pod = pod_manifest(spec, node_name, PodConfig(namespace="sessions", port=8888, ...))
    secret = ssh_secret_manifest(spec, PodConfig(...))      # before the pod, when spec has SSH keys

One session is one pod with one container (``notebook``), pinned to the node our scheduler
chose (``nodeName``, or a required node affinity on the node's name), never restarted
(``restartPolicy: Never``). What it gets:

* **Limits**: CPU and memory requests equal to the limits (the pod's QoS class is
  *Guaranteed*; CPUs rounded down to a millicore, never more than admitted). Whole GPUs are
  the extended resource ``gpu_resource`` (``nvidia.com/gpu``); GPU shares are the resources of
  ``gpu_shares_resources`` (e.g. HAMi's ``nvidia.com/gpucores``, or the NVIDIA device plugin's
  shared replicas ``nvidia.com/gpu.shared``), ``ceil(share × units per GPU)`` of each, and,
  for plugins that also count the devices a share spans (HAMi), ``gpu_shares_device_resource``.
  The cluster's device plugin chooses the devices: the spec's ``NVIDIA_VISIBLE_DEVICES`` and
  MPS settings are left out (the plugin sets what it chose; an env of ours would override it
  with devices the plugin may have given to another pod), and so is the MPS pipe mount.
* **Shared memory**: a memory-backed ``emptyDir`` of ``shmem`` bytes at ``/dev/shm`` (charged
  to the container's memory, as on Docker).
* **Security**: uid/gid 1000 (``runAsUser``, ``runAsGroup``, ``runAsNonRoot``), no privilege
  escalation, every capability dropped, the runtime's default seccomp profile, no
  service-account token, no service links in the environment. ``fsGroup`` is the session's gid
  so that the key files of the Secret volume are readable by the session user alone
  (``0440``, root:1000); ``fsGroupChangePolicy: OnRootMismatch`` keeps the kubelet from
  walking big volumes.
* **Folders**: sub-paths of one volume per storage host (``storage_volumes``: a ReadWriteMany
  PVC, an NFS export; by default a ``hostPath`` of ``storage_root/<host>``, for clusters that
  mount the storage at the same path on every node), read-only for ``ro``.
* **Identity**: labels and annotations name the session, its name, user, access key and
  resource group (labels carry values made safe for label syntax; annotations the exact ones).
* **SSH**: the private key (``id_container``) and the authorized key come from a Secret of the
  session's own (:func:`ssh_secret_manifest`), owned by the pod so that deleting the pod deletes
  it; users reach sshd through a NodePort Service of its own (:func:`ssh_service_manifest`).
* **Zombies**: ``shareProcessNamespace`` makes the pod's pause process PID 1, which reaps the
  zombies of kernels and terminals (what ``--init`` does on Docker).

What a pod spec cannot express, and how it is covered: the pids limit is the kubelet's
(``podPidsLimit``, a node setting; the docs say to set it); swap is off on Kubernetes nodes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from ..core.gpu import SHARES, WHOLE
from ..core.images import LABEL_PULL, pull_digest
from .docker_args import create_kwargs
from .spec import (
    ID_CONTAINER,
    LABEL_ACCESS_KEY,
    LABEL_MANAGED,
    LABEL_RESOURCE_GROUP,
    LABEL_SESSION_ID,
    LABEL_SESSION_NAME,
    LABEL_USER,
    SESSION_AUTHORIZED_KEYS,
    SessionSpec,
    SpecError,
    check_port,
    container_files,
)
from .swarm_args import GROUP_LABEL, PUBLIC_HOST_LABEL, NodeAgent

__all__ = [
    "CONTAINER_NAME",
    "GPU_RESOURCE",
    "GROUP_LABEL",
    "PIN_AFFINITY",
    "PIN_NODE_NAME",
    "PodConfig",
    "label_value",
    "network_policy_manifest",
    "node_agents",
    "parse_quantity",
    "pod_manifest",
    "pod_name",
    "pull_pod_manifest",
    "pull_secret_manifest",
    "ssh_secret_manifest",
    "ssh_service_manifest",
]

#: The extended resource of whole NVIDIA GPUs (the NVIDIA device plugin's, and HAMi's).
GPU_RESOURCE = "nvidia.com/gpu"
#: The container's name; kubespawner's ``poll`` reads the exit code of the container of this name.
CONTAINER_NAME = "notebook"
PIN_NODE_NAME = "nodeName"
PIN_AFFINITY = "affinity"
#: Env the device plugin sets for the devices it chose (see the module docstring).
DEVICE_ENV = ("NVIDIA_VISIBLE_DEVICES", "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE",
              "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT")  # fmt: skip
#: Docker's (and so the kubelet's) minimum memory; Kubernetes' minimum CPU is one millicore.
MIN_MEM = 6 * 1024**2

_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$")
_RESOURCE_NAME = re.compile(r"^(?:[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def label_value(value: str) -> str:
    """``value`` if it is a valid label value, else a valid one derived from it (with a hash)."""
    if _LABEL_VALUE.match(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")[:50].rstrip("-_.")
    return f"{safe}-{digest}" if safe else f"x-{digest}"


def pod_name(spec: SessionSpec) -> str:
    return f"backendai-session-{spec.session_id}"


@dataclass(frozen=True)
class PodConfig:
    """How the cluster is set up: what the pod needs besides the spec (the spawner's traits)."""

    namespace: str = "default"
    #: The pod's name (default: ``backendai-session-<session id>``).
    name: str | None = None
    #: Where the server listens inside the pod.
    port: int = 8888
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: Sequence[str] = ()
    #: ``nodeName`` (the kubelet admits the pod directly; a pod it cannot fit fails with the
    #: reason, e.g. ``OutOfcpu``) or ``affinity`` (a required node affinity on the node's name:
    #: the kube-scheduler binds it, honouring taints, and a pod that does not fit stays Pending).
    pin: str = PIN_NODE_NAME
    #: The storage root as the hub sees it; folder paths below it become sub-paths.
    storage_root: str = ""
    #: Volume source per storage host, e.g. ``{"local": {"persistentVolumeClaim": {"claimName":
    #: "backendai-storage"}}}``; a host missing here is a ``hostPath`` of ``storage_root/<host>``.
    storage_volumes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    gpu_resource: str = GPU_RESOURCE
    #: Extended resources that GPU shares are requested as: name → units per whole GPU.
    gpu_shares_resources: Mapping[str, int] = field(default_factory=dict)
    #: An extended resource counting the devices a share spans (HAMi: ``nvidia.com/gpu``), or "".
    gpu_shares_device_resource: str = ""
    #: The session's SSH key Secret (required when the spec has SSH keys).
    ssh_secret: str | None = None
    #: Labels and annotations besides the session's (kubespawner's ``component`` label, with
    #: which its pod reflector finds the pods).
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    extra_annotations: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    priority_class_name: str = ""
    termination_grace_seconds: int = 5


def _check_name(value: str, what: str, pattern: re.Pattern = _DNS_SUBDOMAIN) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise SpecError(f"{what} {value!r} is not a valid Kubernetes name")
    return value


def _cpu(spec: SessionSpec) -> str:
    milli = int((spec.slots["cpu"] * 1000).to_integral_value(rounding=ROUND_FLOOR))
    if milli < 1:
        raise SpecError(f"cpu {spec.slots['cpu']} is below Kubernetes' minimum of 1 millicore")
    return f"{milli}m"


def _mem(spec: SessionSpec) -> str:
    mem = int(spec.slots["mem"])
    if mem < MIN_MEM:
        raise SpecError(f"mem {mem} bytes is below the container runtime's minimum of 6 MiB")
    return str(mem)


def gpu_resources(spec: SessionSpec, config: PodConfig) -> dict[str, str]:
    """The extended resources of the spec's GPUs (see the module docstring)."""
    whole = spec.gpu_placement.get(WHOLE) or {}
    shares = spec.gpu_placement.get(SHARES) or {}
    out: dict[str, str] = {}
    if whole:
        out[config.gpu_resource] = str(len(whole))
    if shares:
        if not config.gpu_shares_resources and not config.gpu_shares_device_resource:
            raise SpecError(
                "the session asks for GPU shares but no Kubernetes resource is configured for them "
                "(KubeSessionSpawner.gpu_shares_resources)"
            )
        total = sum(shares.values(), Decimal(0))
        for name, units in config.gpu_shares_resources.items():
            out[name] = str(int((total * units).to_integral_value(rounding=ROUND_CEILING)))
        if config.gpu_shares_device_resource:
            out[config.gpu_shares_device_resource] = str(len(shares))
    for name in out:
        if not _RESOURCE_NAME.match(name) or name in ("cpu", "memory"):
            raise SpecError(f"{name!r} is not an extended resource name")
    return out


def _storage_volumes(spec: SessionSpec, config: PodConfig) -> tuple[list[dict], list[dict]]:
    """One volume per storage host the folders live on, one sub-path mount per folder."""
    root = config.storage_root.rstrip("/")
    volumes: dict[str, dict[str, Any]] = {}
    mounts = []
    for mount in spec.mounts:
        if not root or not mount.host_path.startswith(root + "/"):
            raise SpecError(f"folder {mount.name!r} is not under the storage root {config.storage_root!r}")
        host, _, sub = mount.host_path[len(root) + 1 :].partition("/")
        if not host or not sub:
            raise SpecError(f"folder {mount.name!r}: {mount.host_path!r} is not <root>/<host>/<folder>")
        volume = f"storage-{label_value(host).lower().replace('_', '-').replace('.', '-')}"[:63].rstrip("-")
        if volume not in volumes:
            source = config.storage_volumes.get(host)
            if source is None:
                source = {"hostPath": {"path": f"{root}/{host}", "type": "Directory"}}
            volumes[volume] = {"name": volume, **{k: dict(v) for k, v in source.items()}}
        entry = {"name": volume, "mountPath": mount.target(spec.home), "subPath": sub}
        if mount.read_only:
            entry["readOnly"] = True
        mounts.append(entry)
    return list(volumes.values()), mounts


def _labels(spec: SessionSpec, config: PodConfig) -> dict[str, str]:
    labels = {key: label_value(value) for key, value in spec.labels.items()}
    labels.update(config.extra_labels)
    return labels


def _annotations(spec: SessionSpec, config: PodConfig) -> dict[str, str]:
    exact = (LABEL_SESSION_ID, LABEL_SESSION_NAME, LABEL_USER, LABEL_ACCESS_KEY, LABEL_RESOURCE_GROUP)
    annotations = {key: spec.labels[key] for key in exact if key in spec.labels}
    annotations.update(config.extra_annotations)
    return annotations


def _metadata(
    name: str, spec: SessionSpec, config: PodConfig, owner: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The metadata of the session's pod and of what lives and dies with it (``owner``: the pod)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": config.namespace,
        "labels": _labels(spec, config),
        "annotations": _annotations(spec, config),
    }
    if owner:
        metadata["ownerReferences"] = [owner_reference(owner["name"], owner["uid"])]
    return metadata


def unprivileged(uid: int, gid: int) -> dict[str, Any]:
    """A container's security context: its user and group, no privilege, no capability."""
    return {
        "runAsUser": uid,
        "runAsGroup": gid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def unprivileged_pod(uid: int, gid: int) -> dict[str, Any]:
    """A pod's security context: its user and group, the runtime's default seccomp profile."""
    return {"runAsUser": uid, "runAsGroup": gid, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def pod_manifest(spec: SessionSpec, node: str, config: PodConfig) -> dict[str, Any]:
    """The session's pod (a ``V1Pod`` as JSON), pinned to ``node``."""
    name = _check_name(config.name or pod_name(spec), "pod name")
    _check_name(config.namespace, "namespace", _DNS_LABEL)
    _check_name(node, "node name")
    if config.pin not in (PIN_NODE_NAME, PIN_AFFINITY):
        raise SpecError(f"pin {config.pin!r} is neither {PIN_NODE_NAME!r} nor {PIN_AFFINITY!r}")
    check_port(config.port, "server port")
    files = container_files(spec)
    if files and not config.ssh_secret:
        raise SpecError("the session has SSH key files but no Secret was named for them")
    base = create_kwargs(spec, port=config.port, ip="0.0.0.0", network="pod")
    env = [{"name": k, "value": v} for k, v in base["environment"].items() if k not in DEVICE_ENV]
    cpu, mem = _cpu(spec), _mem(spec)
    limits = {"cpu": cpu, "memory": mem, **gpu_resources(spec, config)}

    volumes, mounts = _storage_volumes(spec, config)
    if spec.shmem is not None:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": str(spec.shmem)}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if files:
        keys = {ID_CONTAINER: f"{spec.home}/{ID_CONTAINER}", "authorized_keys": SESSION_AUTHORIZED_KEYS}
        volumes.append(
            {
                "name": "ssh-keys",
                "secret": {
                    "secretName": _check_name(config.ssh_secret, "Secret name"),
                    "defaultMode": 0o440,
                    "items": [{"key": key, "path": key} for key in keys],
                },
            }
        )
        mounts += [
            {"name": "ssh-keys", "mountPath": path, "subPath": key, "readOnly": True} for key, path in keys.items()
        ]

    ports = [{"name": "notebook-port", "containerPort": config.port, "protocol": "TCP"}]
    if spec.ssh_port is not None:
        ports.append({"name": "ssh", "containerPort": spec.ssh_port, "protocol": "TCP"})
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": config.image_pull_policy,
        # args, not command: as with Docker's CMD, the image's entrypoint stays.
        "args": base["command"],
        "workingDir": spec.home,
        "env": env,
        "ports": ports,
        "resources": {"requests": dict(limits), "limits": limits},
        "volumeMounts": mounts,
        "securityContext": unprivileged(spec.uid, spec.gid),
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "shareProcessNamespace": True,
        "terminationGracePeriodSeconds": config.termination_grace_seconds,
        "securityContext": {
            **unprivileged_pod(spec.uid, spec.gid),
            "fsGroup": spec.gid,
            "fsGroupChangePolicy": "OnRootMismatch",
        },
    }
    if config.pin == PIN_NODE_NAME:
        pod_spec["nodeName"] = node
    else:
        term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        pod_spec["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        }
    if config.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in config.tolerations]
    if config.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in config.image_pull_secrets]
    if config.priority_class_name:
        pod_spec["priorityClassName"] = config.priority_class_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(name, spec, config),
        "spec": pod_spec,
    }


def ssh_secret_manifest(
    spec: SessionSpec, name: str, config: PodConfig, owner: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Secret with the session's key files (``id_container``, ``authorized_keys``).

    ``owner`` (``{"name": pod name, "uid": pod uid}``) makes the pod its owner, so that the
    garbage collector deletes it with the pod.
    """
    files = {f.path: f.content for f in container_files(spec)}
    if not files:
        raise SpecError("the session has no SSH keys")
    data = {
        ID_CONTAINER: files[f"{spec.home}/{ID_CONTAINER}"],
        "authorized_keys": files[SESSION_AUTHORIZED_KEYS],
    }
    metadata = _metadata(_check_name(name, "Secret name"), spec, config, owner)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def ssh_service_manifest(
    spec: SessionSpec, name: str, config: PodConfig, *, node_port: int | None = None,
    owner: Mapping[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A NodePort Service to the session's sshd: every node forwards ``node_port`` (or one the
    API server allocates) to the pod's SSH port."""
    if spec.ssh_port is None:
        raise SpecError("the session runs no sshd")
    port: dict[str, Any] = {"name": "ssh", "protocol": "TCP", "port": spec.ssh_port, "targetPort": spec.ssh_port}
    if node_port is not None:
        port["nodePort"] = node_port
    metadata = _metadata(_check_name(name, "Service name", _DNS_LABEL), spec, config, owner)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "NodePort",
            "selector": {LABEL_SESSION_ID: label_value(spec.session_id)},
            "ports": [port],
        },
    }


def owner_reference(pod: str, uid: str) -> dict[str, Any]:
    """A reference that makes the pod the owner of an object (deleted with it)."""
    return {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid, "blockOwnerDeletion": True}


def network_policy_manifest(
    spec: SessionSpec, config: PodConfig, *, hub_cidrs: Sequence[str], ssh_cidrs: Sequence[str] = ()
) -> dict[str, Any]:
    """A NetworkPolicy that lets into the session's pod only the hub and proxy (``hub_cidrs``, to
    the server's port) and SSH clients (``ssh_cidrs``, to the SSH port; ``0.0.0.0/0`` for all)."""
    ingress = [
        {
            "from": [{"ipBlock": {"cidr": c}} for c in hub_cidrs],
            "ports": [{"protocol": "TCP", "port": config.port}],
        }
    ]
    if spec.ssh_port is not None and ssh_cidrs:
        ingress.append(
            {
                "from": [{"ipBlock": {"cidr": c}} for c in ssh_cidrs],
                "ports": [{"protocol": "TCP", "port": spec.ssh_port}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": _check_name(config.name or pod_name(spec), "policy name"),
            "namespace": config.namespace,
            "labels": _labels(spec, config),
        },
        "spec": {
            "podSelector": {"matchLabels": {LABEL_SESSION_ID: label_value(spec.session_id)}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


# --- pulling an image onto a node --------------------------------------------------------------

#: The pull pod's container; what it runs does not matter, only that the kubelet made it.
PULL_CONTAINER = "pull"


def pull_pod_manifest(
    reference: str, node: str, *, name: str, namespace: str, pull_secret: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A one-shot pod that makes ``node``'s kubelet pull ``reference`` (``imagePullPolicy: Always``:
    an install fetches the registry's current image even where an older one of the tag is).

    Pinned by ``nodeName``, never restarted, it runs ``true`` as uid 1000 without capabilities,
    token or privileges, in a sliver of CPU and memory: once its container exists the image is on
    the node, whatever the command does (an image without ``true`` fails to start, which still
    proves the pull). ``pull_secret``: the registry's credentials (:func:`pull_secret_manifest`).
    """
    _check_name(name, "pod name")
    _check_name(namespace, "namespace", _DNS_LABEL)
    _check_name(node, "node name")
    if not reference or any(c.isspace() for c in reference):
        raise SpecError(f"the image reference {reference!r} is not valid")
    digest = pull_digest(node, reference)
    tiny = {"cpu": "10m", "memory": "16Mi"}
    pod_spec: dict[str, Any] = {
        "nodeName": node,
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 0,
        "securityContext": unprivileged_pod(1000, 1000),
        "containers": [
            {
                "name": PULL_CONTAINER,
                "image": reference,
                "imagePullPolicy": "Always",
                "command": ["true"],
                "resources": {"requests": dict(tiny), "limits": dict(tiny)},
                "securityContext": unprivileged(1000, 1000),
            }
        ],
    }
    if pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": _check_name(pull_secret, "Secret name")}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(labels or {}), LABEL_MANAGED: "true", LABEL_PULL: digest},
            "annotations": {LABEL_PULL: reference},
        },
        "spec": pod_spec,
    }


def pull_secret_manifest(
    name: str, namespace: str, registry: str, username: str, password: str, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The registry's credentials for one pull, as a ``kubernetes.io/dockerconfigjson`` Secret."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = {"auths": {registry: {"username": username, "password": password, "auth": auth}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {
            "name": _check_name(name, "Secret name"),
            "namespace": _check_name(namespace, "namespace", _DNS_LABEL),
            "labels": {**(labels or {}), LABEL_MANAGED: "true", LABEL_PULL: "credentials"},
        },
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }


# --- the cluster's nodes as agents -------------------------------------------------------------

_SUFFIXES = {
    "m": Decimal("0.001"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def parse_quantity(value: object) -> Decimal:
    """A Kubernetes quantity (``"1500m"``, ``"23Gi"``, ``"4"``) as a number."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from None
    return number * _SUFFIXES[match.group(2) or ""]


def _condition(node: Mapping[str, Any], kind: str) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c.get("status") or "Unknown"
    return "Unknown"


def _address(node: Mapping[str, Any]) -> str:
    addresses = (node.get("status") or {}).get("addresses") or []
    for kind in ("InternalIP", "ExternalIP", "Hostname"):
        for a in addresses:
            if a.get("type") == kind and a.get("address"):
                return a["address"]
    return ""


def _external(node: Mapping[str, Any]) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "ExternalIP" and a.get("address"):
            return a["address"]
    return ""


#: Taints that keep our sessions off a node (what ``kubectl cordon`` and a NotReady node get).
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


def node_agents(
    nodes: Sequence[Mapping[str, Any]],
    *,
    group_label: str = GROUP_LABEL,
    default_group: str = "default",
    gpu_resource: str = GPU_RESOURCE,
    gpu_shares_resources: Mapping[str, int] | None = None,
    tolerated: Sequence[str] = (),
    public_host_label: str = PUBLIC_HOST_LABEL,
) -> list[NodeAgent]:
    """The agents that Node objects (``list_node`` items, as JSON) describe, in name order.

    Ready nodes are alive, NotReady or Unknown ones lost. A cordoned node (``unschedulable``) or
    one with a ``NoSchedule``/``NoExecute`` taint whose key is not in ``tolerated`` is
    unschedulable. The capacity is the node's *allocatable* CPU and memory, and its GPUs:
    ``gpu_resource`` whole devices (numbered ``0..n-1``; the device plugin chooses which), or,
    on nodes that advertise only shares, the count of GPUs those shares make. The resource
    group is the node label ``group_label``, else ``default_group``. Users' SSH clients reach
    the node (a session's NodePort) at ``public_host``: the node label ``public_host_label``,
    else its ExternalIP, else its address.
    """
    out = []
    for node in sorted(nodes, key=lambda n: (n.get("metadata") or {}).get("name", "")):
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}

        def amount(name: str, allocatable: Mapping[str, Any] = allocatable) -> Decimal:
            try:
                return parse_quantity(allocatable.get(name, "0"))
            except ValueError:
                return Decimal(0)

        gpus = int(amount(gpu_resource))
        if not gpus:
            for name, units in (gpu_shares_resources or {}).items():
                if units > 0:
                    gpus = max(gpus, int(amount(name) / units))
        capacity = {"cpu": str(amount("cpu")), "mem": str(int(amount("memory")))}
        if gpus:
            capacity["cuda.shares"] = str(gpus)
            if amount(gpu_resource):
                capacity["cuda.device"] = str(gpus)
        taints = [
            t for t in spec.get("taints") or []
            if t.get("effect") in _BLOCKING_EFFECTS and t.get("key") not in tolerated
        ]  # fmt: skip
        ready = _condition(node, "Ready")
        group = ((meta.get("labels") or {}).get(group_label) or "").strip() or default_group
        if ready != "True":
            reason = f"node Ready={ready}"
        elif spec.get("unschedulable"):
            reason = "node cordoned"
        elif taints:
            reason = "node tainted " + ", ".join(f"{t.get('key')}:{t.get('effect')}" for t in taints)
        else:
            reason = ""
        out.append(
            NodeAgent(
                id=meta.get("name", ""),
                hostname=(meta.get("labels") or {}).get("kubernetes.io/hostname") or meta.get("name", ""),
                addr=_address(node),
                alive=ready == "True",
                schedulable=not spec.get("unschedulable") and not taints,
                resource_group=group,
                capacity=capacity,
                devices=[{"id": str(i), "capacity": 1} for i in range(gpus)],
                state=f"Ready={ready}"
                + (" cordoned" if spec.get("unschedulable") else "")
                + "".join(f" {t.get('key')}:{t.get('effect')}" for t in taints),
                public_host=((meta.get("labels") or {}).get(public_host_label) or "").strip()
                or _external(node)
                or _address(node),
                reason=reason,
            )
        )
    return out
