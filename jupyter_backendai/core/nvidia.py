"""What ``nvidia-smi`` says about a machine's GPUs, as agent devices, slots and usage samples.

An agent's GPUs come from one query (:data:`QUERY_GPU`)::

    nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu \\
               --format=csv,noheader,nounits

one line per device, memory in MiB and utilisation in percent. A value the driver does not
have (``[N/A]``, ``[Not Supported]``: utilisation of a MIG-enabled A100, for instance) is
``None``. When the driver cannot be reached nvidia-smi prints one message instead
(``NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver...``,
``No devices were found``, ``Failed to initialize NVML: ...``): :func:`parse_query_gpu` raises
:class:`NvidiaSmiError` with it, so that an agent registers no GPU rather than a wrong one.

Which session uses how much memory of a *shared* device comes from a second query
(:data:`QUERY_APPS`, one line per process with a CUDA context: host pid, device uuid, MiB).

Shares: each device offers ``shares_per_device`` shares (``cuda.shares``), so one share is
``1/shares_per_device`` of a GPU; the MPS limits of a session are computed from its share of
the device's real memory (``hub.spec.gpu_env``). Everything here is pure: the text of
nvidia-smi in, plain values out; running it is :mod:`jupyter_backendai.hub.nvidia`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .slots import SlotError, parse_amount

__all__ = [
    "QUERY_APPS",
    "QUERY_GPU",
    "ComputeApp",
    "GpuInfo",
    "NvidiaSmiError",
    "agent_devices",
    "configured_devices",
    "device_memory",
    "device_shares",
    "gpu_slots",
    "parse_compute_apps",
    "parse_query_gpu",
    "session_gpu_usage",
]

MIB = 1024**2

#: The device query's fields, in the order of its columns.
GPU_FIELDS = ("index", "uuid", "name", "memory.total", "memory.used", "utilization.gpu")
QUERY_GPU = ("--query-gpu=" + ",".join(GPU_FIELDS), "--format=csv,noheader,nounits")
#: The process query's fields: which process holds how much memory on which device.
APP_FIELDS = ("pid", "gpu_uuid", "used_memory")
QUERY_APPS = ("--query-compute-apps=" + ",".join(APP_FIELDS), "--format=csv,noheader,nounits")

# What nvidia-smi writes for a value the device or driver does not report.
_MISSING = frozenset({"[n/a]", "n/a", "[not supported]", "[unknown error]", "[insufficient permissions]", ""})


class NvidiaSmiError(RuntimeError):
    """nvidia-smi ran but reported no usable device (its own message, first line)."""


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """One device as nvidia-smi reports it; sizes in bytes, ``None`` where it has no value."""

    index: str
    uuid: str
    name: str
    memory_total: int | None
    memory_used: int | None
    utilization: float | None


@dataclass(frozen=True, slots=True)
class ComputeApp:
    """One process with a CUDA context: its host pid, the device's uuid, its memory in bytes."""

    pid: int
    gpu_uuid: str
    used_memory: int | None


def _value(text: str) -> str | None:
    text = text.strip()
    return None if text.lower() in _MISSING else text


def _mib(text: str) -> int | None:
    value = _value(text)
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a size in MiB: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"not a size in MiB: {value!r}")
    return int(amount * MIB)


def _percent(text: str) -> float | None:
    value = _value(text)
    if value is None:
        return None
    number = float(value.rstrip("%").strip())
    if not 0 <= number <= 100:
        raise ValueError(f"not a percentage: {value!r}")
    return number


def _failure(lines: Sequence[str], fallback: str) -> NvidiaSmiError:
    return NvidiaSmiError(lines[0] if lines else fallback)


def parse_query_gpu(text: str) -> tuple[list[GpuInfo], list[str]]:
    """The devices of a :data:`QUERY_GPU` output, and the lines that were not a device.

    A machine where one GPU fell off the bus still lists the others, after a line such as
    ``Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error``: the devices
    that answered are returned with that line among the problems, to be logged. Output with
    no device at all but some text is the driver's failure: :class:`NvidiaSmiError`. Empty
    output is a machine without GPUs.
    """
    gpus: list[GpuInfo] = []
    problems: list[str] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        # A device name never holds a comma in practice, but keep the columns right if one does.
        if len(parts) > len(GPU_FIELDS):
            extra = len(parts) - len(GPU_FIELDS)
            parts = parts[:2] + [", ".join(parts[2 : 3 + extra])] + parts[3 + extra :]
        if len(parts) != len(GPU_FIELDS) or not parts[0].isdigit() or parts[0] in seen:
            problems.append(line)
            continue
        try:
            gpu = GpuInfo(
                index=parts[0],
                uuid=_value(parts[1]) or "",
                name=_value(parts[2]) or "",
                memory_total=_mib(parts[3]),
                memory_used=_mib(parts[4]),
                utilization=_percent(parts[5]),
            )
        except ValueError:
            problems.append(line)
            continue
        seen.add(gpu.index)
        gpus.append(gpu)
    if not gpus and problems:
        raise _failure(problems, "nvidia-smi listed no device")
    return gpus, problems


def parse_compute_apps(text: str) -> list[ComputeApp]:
    """The processes of a :data:`QUERY_APPS` output (empty when no process uses a GPU).

    Lines that are not a process (``No running processes found`` of older drivers) are
    skipped; a failure message of the driver raises :class:`NvidiaSmiError` like the device
    query does.
    """
    apps: list[ComputeApp] = []
    others: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(APP_FIELDS) or not parts[0].isdigit():
            others.append(line)
            continue
        try:
            apps.append(ComputeApp(int(parts[0]), _value(parts[1]) or "", _mib(parts[2])))
        except ValueError:
            others.append(line)
    failed = [line for line in others if "no running processes" not in line.lower()]
    if failed and not apps:
        raise _failure(failed, "nvidia-smi listed no process")
    return apps


