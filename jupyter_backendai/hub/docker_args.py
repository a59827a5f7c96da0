"""A :class:`~.spec.SessionSpec` in Docker's terms: keyword arguments for docker-py.

Pure translation, no engine: :func:`host_config_kwargs` gives what
``docker.APIClient.create_host_config`` takes, :func:`create_kwargs` what
``create_container`` takes besides ``host_config``, and :func:`docker_create_kwargs` both in
one dict (``host_config`` still as keyword arguments, since building a ``HostConfig`` needs the
engine's API version)::

    kw = docker_create_kwargs(spec, port=port)
    kw["host_config"] = client.create_host_config(**kw["host_config"])
    container = client.create_container(name=name, **kw)
    client.put_archive(container["Id"], "/", files_archive(spec))   # before start
    client.start(container["Id"])

Handing these to DockerSpawner as ``extra_create_kwargs`` / ``extra_host_config`` is
possible but beware: DockerSpawner passes both through ``str.format`` with its template
namespace, so an env value or label containing ``{...}`` is rewritten (and ``{}`` raises
IndexError), and its ``_deep_merge`` replaces lists such as ``binds`` instead of merging.
A spawner should call ``create_container`` itself with these arguments.

Security settings are always present: all capabilities dropped, none added back (see
:data:`CAP_ADD`), ``no-new-privileges``, a non-root user, a PID limit, and no swap beyond
the memory limit.
"""

from __future__ import annotations

import io
import ipaddress
import tarfile
from collections.abc import Iterable
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .spec import SESSION_DIR, SessionSpec, SpecError, check_port, container_files, gpu_device_ids

try:  # docker-py comes with dockerspawner; plain dicts of the same fields work without it.
    from docker.types import DeviceRequest as _DeviceRequest
except ImportError:  # pragma: no cover - docker is a dependency through dockerspawner
    _DeviceRequest = None

__all__ = [
    "CAP_ADD",
    "MIN_CPU",
    "MIN_MEM",
    "NETWORK_LABEL",
    "SECURITY_OPT",
    "bind_mounts",
    "check_limits",
    "create_kwargs",
    "device_requests",
    "docker_create_kwargs",
    "files_archive",
    "free_subnet",
    "host_config_kwargs",
    "log_config",
    "nano_cpus",
    "network_create_kwargs",
    "relay_env",
]

#: Capabilities added back after dropping ALL: none.
#:
#: Everything in the container runs as uid 1000, so its processes hold *no* effective
#: capabilities whatever the bounding set says; dropping ALL also empties the bounding set,
#: so nothing (a setuid binary, file capabilities) can regain one, which
#: ``no-new-privileges`` forbids as well. sshd needs none either: it runs as the session
#: user on an unprivileged port (>= 1024, so no ``NET_BIND_SERVICE``), with key-only
#: authentication for that one user (so no ``SETUID``/``SETGID`` to switch users, no
#: ``SYS_CHROOT`` for privilege separation, no ``AUDIT_WRITE`` for PAM login records, no
#: ``CHOWN`` for ptys it already owns). Placing ``id_container`` and the authorized key is
#: done by the engine (``put_archive``) before start, not by the container. A capability
#: added here would do nothing for uid 1000 but widen the bounding set, so the list stays
#: empty unless the session is ever started as root.
CAP_ADD: tuple[str, ...] = ()
SECURITY_OPT: tuple[str, ...] = ("no-new-privileges",)
#: Docker refuses less than 0.01 CPU and less than 6 MiB of memory; say so before it does.
MIN_CPU = Decimal("0.01")
MIN_MEM = 6 * 1024**2


def device_requests(spec: SessionSpec) -> list[Any]:
    """One NVIDIA device request for the placed GPUs (whole or shared), or ``[]``.

    Shared GPUs need their device nodes too: an MPS client still opens the device, the
    control daemon then enforces the share.
    """
    ids = gpu_device_ids(spec)
    if not ids:
        return []
    fields = {"driver": "nvidia", "device_ids": ids, "capabilities": [["gpu"]]}
    return [_DeviceRequest(**fields) if _DeviceRequest is not None else fields]


def bind_mounts(spec: SessionSpec) -> list[tuple[str, str, bool]]:
    """``(host path, container path, read-only)`` of every folder and extra host mount."""
    out = [(m.host_path, m.target(spec.home), m.read_only) for m in spec.mounts]
    out += [(m.host_path, m.container_path, m.read_only) for m in spec.extra_mounts]
    return out


