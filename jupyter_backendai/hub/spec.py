"""The backend-neutral description of one session container, and how it is built.

A spawner reads the user's options and the database, runs admission and GPU placement, and
then calls :func:`build_spec` with plain values. The resulting :class:`SessionSpec` says
everything an engine needs (image, slots, mounts, env, labels, GPU devices, SSH files) and
nothing about *which* engine: :mod:`.docker_args` turns it into Docker create arguments, a
Swarm or Kubernetes backend would turn it into a service or a pod. Both steps are pure
(no I/O, no Docker, no database), the way kubespawner keeps ``make_pod`` a plain object
builder, so every rule here is tested without an engine.

Decisions, with their reasons:

* **Folders** are mounted at ``<home>/<name>`` (F29). A folder name must be one safe path
  component (:func:`core.home.check_mount_name`, where the home's layout is said once).
* **Automount** (F30): every *accessible* folder whose name starts with ``.`` is mounted
  without being chosen. A dot-folder that is also chosen is mounted once. Two *different*
  folders (different host paths) that would land on the same mount point are refused rather
  than one being picked silently.
* **Reserved names**: a folder named like a file the session writes into its home at start
  (:data:`core.home.SESSION_FILES`: ``id_container``, the private SSH key of F22) is not
  mounted, because it would shadow that file. ``.ssh`` is *not* reserved: it is
  the F31 mechanism. When a ``.ssh`` folder is mounted, its ``authorized_keys`` is honoured
  *in addition to* the session's own key, which lives outside the home
  (:data:`SESSION_AUTHORIZED_KEYS`), so that nothing is ever written into the user's folder.
* **Secrets**: the Backend.AI secret key is never an input here, and hub env entries named
  like one (:data:`FORBIDDEN_ENV`) or holding a PEM private key are refused. The SSH private
  key travels in :attr:`SessionSpec.ssh_private_key` (hidden from ``repr``) and reaches the
  container as a file (:func:`container_files`), never as env or a label, because env and
  labels are readable by anyone who may ``docker inspect``.
* **GPUs**: a session gets whole GPUs (``cuda.device``) or GPU shares (``cuda.shares``),
  never both. See :func:`gpu_env` for the MPS variables and the choice made for splits.
* **User env** (``config.environ``, the forms' field) is checked by
  :func:`core.environ.check_environ` (names the product sets are refused); the hub's env and
  the session's own variables are applied over it, so an operator's ``Spawner.environment``
  wins over a user's value of the same name.
* The container user is never root (uid and gid must be > 0).
"""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType

from ..core import errors
from ..core.apps import FOLDERS_ENV, SERVICE_PORTS_ENV, format_service_ports
from ..core.environ import FORBIDDEN_ENV, EnvironError, check_environ
from ..core.gpu import SHARES, WHOLE, GpuDevice, device_order
from ..core.home import GID, HOME, ID_CONTAINER, SESSION_FILES, UID, USERNAME, FolderNameError, check_mount_name
from ..core.slots import ResourceSlots, SlotError, format_amount, parse_amount

# HOME, USERNAME and ID_CONTAINER (the session home's layout, said in core.home) are exported
# from here too, beside the rest of what a backend needs to build a container.
__all__ = [
    "DEFAULT_CMD",
    "DEFAULT_GPU_MEMORY",
    "DEFAULT_PIDS_LIMIT",
    "FORBIDDEN_ENV",
    "HOME",
    "ID_CONTAINER",
    "LABEL_ACCESS_KEY",
    "LABEL_MANAGED",
    "LABEL_RESOURCE_GROUP",
    "LABEL_SESSION_ID",
    "LABEL_SESSION_NAME",
    "LABEL_USER",
    "MPS_PIPE_DIRECTORY",
    "SESSION_AUTHORIZED_KEYS",
    "SESSION_DIR",
    "ContainerFile",
    "FolderMount",
    "FolderRef",
    "HostMount",
    "SessionSpec",
    "SpecError",
    "build_spec",
    "check_folder_name",
    "check_port",
    "container_files",
    "gpu_device_ids",
    "gpu_env",
]

