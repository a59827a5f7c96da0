"""What the widgets show and send, as pure functions of the manager's answers (no widget, no I/O).

The widgets in this package only wire these to ipywidgets and to a client; everything that can
be wrong (which presets are offered, what a launch request says, how a status reads, what a
gauge's numbers are, where ``..`` leads) is decided here and tested without a browser.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..core.slots import ResourceSlots, SlotError, format_amount, is_byte_slot

#: Session statuses by what they mean to someone waiting for a session (Backend.AI's names).
WAITING = frozenset({"PENDING"})
STARTING = frozenset({"SCHEDULED", "PREPARING", "PULLING", "CREATING", "RESTARTING"})
RUNNING = "RUNNING"
STOPPING = frozenset({"TERMINATING"})
FINISHED = frozenset({"TERMINATED", "ERROR", "CANCELLED"})
ACTIVE = WAITING | STARTING | STOPPING | {RUNNING}

SESSION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: How slots are called on screen; others keep their own name.
SLOT_LABELS = {"cpu": "CPU", "mem": "RAM", "shmem": "shared memory", "cuda.shares": "fGPU", "cuda.device": "GPU"}
#: Gauges first show these, in this order, then the others by name.
SLOT_ORDER = ("cpu", "mem", "cuda.device", "cuda.shares")


# --- amounts ------------------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    text = str(value)
    return Decimal("Infinity") if text.lower() in ("infinity", "unlimited", "inf") else Decimal(text)


def format_slot(name: str, amount: Any) -> str:
    """``cpu`` 2 → ``2 CPU``; ``mem`` 2147483648 → ``2 GiB RAM``; unknown slots keep their name."""
    return f"{format_amount(name, _decimal(amount))} {SLOT_LABELS.get(name, name)}"


def slot_key(name: str) -> tuple[int, str]:
    return (SLOT_ORDER.index(name), name) if name in SLOT_ORDER else (len(SLOT_ORDER), name)


def format_slots(slots: Mapping[str, Any] | None) -> str:
    """A session's or preset's amounts on one line, zero amounts left out: ``1 CPU · 2 GiB RAM``."""
    items = sorted(((k, _decimal(v)) for k, v in (slots or {}).items()), key=lambda kv: slot_key(kv[0]))
    return " · ".join(format_slot(k, v) for k, v in items if v) or "nothing"


def human_size(n: int | None) -> str:
    """Bytes for people: ``0 B``, ``1.5 KiB``, ``3 MiB``."""
    if n is None:
        return ""
    value, units = float(n), ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{int(value)} B" if unit == 0 else f"{value:.3g} {units[unit]}"


# --- launching ----------------------------------------------------------------------------------


def preset_options(check: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, name) of the presets a check-presets answer says still fit; the others are not offered."""
    options = []
    for preset in check.get("presets") or []:
        if preset.get("allocatable"):
            options.append((f"{preset['name']} ({format_slots(preset.get('resource_slots'))})", preset["name"]))
    return options


def folder_options(folders: Iterable[Mapping[str, Any]]) -> list[str]:
    """Folder names a launch may mount by choice: usable ones, without the always-mounted dot-folders."""
    names = set()
    for folder in folders:
        name = str(folder.get("name", ""))
        if not name or name.startswith("."):
            continue
        if str(folder.get("status", "ready")).lower() not in ("ready", ""):
            continue
        names.add(name)
    return sorted(names)


@dataclass(frozen=True)
class LaunchForm:
    """What the launcher's controls say. ``preset`` wins over the custom amounts when set."""

    name: str = ""
    image: str | None = None
    group: str | None = None
    scaling_group: str | None = None
    preset: str | None = None
    cpu: float | str | None = None
    mem: str | None = None
    gpu: float | str | None = None
    folders: tuple[str, ...] = ()