def check_limits(spec: SessionSpec) -> None:
    """Refuse what the engine would refuse: less than its minimum CPU or memory."""
    cpu = spec.slots["cpu"]
    mem = spec.slots["mem"]
    if cpu < MIN_CPU:
        raise SpecError(f"cpu {cpu} is below Docker's minimum of {MIN_CPU}")
    if mem < MIN_MEM:
        raise SpecError(f"mem {mem} bytes is below Docker's minimum of 6 MiB")


def nano_cpus(spec: SessionSpec) -> int:
    """The spec's CPUs in billionths, rounded down (never more than admitted)."""
    return int((spec.slots["cpu"] * 10**9).to_integral_value(rounding=ROUND_FLOOR))


def host_config_kwargs(spec: SessionSpec, *, network: str = "host") -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_host_config``: limits, mounts, GPUs, security."""
    check_limits(spec)
    mem = spec.slots["mem"]
    binds = [f"{source}:{target}:{'ro' if ro else 'rw'}" for source, target, ro in bind_mounts(spec)]
    kwargs: dict[str, Any] = {
        "nano_cpus": nano_cpus(spec),
        "mem_limit": int(mem),
        # Equal to mem_limit: memory + swap may not exceed the memory limit, i.e. no swap.
        "memswap_limit": int(mem),
        "cap_drop": ["ALL"],
        "cap_add": list(CAP_ADD),
        "security_opt": list(SECURITY_OPT),
        "binds": binds,
        "network_mode": network,
        # An init as PID 1 reaps the zombies of kernels and terminals and forwards signals.
        "init": True,
    }
    if spec.pids_limit is not None:
        kwargs["pids_limit"] = spec.pids_limit
    if spec.shmem is not None:
        kwargs["shm_size"] = spec.shmem
    requests = device_requests(spec)
    if requests:
        kwargs["device_requests"] = requests
    return kwargs


def log_config(keep_bytes: int, driver: str = "json-file") -> dict[str, Any] | None:
    """The engine's log driver for a session's container, bounded to about ``keep_bytes``.

    The hub keeps a session's last ``keep_bytes`` of output in the database; the engine's own
    copy (by default an unbounded json-file that `docker logs` reads) is held to between one
    and two times that, in two files, so that a session printing for days cannot fill the
    host's disk. An empty ``driver`` leaves the engine's configured driver alone (a site that
    ships logs with fluentd or journald).
    """
    if not driver:
        return None
    if driver not in ("json-file", "local"):
        raise SpecError(f"log driver {driver!r}: only json-file and local are bounded by size here")
    return {"type": driver, "config": {"max-size": str(max(int(keep_bytes), 1024 * 1024)), "max-file": "2"}}


def create_kwargs(spec: SessionSpec, *, port: int, ip: str = "127.0.0.1", network: str = "host") -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_container`` except ``host_config`` and ``name``.

    The server listens on ``ip:port`` (``--ip``/``--port`` after the spec's command, as the
    host-network recipe does). On a network other than ``host`` the server's port (and the
    SSH port) are exposed.
    """
    check_port(port, "server port")
    if not isinstance(ip, str) or not ip or any(c.isspace() for c in ip):
        raise SpecError(f"server ip {ip!r} is not an address")
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": [*spec.cmd, *spec.args, f"--ip={ip}", f"--port={port}"],
        "user": f"{spec.uid}:{spec.gid}",
        "working_dir": spec.home,
        "environment": dict(spec.env),
        "labels": dict(spec.labels),
    }
    if network != "host":
        kwargs["ports"] = [port] + ([spec.ssh_port] if spec.ssh_port is not None else [])
    return kwargs