# --- agents -----------------------------------------------------------------------------------


def _shares(value: object) -> Decimal:
    try:
        shares = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"shares per device must be a positive number, not {value!r}") from None
    if not shares.is_finite() or shares <= 0:
        raise ValueError(f"shares per device must be a positive number, not {value!r}")
    return shares


def _json_number(amount: Decimal) -> int | str:
    return int(amount) if amount == amount.to_integral_value() else str(amount)


def agent_devices(gpus: Iterable[GpuInfo], shares_per_device: Decimal | int = 1) -> list[dict[str, Any]]:
    """The agent's device records (``Agent.devices``) for the devices nvidia-smi listed.

    Each offers ``shares_per_device`` shares; ``memory`` is its total memory in bytes (what
    the fGPU memory limits are cut from). Readings that change (memory used, utilisation)
    are left out: they belong to usage samples, not to the agent's record.
    """
    per = _json_number(_shares(shares_per_device))
    out = []
    for g in gpus:
        device: dict[str, Any] = {"id": g.index, "capacity": per, "name": g.name, "uuid": g.uuid}
        if g.memory_total:
            device["memory"] = g.memory_total
        out.append(device)
    return out


def configured_devices(entries: Iterable[Mapping[str, Any]], shares_per_device: Decimal | int = 1) -> list[dict]:
    """An administrator's list of devices (``gpu_devices``) checked and in the agent's shape.

    Each entry needs an ``id``; ``capacity`` (shares) defaults to ``shares_per_device`` and
    ``memory`` may be bytes or a size (``"24g"``). Raises :class:`ValueError` naming the entry.
    """
    default = _shares(shares_per_device)
    out: list[dict[str, Any]] = []
    ids: set[str] = set()
    for n, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or entry.get("id") in (None, ""):
            raise ValueError(f"GPU device #{n} needs an id, like {{'id': '0', 'memory': '24g'}}")
        device = dict(entry)
        device["id"] = str(entry["id"])
        if device["id"] in ids:
            raise ValueError(f"GPU device {device['id']!r} is listed twice")
        ids.add(device["id"])
        device["capacity"] = _json_number(_shares(entry.get("capacity", default)))
        if entry.get("memory") is not None:
            try:
                memory = parse_amount("mem", entry["memory"])
            except SlotError:
                memory = Decimal(0)
            if not memory.is_finite() or memory < MIB:
                raise ValueError(
                    f"GPU device {device['id']!r}: memory must be a size like '24g', not {entry['memory']!r}"
                )
            device["memory"] = int(memory)
        out.append(device)
    return out


def gpu_slots(devices: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """The agent slots its devices make: ``cuda.device`` (how many) and ``cuda.shares`` (their sum)."""
    devices = list(devices)
    if not devices:
        return {}
    total = sum((_shares(d.get("capacity", 1)) for d in devices), Decimal(0))
    return {"cuda.device": Decimal(len(devices)), "cuda.shares": total}


def device_memory(devices: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """``{device id: bytes}`` of the devices whose memory is known."""
    return {str(d["id"]): int(d["memory"]) for d in devices if d.get("memory")}


def device_shares(devices: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """``{device id: shares it offers}``: what one whole device is worth in ``cuda.shares``."""
    return {str(d["id"]): _shares(d.get("capacity", 1)) for d in devices}


# --- usage ---------------------------------------------------------------------------------------


def session_gpu_usage(
    placement: Mapping[str, Mapping[str, object]],
    gpus: Iterable[GpuInfo],
    apps: Iterable[ComputeApp] = (),
    pids: Iterable[int] = (),
) -> dict[str, float | int | None]:
    """A session's GPU fields of a usage sample: ``gpu_percent`` and ``gpu_mem_bytes``.

    ``placement`` is the session's (``{"cuda.device": {id: 1}}`` or ``{"cuda.shares": {id:
    amount}}``, ids as nvidia-smi's indexes). A device it holds *whole* is all its own: its
    utilisation and memory used count. On a *shared* device only memory can be told apart,
    from the processes (``apps``) whose host pid is one of the session's (``pids``); the
    device's utilisation is every tenant's together, so it is not counted (an MPS client's
    SM time is not reported per process). Like ``cpu_percent``, ``gpu_percent`` adds up over
    devices (two busy GPUs: 200). ``None`` where nothing could be measured.
    """
    by_index = {g.index: g for g in gpus}
    whole = [by_index[str(d)] for d in (placement.get("cuda.device") or {}) if str(d) in by_index]
    shared = [by_index[str(d)] for d in (placement.get("cuda.shares") or {}) if str(d) in by_index]
    utils = [g.utilization for g in whole if g.utilization is not None]
    used = [g.memory_used for g in whole if g.memory_used is not None]
    if shared:
        uuids = {g.uuid for g in shared if g.uuid}
        mine = set(pids)
        held = [a.used_memory for a in apps if a.pid in mine and a.gpu_uuid in uuids and a.used_memory is not None]
        # A session with no CUDA process yet holds nothing: 0 is a measurement then.
        if mine:
            used.append(sum(held))
    return {
        "gpu_percent": round(sum(utils), 2) if utils else None,
        "gpu_mem_bytes": sum(used) if used else None,
    }