def launch_request(form: LaunchForm) -> dict[str, Any]:
    """The keyword arguments of ``Client.create_session`` for a form; ValueError says what is wrong."""
    name = (form.name or "").strip()
    if name and not SESSION_NAME.match(name):
        raise ValueError("a session name is 1 to 64 letters, digits, '-' or '_'")
    request: dict[str, Any] = {"name": name, "folders": tuple(form.folders)}
    for key in ("image", "group", "scaling_group"):
        value = getattr(form, key)
        if value:
            request[key] = value
    if form.preset:
        request["preset"] = form.preset
        return request
    if form.cpu in (None, "") and not form.mem:
        raise ValueError("choose a preset, or custom amounts (no preset fits now)")
    resources: dict[str, str] = {}
    try:
        cpu = ResourceSlots.parse({"cpu": str(form.cpu if form.cpu not in (None, "") else "")})["cpu"]
    except SlotError:
        raise ValueError(f"CPU must be a number of cores, not {form.cpu!r}") from None
    if cpu <= 0 or cpu.is_infinite():
        raise ValueError("CPU must be more than 0 cores")
    resources["cpu"] = str(cpu.normalize())
    try:
        mem = ResourceSlots.parse({"mem": (form.mem or "").strip()})["mem"]
    except SlotError:
        raise ValueError(f"RAM must be a size like 512m or 2g, not {form.mem!r}") from None
    if mem <= 0 or mem.is_infinite():
        raise ValueError("RAM must be more than 0 bytes")
    resources["mem"] = str(int(mem))
    if form.gpu not in (None, "", 0, "0"):
        try:
            gpu = ResourceSlots.parse({"cuda.shares": str(form.gpu)})["cuda.shares"]
        except SlotError:
            raise ValueError(f"GPU must be a number (fractions allowed), not {form.gpu!r}") from None
        if gpu > 0:
            resources["cuda.shares"] = str(gpu.normalize())
    request["resources"] = resources
    return request


@dataclass(frozen=True)
class LaunchState:
    """Where a launch stands, for the launcher's status line.

    ``phase``: idle, waiting (in the queue), starting, running, stopping, finished (ended
    without running or after), refused (the manager said no), or error (it could not be asked).
    """

    phase: str = "idle"
    status: str | None = None
    name: str | None = None
    session_id: str | None = None
    message: str = ""
    position: int | None = None
    length: int | None = None
    resource_group: str | None = None
    url: str | None = None

    @property
    def done(self) -> bool:
        """Nothing more will change without a new launch: polling can stop."""
        return self.phase in ("running", "finished", "refused", "error")


def phase_of(status: str | None) -> str:
    if status in WAITING:
        return "waiting"
    if status in STARTING:
        return "starting"
    if status == RUNNING:
        return "running"
    if status in STOPPING:
        return "stopping"
    if status in FINISHED:
        return "finished"
    return "idle"


def launch_state(answer: Mapping[str, Any], url: str | None = None) -> LaunchState:
    """From a create answer (``sessionName``, ``status``), a queue answer or a session's details."""
    status = answer.get("status")
    return LaunchState(
        phase=phase_of(status),
        status=status,
        name=answer.get("sessionName") or answer.get("name"),
        session_id=answer.get("sessionId") or answer.get("id"),
        message=str(answer.get("statusInfo") or answer.get("status_info") or ""),
        position=answer.get("position"),
        length=answer.get("length"),
        resource_group=answer.get("resource_group"),
        url=url if status == RUNNING else None,
    )


def refused_state(status: int, title: str) -> LaunchState:
    """A launch the manager refused (4xx with its reason) or could not serve."""
    return LaunchState(phase="refused" if 400 <= status < 500 else "error", message=f"{title} (HTTP {status})")


def status_text(state: LaunchState) -> str:
    """One line for people: ``PENDING: position 2 of 3 in the queue of default``."""
    if state.phase == "idle":
        return "Not launched yet"
    if state.phase == "refused":
        return f"Refused: {state.message}"
    if state.phase == "error":
        return f"Error: {state.message}"
    text = f"{state.name}: {state.status}" if state.name else str(state.status)
    if state.phase == "waiting" and state.position is not None:
        where = f" of {state.resource_group}" if state.resource_group else ""
        text += f", position {state.position} of {state.length} in the queue{where}"
    elif state.phase == "finished" and state.message:
        text += f" ({state.message})"
    return text


def app_url(
    detail: Mapping[str, Any], endpoint: str, app: str = "jupyterlab", *, same_origin: bool = False
) -> str | None:
    """The URL to open a session's app: the path the manager gives, on the manager's origin.

    ``same_origin``: the page showing the link is served by the same hub (a notebook in a
    session), so the path alone is right even when the endpoint is an internal address.
    """
    path = next((a.get("url") for a in detail.get("apps") or [] if a.get("name") == app), None)
    if not path:
        return None
    if same_origin or urllib.parse.urlsplit(path).scheme:
        return path
    parts = urllib.parse.urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}{path}"


# --- sessions table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    name: str
    id: str
    status: str
    image: str
    resource_group: str
    resources: str
    created: str
    can_terminate: bool
    info: str = ""


def _short_time(value: str | None) -> str:
    if not value:
        return ""
    return value.replace("T", " ")[:19]