#: A directory of the session's own files, created by the backend (absent from images).
SESSION_DIR = "/etc/backendai"
#: The public half of the user's SSH key pair, authorized for the session's sshd. Outside the
#: home on purpose: a user's ``.ssh`` folder may be mounted at ``<home>/.ssh`` and must not be
#: written to, and no folder name can shadow a path outside the home.
SESSION_AUTHORIZED_KEYS = f"{SESSION_DIR}/ssh/authorized_keys"

#: Where MPS clients find the control daemon's pipes, inside the container.
MPS_PIPE_DIRECTORY = "/tmp/nvidia-mps"
#: Device memory assumed for a GPU whose size the caller does not know.
DEFAULT_GPU_MEMORY = 16 * 1024**3
#: Enough for a notebook server, kernels, compilers and ``make -j``; stops a fork bomb.
DEFAULT_PIDS_LIMIT = 4096
DEFAULT_CMD: tuple[str, ...] = ("jupyterhub-singleuser",)

# Label names. ``ai.backend.*`` follow Backend.AI's agent, so its tools recognise our
# containers; ``org.jupyter-backendai.managed`` marks containers this project may reap.
LABEL_SESSION_ID = "ai.backend.session-id"
LABEL_SESSION_NAME = "ai.backend.session-name"
LABEL_USER = "ai.backend.user"
LABEL_ACCESS_KEY = "ai.backend.access-key"
LABEL_RESOURCE_GROUP = "ai.backend.resource-group"
LABEL_MANAGED = "org.jupyter-backendai.managed"

PERMISSIONS = ("ro", "rw", "wd")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"^[^=\x00]+$")
_PRIVATE_KEY_MARK = "PRIVATE KEY-----"
_MIB = 1024**2


class SpecError(errors.BadRequest, ValueError):
    """Input that cannot become a session container; the message says what and why."""


# --- parts of a spec --------------------------------------------------------------------------


def check_folder_name(name: object) -> str:
    """Return ``name`` if it is one safe path component for a mount point, else raise."""
    try:
        return check_mount_name(name)
    except FolderNameError as e:
        raise SpecError(str(e)) from None