def docker_create_kwargs(
    spec: SessionSpec, *, port: int, network: str = "host", ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """:func:`create_kwargs` plus ``host_config`` (as :func:`host_config_kwargs`)."""
    kwargs = create_kwargs(spec, port=port, ip=ip, network=network)
    kwargs["host_config"] = host_config_kwargs(spec, network=network)
    return kwargs


def files_archive(spec: SessionSpec, *, mtime: int = 0) -> bytes:
    """A tar of :func:`~.spec.container_files` for ``put_archive(container, "/", data)``.

    Entries are relative to ``/``, owned by the session's uid/gid with their modes (the engine
    keeps tar ownership when it extracts). Directories the image does not have are included
    (mode 0700, owned by the user) so that sshd's StrictModes accepts them; directories the
    image has (``/home/work``, ``/etc``) are not, so their ownership is left alone.
    """
    files = container_files(spec)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        done: set[str] = set()
        for f in files:
            parent = f.path.rsplit("/", 1)[0]
            if parent == SESSION_DIR or parent.startswith(SESSION_DIR + "/"):
                # SESSION_DIR itself 0755, what is below it 0700.
                base = SESSION_DIR.strip("/").count("/") + 1
                parts = parent.strip("/").split("/")
                for i in range(base, len(parts) + 1):
                    d = "/".join(parts[:i])
                    if d not in done:
                        done.add(d)
                        info = tarfile.TarInfo(d)
                        info.type = tarfile.DIRTYPE
                        info.mode = 0o755 if i == base else 0o700
                        info.uid, info.gid, info.mtime = spec.uid, spec.gid, mtime
                        tar.addfile(info)
            data = f.content.encode()
            info = tarfile.TarInfo(f.path.lstrip("/"))
            info.size = len(data)
            info.mode = f.mode
            info.uid, info.gid, info.mtime = spec.uid, spec.gid, mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --- a network of its own per session -------------------------------------------------------------

#: The label that marks the networks this backend made (and may remove).
NETWORK_LABEL = "ai.backend.network"


def free_subnet(pool: str, prefix: int, used: Iterable[str]) -> ipaddress.IPv4Network:
    """The first ``/prefix`` subnet of ``pool`` that overlaps none of ``used`` (CIDR strings).

    ``used`` holds the subnets of the engine's networks and the host's own addresses, so that a
    session network never shadows a route the host already has.
    """
    try:
        net = ipaddress.ip_network(pool, strict=True)
    except ValueError as e:
        raise SpecError(f"network pool {pool!r} is not a network in CIDR form: {e}") from None
    if net.version != 4:
        raise SpecError(f"network pool {pool!r}: only IPv4 pools are supported")
    if not net.prefixlen <= prefix <= 29:
        raise SpecError(f"session network prefix /{prefix} must lie between the pool's /{net.prefixlen} and /29")
    taken = []
    for cidr in used:
        try:
            other = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if other.version == 4 and other.overlaps(net):
            taken.append(other)
    taken.sort(key=lambda n: (int(n.network_address), -n.prefixlen))
    for candidate in net.subnets(new_prefix=prefix):
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise SpecError(f"no free /{prefix} network left in the pool {pool} ({len(taken)} in use)")


def network_create_kwargs(
    subnet: ipaddress.IPv4Network, *, labels: dict[str, str], egress: bool = False
) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_network(name, **kwargs)`` (``ipam`` in the API's shape).

    ``internal`` (no egress) unless ``egress``: the engine then routes nothing out of the bridge
    and, with its iptables rules, nothing between two session bridges either. The gateway is
    the first address, on the host: the hub's relay listens there.
    """
    gateway = str(next(subnet.hosts()))
    return {
        "driver": "bridge",
        "internal": not egress,
        "check_duplicate": True,
        "ipam": {"Driver": "default", "Config": [{"Subnet": str(subnet), "Gateway": gateway}]},
        "options": {"com.docker.network.bridge.enable_icc": "false"},
        "labels": {**labels, NETWORK_LABEL: "session"},
    }


def relay_env(env: dict[str, str], *, relay: str, hub_netlocs: Iterable[str]) -> dict[str, str]:
    """``env`` with every URL that points at the hub or its proxy pointed at the relay instead.

    ``relay`` is ``host:port`` of the hub relay on the session's gateway; ``hub_netlocs`` the
    ``host:port`` pairs the hub knows itself by (its API, the proxy's public address). Paths are
    kept: the proxy serves the hub's API and the services under the same paths as the hub.
    """
    hub = set(hub_netlocs)
    out = dict(env)
    for key, value in env.items():
        if not value.startswith(("http://", "https://")):
            continue
        url = urlsplit(value)
        if url.netloc in hub:
            out[key] = urlunsplit(("http", relay, url.path, url.query, url.fragment))
    return out