def session_rows(listing: Mapping[str, Any]) -> list[SessionRow]:
    """Rows of ``GET /session``'s page; only sessions still holding or awaiting resources can be terminated."""
    rows = []
    for item in listing.get("items") or []:
        slots = item.get("occupied_slots") or item.get("requested_slots") or {}
        rows.append(
            SessionRow(
                name=item.get("name") or item.get("server_name") or item["id"],
                id=item["id"],
                status=item.get("status", ""),
                image=item.get("image") or "",
                resource_group=item.get("resource_group") or "",
                resources=format_slots(slots),
                created=_short_time(item.get("created_at")),
                can_terminate=item.get("status") in ACTIVE and item.get("status") not in STOPPING,
                info=item.get("status_info") or "",
            )
        )
    return rows


# --- usage gauges -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Gauge:
    """One slot: what the caller's sessions hold against what they could hold now."""

    slot: str
    used: Decimal
    allocatable: Decimal
    label: str = field(default="")

    @property
    def fraction(self) -> float:
        if self.allocatable.is_infinite() or self.allocatable <= 0:
            return 0.0 if self.used <= 0 or self.allocatable.is_infinite() else 1.0
        return float(min(Decimal(1), self.used / self.allocatable))

    @property
    def text(self) -> str:
        name = SLOT_LABELS.get(self.slot, self.slot)
        return f"{name}: {format_amount(self.slot, self.used)} / {format_amount(self.slot, self.allocatable)}"


def gauges(check: Mapping[str, Any], scaling_group: str | None = None) -> list[Gauge]:
    """Per slot, used against allocatable, from a check-presets answer.

    Allocatable is what is used plus the most that could still be started: the smallest of
    the keypair's remaining, the project's remaining and what the resource group has free (the
    one named, else the sum over the groups open to the caller). Slots of no interest (zero
    used, nothing free, no limit) are left out.
    """
    using = check.get("keypair_using") or {}
    room = [check.get("keypair_remaining") or {}, check.get("group_remaining") or {}]
    groups = check.get("scaling_groups") or {}
    if scaling_group and scaling_group in groups:
        room.append(groups[scaling_group].get("remaining") or {})
    else:
        room.append(check.get("scaling_group_remaining") or {})
    names = set(using)
    for r in room:
        names |= set(r)
    out = []
    for name in sorted(names, key=slot_key):
        if name == "shmem":
            continue
        used = _decimal(using.get(name, 0))
        free = min((_decimal(r[name]) for r in room if name in r), default=Decimal(0))
        if used == 0 and (free == 0 or free.is_infinite()):
            continue
        out.append(Gauge(name, used, used + free, SLOT_LABELS.get(name, name)))
    return out


def gauge_bar_max(gauge: Gauge) -> float:
    """The progress bar's maximum in display units (GiB for byte slots, so numbers stay small)."""
    if gauge.allocatable.is_infinite():
        return 1.0
    value = gauge.allocatable / (1024**3) if is_byte_slot(gauge.slot) else gauge.allocatable
    return float(value) or 1.0


def gauge_bar_value(gauge: Gauge) -> float:
    value = gauge.used / (1024**3) if is_byte_slot(gauge.slot) else gauge.used
    return float(value)


# --- folder browsing ----------------------------------------------------------------------------


def normalize_path(path: str) -> str:
    """A path inside a folder, without leading/trailing slashes, ``.`` or empty parts; ``..`` refused."""
    parts = [p for p in (path or "").replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("'..' is not allowed in a folder path; use Up")
    return "/".join(parts)


def join_path(directory: str, name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{name!r} is not a file name")
    return normalize_path(f"{directory}/{name}")


def parent_path(path: str) -> str:
    path = normalize_path(path)
    return path.rsplit("/", 1)[0] if "/" in path else ""


def breadcrumbs(folder: str, path: str) -> list[tuple[str, str]]:
    """(label, path) from the folder's top to ``path``, for the browser's location line."""
    crumbs = [(folder, "")]
    acc = ""
    for part in normalize_path(path).split("/") if path else []:
        acc = f"{acc}/{part}" if acc else part
        crumbs.append((part, acc))
    return crumbs


@dataclass(frozen=True)
class FileRow:
    name: str
    is_dir: bool
    size: str
    modified: str

    @property
    def label(self) -> str:
        return f"{self.name}/" if self.is_dir else f"{self.name}  ({self.size})"


def file_rows(items: Iterable[Mapping[str, Any]]) -> list[FileRow]:
    """A directory's entries: directories first, then files, each by name."""
    rows = [
        FileRow(
            name=str(i["name"]),
            is_dir=i.get("type") in ("dir", "directory", "DIRECTORY"),
            size=human_size(i.get("size")) if i.get("type") not in ("dir", "directory", "DIRECTORY") else "",
            modified=_short_time(i.get("modified") or i.get("mtime")),
        )
        for i in items
    ]
    return sorted(rows, key=lambda r: (not r.is_dir, r.name.lower(), r.name))