def _check_host_path(path: object, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise SpecError(f"{what}: host path {path!r} must be an absolute path")
    if "//" in path:
        raise SpecError(f"{what}: host path {path!r} is not normalised (no '.', '..' or '//' parts)")
    if "\x00" in path or ":" in path:
        raise SpecError(f"{what}: host path {path!r} contains NUL or ':'")
    if posixpath.normpath(path) != path.rstrip("/") and path != "/":
        raise SpecError(f"{what}: host path {path!r} is not normalised (no '.', '..' or '//' parts)")
    return path


def _check_permission(permission: object, what: str) -> str:
    value = getattr(permission, "value", permission)  # accept db.models.FolderPermission
    if value not in PERMISSIONS:
        raise SpecError(f"{what}: permission {permission!r} is not one of ro, rw, wd")
    return value


@dataclass(frozen=True)
class FolderRef:
    """A folder the user may mount: its name, its directory on the agent, the user's permission.

    The input of :func:`build_spec` (built by the caller from ``VFolder`` rows and the storage
    root); ``permission`` is ``ro``, ``rw`` or ``wd``.
    """

    name: str
    host_path: str
    permission: str = "wd"

    def __post_init__(self) -> None:
        check_folder_name(self.name)
        _check_host_path(self.host_path, f"folder {self.name!r}")
        object.__setattr__(self, "permission", _check_permission(self.permission, f"folder {self.name!r}"))


@dataclass(frozen=True)
class FolderMount:
    """A folder mounted at ``<home>/<name>``; read-only when ``permission`` is ``ro``.

    ``automount`` is true for dot-folders (F30), which are mounted whether chosen or not.
    """

    name: str
    host_path: str
    permission: str
    automount: bool = False

    def __post_init__(self) -> None:
        check_folder_name(self.name)
        _check_host_path(self.host_path, f"folder {self.name!r}")
        object.__setattr__(self, "permission", _check_permission(self.permission, f"folder {self.name!r}"))

    @property
    def read_only(self) -> bool:
        return self.permission == "ro"

    def target(self, home: str = HOME) -> str:
        """The mount point inside the container."""
        return f"{home}/{self.name}"


@dataclass(frozen=True)
class HostMount:
    """A host directory the platform (not the user) mounts, e.g. the MPS pipe directory."""

    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerFile:
    """A file the backend must place in the container before it starts (content hidden in repr)."""

    path: str
    content: str = field(repr=False)
    mode: int = 0o600


@dataclass(frozen=True)
class SessionSpec:
    """Everything one session container needs, in engine-neutral terms.

    ``slots`` are per container (the admitted amounts); ``shmem`` is bytes of ``/dev/shm``
    (``None``: the engine's default). ``gpu_placement`` is ``{}``, ``{"cuda.device": {id: 1}}``
    or ``{"cuda.shares": {id: amount}}`` with host device ids (as :func:`core.gpu.place`
    returns). ``env`` is final: hub env, session identity, GPU and SSH variables. Mappings are
    read-only views. Build it with :func:`build_spec`, which validates; constructing it
    directly skips the cross-checks.
    """

    session_id: str
    session_name: str
    user: str
    email: str
    access_key: str
    resource_group: str
    image: str
    slots: ResourceSlots
    shmem: int | None = None
    gpu_placement: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    mounts: tuple[FolderMount, ...] = ()
    extra_mounts: tuple[HostMount, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    ssh_port: int | None = None
    ssh_public_key: str | None = None
    ssh_private_key: str | None = field(default=None, repr=False)
    #: The mounted folder whose ``authorized_keys`` sshd also reads (``".ssh"``), or None.
    ssh_authorized_keys_from: str | None = None
    uid: int = UID
    gid: int = GID
    home: str = HOME
    pids_limit: int | None = DEFAULT_PIDS_LIMIT
    cmd: tuple[str, ...] = DEFAULT_CMD
    args: tuple[str, ...] = ()


# --- GPU --------------------------------------------------------------------------------------


def _normalise_placement(placement: Mapping[str, Mapping[str, object]] | None) -> dict[str, dict[str, Decimal]]:
    if not placement:
        return {}
    if not isinstance(placement, Mapping):
        raise SpecError(f"GPU placement must be a mapping, not {type(placement).__name__}")
    unknown = sorted(set(placement) - {WHOLE, SHARES})
    if unknown:
        raise SpecError(f"GPU placement has unknown slots {unknown}: expected {WHOLE!r} or {SHARES!r}")
    out: dict[str, dict[str, Decimal]] = {}
    for slot, devices in placement.items():
        if not devices:
            continue
        if not isinstance(devices, Mapping):
            raise SpecError(f"GPU placement {slot!r} must map device ids to amounts")
        amounts: dict[str, Decimal] = {}
        for dev, amount in devices.items():
            if not isinstance(dev, str) or not dev or "," in dev or "=" in dev or _CONTROL.search(dev):
                raise SpecError(f"GPU placement {slot!r}: {dev!r} is not a device id")
            try:
                value = parse_amount(slot, amount)
            except SlotError as e:
                raise SpecError(f"GPU placement: {e}") from None
            if not value or value.is_infinite():
                raise SpecError(f"GPU placement {slot!r}: device {dev!r} gets {amount!r}")
            if slot == WHOLE and value != 1:
                raise SpecError(f"GPU placement {slot!r}: device {dev!r} gets {amount!r}, a whole GPU is 1")
            amounts[dev] = value
        ordered = device_order(GpuDevice(id=d) for d in amounts)
        out[slot] = {d.id: amounts[d.id] for d in ordered}
    if len(out) > 1:
        raise SpecError("a session gets either whole GPUs (cuda.device) or GPU shares (cuda.shares), not both")
    return out


def _check_gpu_slots(slots: ResourceSlots, placement: Mapping[str, Mapping[str, Decimal]]) -> None:
    """The placement must be exactly what the slots ask for (no GPU the slots did not admit)."""
    whole = slots.get(WHOLE)
    placed_whole = len(placement.get(WHOLE, {}))
    need_whole = int(whole.to_integral_value(rounding=ROUND_CEILING))
    if placed_whole != need_whole:
        raise SpecError(
            f"{WHOLE}: the slots ask for {format_amount(WHOLE, whole)} GPUs, the placement has {placed_whole}"
        )
    shares = slots.get(SHARES)
    placed_shares = sum(placement.get(SHARES, {}).values(), Decimal(0))
    # place_shares rounds a request up to its quantum, so the placement may hold a little more.
    if (shares and placed_shares < shares) or (placed_shares and not shares):
        raise SpecError(
            f"{SHARES}: the slots ask for {format_amount(SHARES, shares)}, "
            f"the placement holds {format_amount(SHARES, placed_shares)}"
        )


def gpu_device_ids(spec: SessionSpec) -> list[str]:
    """The host ids of the GPUs the container gets (whole or shared), in device order."""
    for slot in (WHOLE, SHARES):
        if spec.gpu_placement.get(slot):
            return list(spec.gpu_placement[slot])
    return []


def gpu_env(
    placement: Mapping[str, Mapping[str, Decimal]],
    *,
    gpu_memory: int | Mapping[str, int] = DEFAULT_GPU_MEMORY,
    shares_per_device: Decimal | int | Mapping[str, Decimal | int] = 1,
) -> dict[str, str]:
    """The env that makes the placed GPUs visible and, for shares, caps them through NVIDIA MPS.

    * Both kinds: ``NVIDIA_VISIBLE_DEVICES`` = the host ids (what the engine's device request
      also says), and ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA numbers the visible devices in
      the same order as the host does; inside the container they are ``0..n-1`` in that order.
    * Shares only: ``CUDA_MPS_PIPE_DIRECTORY`` (the host's pipe directory is mounted there;
      every session runs as uid 1000, which is what lets one MPS control daemon serve them
      all); ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` = ``"<ordinal>=<MiB>M"`` per device, the
      ordinal being the in-container index (the variable is read by the MPS *client*), the
      size ``floor(share / shares_per_device * device memory)``; and
      ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` = ``share / shares_per_device * 100`` rounded half
      up, clamped to 1..100.

    The SM percentage is one number per process, so a share split over several devices cannot
    be expressed exactly. The *smallest* per-device share is used: a session then never takes
    more SM time than it holds on any device, so co-tenants keep what they were promised.
    Even splits (the usual case) differ by at most one quantum, so this costs at most 1 %;
    only an uneven split on a fragmented agent loses more. Memory, the hard limit, is exact
    per device either way. ``gpu_memory`` is bytes per device, one number for all or a
    mapping by host id (what nvidia-smi reported; a device missing from it counts
    :data:`DEFAULT_GPU_MEMORY`). ``shares_per_device`` is what one whole device is worth in
    shares, likewise one number or a mapping by host id (a missing device counts 1).
    """
    env: dict[str, str] = {}
    whole = placement.get(WHOLE) or {}
    shares = placement.get(SHARES) or {}
    devices = list(whole) or list(shares)
    if not devices:
        return env
    env["NVIDIA_VISIBLE_DEVICES"] = ",".join(devices)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    if not shares:
        return env
    fractions = []
    limits = []
    for ordinal, (dev, share) in enumerate(shares.items()):
        size = gpu_memory.get(dev, DEFAULT_GPU_MEMORY) if isinstance(gpu_memory, Mapping) else gpu_memory
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise SpecError(f"GPU memory of device {dev!r} must be a positive number of bytes, not {size!r}")
        per = shares_per_device.get(dev, 1) if isinstance(shares_per_device, Mapping) else shares_per_device
        try:
            per_device = Decimal(str(per)) if not isinstance(per, bool) else Decimal(0)
        except InvalidOperation:
            per_device = Decimal(0)
        if not per_device.is_finite() or per_device <= 0:
            raise SpecError(f"shares per device must be positive, not {per!r}")
        fraction = min(share / per_device, Decimal(1))
        fractions.append(fraction)
        mib = int((fraction * size / _MIB).to_integral_value(rounding=ROUND_FLOOR))
        limits.append(f"{ordinal}={max(mib, 1)}M")
    smallest = min(fractions)
    percent = int((smallest * 100).to_integral_value(rounding=ROUND_HALF_UP))
    env["CUDA_MPS_PIPE_DIRECTORY"] = MPS_PIPE_DIRECTORY
    env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(min(max(percent, 1), 100))
    env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = ",".join(limits)
    return env


# --- building ---------------------------------------------------------------------------------


def _text(value: object, what: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise SpecError(f"{what} must be a non-empty string, not {value!r}")
    if _CONTROL.search(value):
        raise SpecError(f"{what} {value!r} contains a control character")
    return value


def check_port(port: object, what: str) -> int:
    """Return ``port`` if a session may listen on it, else raise :class:`SpecError`."""
    # sshd and the server run as uid 1000 without CAP_NET_BIND_SERVICE: no port below 1024.
    if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
        raise SpecError(f"{what} {port!r} must be a whole number from 1024 to 65535 (the session runs unprivileged)")
    return port


def _check_env(env: Mapping[str, object], secrets: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    secrets = [s for s in secrets if s]
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise SpecError(f"env name {name!r} is empty or contains '=' or NUL")
        if name in FORBIDDEN_ENV:
            raise SpecError(f"env {name} would put a secret key into the container's environment")
        if not isinstance(value, str) or "\x00" in value:
            raise SpecError(f"env {name} must be a string without NUL, not {type(value).__name__}")
        if _PRIVATE_KEY_MARK in value or any(s in value for s in secrets):
            raise SpecError(f"env {name} holds a private key: keys reach the container as files, not env")
        out[name] = value
    return out


def _build_mounts(chosen: Sequence[FolderRef], accessible: Sequence[FolderRef]) -> tuple[FolderMount, ...]:
    by_name: dict[str, FolderMount] = {}

    def add(ref: FolderRef) -> None:
        if not isinstance(ref, FolderRef):
            raise SpecError(f"folders must be FolderRef values, not {type(ref).__name__}")
        if ref.name in SESSION_FILES:
            raise SpecError(
                f"folder {ref.name!r} cannot be mounted: it would hide the session's private SSH key "
                f"{HOME}/{ID_CONTAINER}; rename the folder"
            )
        old = by_name.get(ref.name)
        if old is not None:
            if old.host_path != ref.host_path:
                raise SpecError(
                    f"two different folders named {ref.name!r} would both mount at {HOME}/{ref.name} "
                    f"({old.host_path} and {ref.host_path}); choose one or rename one"
                )
            return  # the same folder again (chosen and automounted): mounted once, as chosen
        by_name[ref.name] = FolderMount(ref.name, ref.host_path, ref.permission, automount=ref.name.startswith("."))

    for ref in chosen:
        add(ref)
    for ref in accessible:
        if isinstance(ref, FolderRef) and ref.name.startswith("."):
            add(ref)
        elif not isinstance(ref, FolderRef):
            raise SpecError(f"accessible folders must be FolderRef values, not {type(ref).__name__}")
    return tuple(by_name.values())


def build_spec(
    *,
    session_id: uuid.UUID | str,
    session_name: str,
    user: str,
    email: str,
    access_key: str,
    resource_group: str,
    image: str,
    slots: ResourceSlots | Mapping[str, object],
    image_min: ResourceSlots | Mapping[str, object] | None = None,
    shmem: int | str | Decimal | None = None,
    folders: Sequence[FolderRef] = (),
    accessible: Sequence[FolderRef] = (),
    gpu_placement: Mapping[str, Mapping[str, object]] | None = None,
    hub_env: Mapping[str, str] | None = None,
    user_env: Mapping[str, str] | None = None,
    cmd: Sequence[str] = DEFAULT_CMD,
    args: Sequence[str] = (),
    service_ports: Sequence[Mapping[str, object]] = (),
    ssh_port: int | None = None,
    ssh_public_key: str | None = None,
    ssh_private_key: str | None = None,
    gpu_memory: int | Mapping[str, int] = DEFAULT_GPU_MEMORY,
    gpu_shares_per_device: Decimal | int | Mapping[str, Decimal | int] = 1,
    mps_pipe_host_dir: str = MPS_PIPE_DIRECTORY,
    mps_shm_host_dir: str | None = None,
    pids_limit: int | None = DEFAULT_PIDS_LIMIT,
    uid: int = UID,
    gid: int = GID,
) -> SessionSpec:
    """Build and validate the spec of one session container; raise :class:`SpecError` if it can't be.

    ``slots`` are the admitted per-container slots (``Decision.slots``); they must hold
    ``cpu`` and ``mem`` and be at least ``image_min`` (admission raises a request to the
    minimum; this function refuses rather than raise again, since it must never hand out
    more than admission allowed). ``shmem`` must not exceed ``mem``: ``/dev/shm`` pages are
    charged to the container's memory. ``folders`` are the chosen folders; ``accessible``
    are all folders the user may mount, of which the dot-folders are automounted. Whether
    the user may mount a chosen folder is the caller's check (done at admission); this
    function checks the shape. ``hub_env`` is the hub's env for the single-user server
    (``Spawner.get_env()``); the session variables set here override it. ``user_env`` is the
    user's own (``config.environ``), under both. ``service_ports`` are the image's apps
    (``[{"name", "protocol", "ports"}]``), passed on in ``BACKENDAI_SERVICE_PORTS``. SSH: the key pair
    (both halves or neither) becomes :func:`container_files`; ``ssh_port`` (the port sshd
    listens on) adds ``BACKENDAI_SSH_PORT`` and ``BACKENDAI_SSH_AUTHORIZED_KEYS`` (the
    files sshd should read, space-separated, as ``AuthorizedKeysFile`` takes them).
    """
    sid = str(session_id) if isinstance(session_id, uuid.UUID) else _text(session_id, "session id")
    session_name = _text(session_name, "session name")
    user = _text(user, "user name")
    email = _text(email, "e-mail", allow_empty=True)
    access_key = _text(access_key, "access key")
    resource_group = _text(resource_group, "resource group")
    image = _text(image, "image")
    if any(c.isspace() for c in image):
        raise SpecError(f"image {image!r} contains white space")
    for name, value in (("uid", uid), ("gid", gid)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SpecError(f"{name} must be a positive number: sessions never run as root (got {value!r})")
    if pids_limit is not None and (isinstance(pids_limit, bool) or not isinstance(pids_limit, int) or pids_limit < 1):
        raise SpecError(f"pids limit must be a positive number or None, not {pids_limit!r}")

    # -- slots ------------------------------------------------------------------------------
    try:
        slots = ResourceSlots.parse(slots) if not isinstance(slots, ResourceSlots) else slots
        minimum = ResourceSlots.parse(image_min) if not isinstance(image_min, ResourceSlots) else image_min
    except SlotError as e:
        raise SpecError(str(e)) from None
    unlimited = sorted(k for k, v in slots.items() if v.is_infinite())
    if unlimited:
        raise SpecError(f"a container cannot get an unlimited amount of {', '.join(unlimited)}")
    missing = [k for k in ("cpu", "mem") if not slots.get(k)]
    if missing:
        raise SpecError(f"the slots must hold {' and '.join(missing)}")
    below = sorted(k for k, v in minimum.items() if v > slots.get(k))
    if below:
        raise SpecError(
            "the slots are below the image's minimum: "
            + "; ".join(f"{k} {format_amount(k, slots.get(k))} < {format_amount(k, minimum[k])}" for k in below)
        )
    shm: int | None = None
    if shmem is not None:
        try:
            shm = int(parse_amount("shmem", shmem))
        except SlotError as e:
            raise SpecError(str(e)) from None
        if shm > slots["mem"]:
            raise SpecError(
                f"shmem {format_amount('shmem', Decimal(shm))} exceeds mem {format_amount('mem', slots['mem'])}: "
                "shared memory is charged to the container's memory"
            )

    # -- GPU ------------------------------------------------------------------------------------
    placement = _normalise_placement(gpu_placement)
    _check_gpu_slots(slots, placement)
    extra_mounts: tuple[HostMount, ...] = ()
    if placement.get(SHARES):
        _check_host_path(mps_pipe_host_dir, "MPS pipe directory")
        extra_mounts = (HostMount(mps_pipe_host_dir, MPS_PIPE_DIRECTORY, read_only=False),)
        if mps_shm_host_dir:
            # The MPS daemon's /dev/shm (docs/gpu.md): it replaces the session's own, and its size.
            _check_host_path(mps_shm_host_dir, "MPS shared memory directory")
            extra_mounts += (HostMount(mps_shm_host_dir, "/dev/shm", read_only=False),)

    # -- folders ---------------------------------------------------------------------------
    mounts = _build_mounts(folders, accessible)
    keys_from = ".ssh" if any(m.name == ".ssh" for m in mounts) else None

    # -- SSH -------------------------------------------------------------------------------
    if (ssh_public_key is None) != (ssh_private_key is None):
        raise SpecError("give both halves of the SSH key pair or neither")
    if ssh_private_key is not None:
        # Messages never quote the keys: an error ends up in logs and on the spawn page.
        if not isinstance(ssh_public_key, str) or _PRIVATE_KEY_MARK in ssh_public_key:
            raise SpecError("the SSH public key is a private key or not text")
        if not ssh_public_key.strip() or _CONTROL.search(ssh_public_key.strip()):
            raise SpecError("the SSH public key must be one non-empty line")
        if not isinstance(ssh_private_key, str) or not ssh_private_key.strip():
            raise SpecError("the SSH private key is empty")
    if ssh_port is not None:
        check_port(ssh_port, "SSH port")
        if ssh_private_key is None:
            raise SpecError("an SSH port needs the user's SSH key pair: nothing could log in")

    # -- env and labels -------------------------------------------------------------------------
    try:
        env = check_environ(user_env)
    except EnvironError as e:
        raise SpecError(str(e)) from None
    env.update(_check_env(hub_env or {}, [ssh_private_key or ""]))
    env.update(
        {
            "HOME": HOME,
            "USER": USERNAME,
            "BACKENDAI_SESSION_ID": sid,
            "BACKENDAI_SESSION_NAME": session_name,
            "BACKENDAI_ACCESS_KEY": access_key,
            "BACKENDAI_RESOURCE_GROUP": resource_group,
        }
    )
    env.update(gpu_env(placement, gpu_memory=gpu_memory, shares_per_device=gpu_shares_per_device))
    # The session's apps (serverext.apps): the image's service-ports label and where an app's
    # files go by default (the first chosen folder).
    apps_env = {
        SERVICE_PORTS_ENV: format_service_ports(service_ports),
        FOLDERS_ENV: ":".join(m.name for m in mounts if not m.automount),
    }
    env.update({k: v for k, v in apps_env.items() if v})
    if ssh_port is not None:
        keys = [SESSION_AUTHORIZED_KEYS] + ([f"{HOME}/{keys_from}/authorized_keys"] if keys_from else [])
        env["BACKENDAI_SSH_PORT"] = str(ssh_port)
        env["BACKENDAI_SSH_AUTHORIZED_KEYS"] = " ".join(keys)
    labels = {
        LABEL_SESSION_ID: sid,
        LABEL_SESSION_NAME: session_name,
        LABEL_USER: user,
        LABEL_ACCESS_KEY: access_key,
        LABEL_RESOURCE_GROUP: resource_group,
        LABEL_MANAGED: "true",
    }

    command = tuple(_text(c, "command word", allow_empty=True) for c in cmd)
    if not command:
        raise SpecError("the command is empty")
    return SessionSpec(
        session_id=sid,
        session_name=session_name,
        user=user,
        email=email,
        access_key=access_key,
        resource_group=resource_group,
        image=image,
        slots=slots,
        shmem=shm,
        gpu_placement=MappingProxyType({k: MappingProxyType(v) for k, v in placement.items()}),
        mounts=mounts,
        extra_mounts=extra_mounts,
        env=MappingProxyType(env),
        labels=MappingProxyType(labels),
        ssh_port=ssh_port,
        ssh_public_key=ssh_public_key,
        ssh_private_key=ssh_private_key,
        ssh_authorized_keys_from=keys_from,
        uid=uid,
        gid=gid,
        home=HOME,
        pids_limit=pids_limit,
        cmd=command,
        args=tuple(_text(a, "argument", allow_empty=True) for a in args),
    )


def container_files(spec: SessionSpec) -> tuple[ContainerFile, ...]:
    """The files to place before the container starts: the private key (F22), the authorized key.

    Both owned by the session user with mode 0600 (sshd's StrictModes and ``ssh -i`` refuse
    keys others can read). Empty when the spec has no SSH key pair.
    """
    if spec.ssh_private_key is None or spec.ssh_public_key is None:
        return ()
    private = spec.ssh_private_key if spec.ssh_private_key.endswith("\n") else spec.ssh_private_key + "\n"
    public = spec.ssh_public_key.strip() + "\n"
    return (
        ContainerFile(f"{spec.home}/{ID_CONTAINER}", private, 0o600),
        ContainerFile(SESSION_AUTHORIZED_KEYS, public, 0o600),
    )
