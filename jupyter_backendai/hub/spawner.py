"""What every session spawner shares: options, admission, the queue, the lifecycle.

One session is one JupyterHub named server. ``start()``:

1. reads the request (spawn form or ``user_options``: image, project, resource group, preset
   or custom slots, folders) and checks it against the database: a refusal is a
   :class:`SessionRefused` whose message the spawn page shows;
2. admits it through ``core.admission`` (policy, group and domain caps, the image minimum,
   which raises a smaller request) and writes the session PENDING, together with the other
   launches waiting for admission (:mod:`.admission`);
3. waits in the resource group's queue (the hub's :class:`~.scheduler.SessionScheduler`);
   ``progress()`` says "waiting for resources in <group>: position k of n";
4. once SCHEDULED: PREPARING, builds the backend-neutral :class:`~.spec.SessionSpec`
   (folders, automounted dot-folders, SSH key, GPU devices) and hands it to the backend
   (:meth:`start_session`), then RUNNING.

``stop()`` ends it TERMINATED (CANCELLED while still queued), ``poll()`` notices a session
whose container or process vanished and ends it with the reason. Every change is in the
session's status history. Backends implement :meth:`start_session`, :meth:`stop_session`,
:meth:`poll_session` and :meth:`agent_info`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jupyterhub.utils import random_port
from sqlalchemy import select
from tornado import web
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from ..core import lifecycle
from ..core.environ import RESERVED_TEXT, EnvironError, check_environ, parse_environ_lines
from ..core.nvidia import (
    NvidiaSmiError,
    configured_devices,
    device_memory,
    device_shares,
    gpu_slots,
    session_gpu_usage,
)
from ..core.slots import ResourceSlots
from ..db import admin, launch, sshkeys
from ..db import models as m
from ..db import sessions as store
from ..db.engine import Database
from ..db.types import utcnow
from ..settings import DatabaseSettings, StorageSettings
from . import TEMPLATES
from .scheduler import Cancelled, SessionScheduler
from .spec import FolderRef, SessionSpec, SpecError, build_spec

T = TypeVar("T")

SLOT_FIELDS = {"cpu": "cpu", "mem": "mem", "cuda_device": "cuda.device", "cuda_shares": "cuda.shares"}


class SessionRefused(web.HTTPError):
    """A spawn that cannot go ahead; JupyterHub shows ``jupyterhub_message`` on the spawn page."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(status, reason)
        self.jupyterhub_message = reason
        self.reason = reason


@dataclass
class SessionRequest:
    """The user's request, read from the form or from ``user_options``."""

    image: str = ""
    group: str = ""
    scaling_group: str = ""
    preset: str = ""
    slots: dict[str, str] = field(default_factory=dict)
    shmem: str = ""
    folders: list[str] = field(default_factory=list)
    #: The user's environment variables (``config.environ``), checked by core.environ.
    environ: dict[str, str] = field(default_factory=dict)


def request_from_options(options: dict[str, Any]) -> SessionRequest:
    """Accept both the form's field names and Backend.AI-style names (``resources``, ``mounts``)."""

    def text(key: str, *aliases: str) -> str:
        for k in (key, *aliases):
            value = options.get(k)
            if isinstance(value, list):
                value = value[0] if value else ""
            if value not in (None, ""):
                return str(value).strip()
        return ""

    slots: dict[str, str] = {}
    resources = options.get("resources") or {}
    if not isinstance(resources, dict):
        raise SessionRefused("'resources' must be a mapping of slot name to amount")
    for key, value in resources.items():
        slots[str(key)] = str(value)
    for field_name, slot in SLOT_FIELDS.items():
        value = text(field_name, slot)
        if value:
            slots[slot] = value
    folders = options.get("folders", options.get("mounts", []))
    if isinstance(folders, str):
        folders = [f for f in folders.split(",")]
    if not isinstance(folders, list):
        raise SessionRefused("'folders' must be a list of folder names")
    environ = options.get("environ")
    try:
        # A mapping from the API (Backend.AI's config.environ), KEY=value lines from a form.
        environ = parse_environ_lines(environ) if isinstance(environ, str) else check_environ(environ)
    except EnvironError as e:
        raise SessionRefused(str(e)) from None
    return SessionRequest(
        image=text("image"),
        group=text("group", "project"),
        scaling_group=text("scaling_group", "resource_group"),
        preset=text("preset"),
        slots=slots,
        shmem=text("shmem"),
        folders=sorted({str(f).strip() for f in folders if str(f).strip()}),
        environ=environ,
    )


@dataclass(frozen=True)
class Admitted:
    session_id: uuid.UUID
    scaling_group: str
    note: str | None


class SessionSpawnerMixin(DatabaseSettings, StorageSettings, LoggingConfigurable):
    """Mixed into a JupyterHub spawner class before it (``class X(SessionSpawnerMixin, Spawner)``)."""

    backend_name = "generic"
    isolates_users = True

    default_scaling_group = Unicode(
        admin.DEFAULT, config=True, help="The resource group of a session whose request names none."
    )
    agent_id = Unicode(
        config=True,
        help="""The id under which this backend registers as an agent (default: ``<backend>-<host name>``,
        e.g. ``docker-node1``). Backends whose nodes are agents (Swarm, Kubernetes) name them by node.""",
    )

    @default("agent_id")
    def _default_agent_id(self):
        return f"{self.backend_name}-{socket.gethostname()}"

    agent_scaling_group = Unicode(
        admin.DEFAULT,
        config=True,
        help="The resource group the backend's agent belongs to (Swarm and Kubernetes: a node label says it).",
    )
    agent_capacity = Dict(
        config=True,
        help="""What the agent offers the scheduler, e.g. ``{'cpu': 8, 'mem': '32g', 'cuda.shares': 2}``.

        Default (empty): what the machine has, its CPUs and memory, with its GPUs from
        ``gpu_devices`` or ``nvidia-smi``.""",
    )
    gpu_devices = List(
        Dict(),
        config=True,
        help="""GPUs of the agent, instead of what ``nvidia-smi`` lists: ``[{'id': '0', 'memory': '24g'}]``.

        ``id`` is the host's device index, ``memory`` its size (fGPU memory limits are cut from
        it; 16 GiB when unknown), ``capacity`` its shares (default ``gpu_shares_per_device``).
        """,
    )
    gpu_shares_per_device = Integer(
        1,
        min=1,
        config=True,
        help="""How many ``cuda.shares`` one GPU offers: one share (one fGPU) is 1/N of a device.

        A session asking for ``cuda.shares`` s gets s/N of a device's memory and SM time, enforced
        by NVIDIA MPS (docs/gpu.md); a request of at most N shares stays on one device. Policies,
        presets and image minimums count in these shares, so change N only with them.
        """,
    )

    @validate("gpu_devices")
    def _check_gpu_devices(self, proposal):
        configured_devices(proposal.value)  # a wrong entry fails when the config loads, not at a spawn
        return proposal.value

    gpu_mps_pipe_directory = Unicode(
        "/tmp/nvidia-mps",
        config=True,
        help="""The host directory of the MPS control daemon's pipes (its ``CUDA_MPS_PIPE_DIRECTORY``).

        Sessions with ``cuda.shares`` get it mounted at /tmp/nvidia-mps: their CUDA programs then
        run as clients of that daemon, which enforces their memory and SM limits.
        """,
    )
    gpu_mps_shm_directory = Unicode(
        "",
        config=True,
        help="""A host directory mounted at /dev/shm of sessions with ``cuda.shares`` (none by default).

        The MPS control daemon's own /dev/shm, for drivers whose MPS clients must share it with the
        server (NVIDIA's Kubernetes device plugin does so). It replaces the session's private
        /dev/shm and its ``shmem`` size, and every such session of the node shares it (docs/gpu.md).
        """,
    )
    scheduler_interval = Float(
        2.0,
        config=True,
        help="Seconds between scheduling passes when nothing wakes the queue (a spawn or an ended session does).",
    )
    ssh_enabled = Bool(
        True,
        config=True,
        help="""Run an sshd in each session, reachable at ``ssh_host`` on the user's preferred SSH port
        when it is free (else another), with the user's key pair (Settings in the lab).""",
    )
    ssh_host = Unicode(
        "127.0.0.1",
        config=True,
        help="""The host name users connect to for SSH/SFTP (shown on the hub's page, in the lab and the API).

        A name of this node that users' machines resolve (Docker: this machine's name by default).
        """,
    )
    ssh_bind_ip = Unicode(
        "0.0.0.0",
        config=True,
        help="""The address of this node on which sessions' SSH ports listen (one port per session).

        ``0.0.0.0``: every address of the node, so that ``ssh_host`` reaches it from users'
        machines. Only key authentication of the session's owner is accepted there.
        """,
    )
    options_template = Unicode(
        "spawn_form.html",
        config=True,
        help="""Template of the spawn form; to change it, put a file of this name in a directory of
        ``c.JupyterHub.template_paths`` (searched first).""",
    )
    usage_interval = Float(
        30.0,
        config=True,
        help="Seconds between usage samples of a running session; its idle timeout is checked as often.",
    )
    lifetime_warning = Float(
        600.0,
        config=True,
        help="""Seconds before a session reaches its policy's maximum lifetime (max_session_lifetime)
        from which its JupyterLab warns that it is about to end. The hub ends the session at its
        lifetime whatever this says; a lifetime shorter than this warns from the start. Sessions
        get it as ``$BACKENDAI_LIFETIME_WARNING`` (the server extension's default).""",
    )

    @default("start_timeout")
    def _default_start_timeout(self):
        # Queued sessions wait for their resource group's pending timeout, not for the hub's 60 s.
        return 24 * 3600

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # JupyterHub >= 5.3 calls this before start(): bad options become a 400 right away.
        def check(spawner, user_options):
            request_from_options(user_options or {})

        return check

    @default("http_timeout")
    def _default_http_timeout(self):
        return 120

    session_id: uuid.UUID | None = None
    ssh_port: int | None = None  # shown on the home page (templates/home.html)
    _agent_registered = False
    _agent_seen = 0.0
    _agent_lock: asyncio.Lock | None = None

    # --- database ---------------------------------------------------------------------------

    @property
    def database(self) -> Database:
        """The process's handle on ``db_url``, shared by every spawner and the authenticator."""
        return Database.shared(self.db_url)

    def session_factory(self):
        return self.database.factory

    async def run_db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(db, ...)`` in one transaction on a worker thread (SQL blocks)."""
        return await self.database.run(fn, *args, **kwargs)

    @property
    def scheduler(self) -> SessionScheduler:
        scheduler = SessionScheduler.for_database(self.db_url, self.session_factory(), interval=self.scheduler_interval)
        scheduler.require_images = self.places_by_image()
        return scheduler

    def places_by_image(self) -> bool:
        """Whether sessions go only to agents that have their image (backends that do not pull)."""
        return False

    def check_image_placeable(self, db, image: m.Image, scaling_group: str) -> None:
        """Refuse (:class:`SessionRefused`) a session whose image no agent of its group can run."""

    @property
    def folder_store(self):
        from ..storage import FolderStore

        return FolderStore(self.storage_root)

    # --- state across hub restarts ------------------------------------------------------------

    def get_state(self):
        state = super().get_state()
        if self.session_id:
            state["backendai_session_id"] = str(self.session_id)
        if self.ssh_port:
            state["backendai_ssh_port"] = self.ssh_port
        return state

    def load_state(self, state):
        super().load_state(state)
        if state.get("backendai_session_id"):
            self.session_id = uuid.UUID(state["backendai_session_id"])
        self.ssh_port = state.get("backendai_ssh_port")

    def clear_state(self):
        super().clear_state()
        self.session_id = None
        self.ssh_port = None

    # --- the spawn form -------------------------------------------------------------------------

    @default("options_form")
    def _default_options_form(self):
        return self._render_options_form

    async def _render_options_form(self, spawner) -> str:
        await self.ensure_agent()  # what fits depends on the agents' capacity
        ns = await self.run_db(self._form_namespace)
        env = Environment(loader=FileSystemLoader([*self._template_paths(), TEMPLATES]), autoescape=select_autoescape())
        return env.get_template(self.options_template).render(**ns)

    def _template_paths(self) -> list[str]:
        app = getattr(self.user, "settings", {}) or {}
        return [p for p in (app.get("template_path") or []) if isinstance(p, str)]

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for key in ("image", "group", "scaling_group", "preset", "shmem", *SLOT_FIELDS):
            value = (formdata.get(key) or [""])[0].strip()
            if value:
                options[key] = value
        options["folders"] = [f for f in formdata.get("folders", []) if f.strip()]
        lines = (formdata.get("environ") or [""])[0]
        if lines.strip():
            try:
                options["environ"] = parse_environ_lines(lines)
            except EnvironError as e:
                raise SessionRefused(str(e)) from None  # shown above the form again
        return options

    def _form_namespace(self, db) -> dict[str, Any]:
        from ..db import folders as folder_db

        user, keypair = self._user_and_keypair(db)
        groups = sorted(user.groups, key=lambda g: g.name)
        first_group = groups[0] if groups else None
        sgroups = launch.allowed_scaling_groups(db, user, keypair, first_group, self.default_scaling_group)
        images = launch.allowed_images(db, user, first_group)
        accessible = folder_db.accessible_folders(db, user)
        # Which presets fit, per project and resource group, by the rule the lab's start dialog
        # reads (check-presets); the form shows those of the pair chosen in it.
        offered: dict[str, dict[str, Any]] = {}
        every: set[str] = set()
        for group, sg, answer in launch.presets_per_choice(db, user, keypair, self.default_scaling_group):
            for p in answer["presets"]:
                every.add(p["name"])
                if p["allocatable"]:
                    entry = offered.setdefault(p["name"], {**p, "fits": []})
                    entry["fits"].append(form_choice(group.name if group else "", sg))
        first = form_choice(groups[0].name if groups else "", sgroups[0] if sgroups else "")
        presets = [
            {
                **p,
                "human": ResourceSlots.parse(p["resource_slots"]).nonzero().humanize(),
                "fits_first": first in p["fits"],
            }
            for _, p in sorted(offered.items())
        ]
        return {
            "user": user,
            "backend": self.backend_name,
            "isolates_users": self.isolates_users,
            "backend_reason": getattr(self, "backend_reason", ""),  # why this backend runs (local)
            "images": images,
            "groups": groups,
            "scaling_groups": sgroups,
            "presets": presets,
            "preset_total": len(every),
            "hidden_presets": len(every) - len([p for p in presets if p["fits_first"]]),
            "folders": [a for a in accessible if not a.is_automount],
            "automount": [a for a in accessible if a.is_automount],
            "policy": keypair.policy,
            "environ_reserved": RESERVED_TEXT,
        }

    # --- look-ups ---------------------------------------------------------------------------------

    def _user_and_keypair(self, db) -> tuple[m.User, m.KeyPair]:
        user = db.scalar(select(m.User).where(m.User.username == self.user.name))
        if user is None:
            raise SessionRefused(f"the hub user {self.user.name!r} has no account in the product's database", 403)
        if not user.is_active:
            raise SessionRefused("this account is inactive", 403)
        keypair = launch.main_keypair(db, user)
        if keypair is None:
            raise SessionRefused("this account has no active keypair; ask an administrator for one", 403)
        return user, keypair

    # --- admission (worker thread) -------------------------------------------------------------------

    def _plan(self, db, request: SessionRequest) -> launch.LaunchPlan:
        """The request checked against the launch rules (the limits are admission's, hub/admission.py)."""
        user, _keypair = self._user_and_keypair(db)
        try:
            return launch.plan_launch(
                db,
                user,
                request,
                default_scaling_group=self.default_scaling_group,
                check_image=lambda image, sg: self.check_image_placeable(db, image, sg),
            )
        except admin.AdminError as e:  # the launch rules' and the folder rules' refusals
            raise SessionRefused(str(e), getattr(e, "status", 400)) from None

    # --- preparing (worker thread) ---------------------------------------------------------------------

    def _prepare(self, db, hub_env: dict[str, str], user_env: dict[str, str] | None = None) -> SessionSpec:
        from ..db import folders as folder_db

        hub_env = {**hub_env, lifecycle.WARNING_ENV: f"{self.lifetime_warning:g}"}
        session = db.get(m.Session, self.session_id)
        user, keypair = self._user_and_keypair(db)
        store.set_status(db, session, m.SessionStatus.PREPARING, "preparing the container")
        names = [mount["folder"] for mount in session.mounts or []]
        chosen, automount = folder_db.mountable(db, user, names)
        folder_store = self.folder_store

        def ref(access) -> FolderRef:
            f = access.folder
            # The capacity is set again at each start: the owner's policy may have changed it.
            path = folder_store.ensure(f.host, f.id, capacity=folder_db.capacity_of(db, f))
            return FolderRef(f.name, str(path), access.permission)

        ssh_port = None
        keys = sshkeys.get_or_create(db, user)
        if self.ssh_enabled:
            # The port users connect to; sshd itself may listen on another inside the session.
            self.ssh_port = session.ssh_port = self.choose_ssh_port(user.preferred_ssh_port)
            ssh_port = self.session_ssh_port(self.ssh_port)
        # The fGPU limits are cut from the devices as the agent registered them (nvidia-smi's memory).
        agent = db.get(m.Agent, session.agent_id) if session.agent_id else None
        devices = list(agent.devices or []) if agent is not None else []
        self._gpu_placement = dict(session.gpu_placement or {})
        spec = build_spec(
            session_id=session.id,
            session_name=session.name,
            user=user.username,
            email=user.email,
            access_key=keypair.access_key,
            resource_group=session.scaling_group,
            image=session.image,
            slots=session.occupied_slots,
            shmem=(session.resource_opts or {}).get("shmem"),
            folders=[ref(a) for a in chosen],
            accessible=[ref(a) for a in automount],
            gpu_placement=session.gpu_placement or None,
            gpu_memory=device_memory(devices),
            gpu_shares_per_device=device_shares(devices),
            mps_pipe_host_dir=self.gpu_mps_pipe_directory,
            mps_shm_host_dir=self.gpu_mps_shm_directory or None,
            hub_env=hub_env,
            user_env=user_env,
            cmd=self.session_command(ssh_port),
            service_ports=session.service_ports or (),
            ssh_port=ssh_port,
            ssh_public_key=keys.public_key,
            ssh_private_key=keys.private_key,
        )
        return spec

    def session_command(self, ssh_port: int | None) -> tuple[str, ...]:
        return ("jupyterhub-singleuser",)

    def server_address(self) -> tuple[str, int]:
        """Where the session's server listens (the backend's view): the host's loopback by default."""
        return "127.0.0.1", random_port()

    def choose_ssh_port(self, preferred: int | None) -> int:
        """The port users connect to for SSH, free where the session runs (in a worker thread)."""
        return pick_ssh_port(preferred, host=self.ssh_bind_ip)

    def session_ssh_port(self, public_port: int) -> int:
        """The port sshd listens on inside the session, for the port users connect to."""
        return public_port

    async def open_network(self) -> None:
        """Make the session's network before its environment is computed (backends that isolate)."""

    _lifetime_read: tuple[dt.datetime | None] | None = None

    def _mark_running(self, db, container_id: str | None) -> dt.datetime | None:
        self._mark(db, m.SessionStatus.RUNNING, "running", container_id=container_id)
        return _lifetime_end(db, self.session_id)

    def _mark(self, db, status: m.SessionStatus, reason: str, **values: Any) -> None:
        session = db.get(m.Session, self.session_id) if self.session_id else None
        if session is None or session.status in m.FINISHED_SESSION_STATUSES:
            return
        for key, value in values.items():
            setattr(session, key, value)
        store.set_status(db, session, status, reason)

    # --- JupyterHub's spawner API ------------------------------------------------------------------

    async def start(self):
        from .admission import admit_launch

        await self.ensure_agent()
        request = request_from_options(self.user_options or {})
        session_name = self.name or f"s-{uuid.uuid4().hex[:8]}"
        try:
            admitted = await admit_launch(self, request, session_name)
        except SpecError as e:
            raise SessionRefused(str(e)) from None
        self.session_id = admitted.session_id
        self._admitted = admitted
        self.log.info("Session %s of %s queued in %s", self.session_id, self.user.name, admitted.scaling_group)
        try:
            await self.scheduler.wait(self.session_id)
        except Cancelled as e:
            raise SessionRefused(f"The session did not start: {e}.", 503) from None
        except asyncio.CancelledError:
            # The user's DELETE and a hub shutdown both cancel a waiting spawn; neither can be told apart here.
            await self.run_db(
                self._mark, m.SessionStatus.CANCELLED, "the spawn was cancelled while it waited in the queue"
            )
            self.scheduler.wake()
            raise
        # The server's address goes into the hub's env for it (JUPYTERHUB_SERVICE_URL): pick it first.
        self.ip, self.port = self.server_address()
        try:
            await self.open_network()
            spec = await self.run_db(self._prepare, self.get_env(), request.environ)
            ip_port = await self.start_session(spec)
        except BaseException as e:
            reason = str(e) if not isinstance(e, asyncio.CancelledError) else "cancelled while starting"
            await self.run_db(self._mark, m.SessionStatus.ERROR, f"could not start: {reason}")
            self.scheduler.wake()
            if isinstance(e, SpecError):
                raise SessionRefused(str(e)) from None
            raise
        # The lifetime's end is read with the mark: the monitor's first look needs no transaction of its own.
        self._lifetime_read = (await self.run_db(self._mark_running, self.backend_object_id()),)
        self._start_monitor()
        return ip_port

    async def stop(self, now=False):
        # The backend's stop may poll and clear the state (the session id) on the way.
        session_id, self._stopping = self.session_id, True
        try:
            await self.stop_session(now)
        finally:
            self._stopping = False
            self._stop_monitor()
            if session_id:
                await self.run_db(self._finish, session_id, self._end_reason or "terminated by the user")
                self._end_reason = None
                self.scheduler.wake()

    _stopping = False
    _end_reason: str | None = None
    _monitor_task: asyncio.Task | None = None
    _seen_ready = False

    def _finish(self, db, session_id: uuid.UUID, reason: str) -> None:
        session = db.get(m.Session, session_id)
        if session is None or session.status in m.FINISHED_SESSION_STATUSES:
            return
        if session.status == m.SessionStatus.PENDING:
            store.set_status(db, session, m.SessionStatus.CANCELLED, "cancelled by the user while waiting")
            return
        store.set_status(db, session, m.SessionStatus.TERMINATING, reason)
        store.set_status(db, session, m.SessionStatus.TERMINATED, reason)

    async def poll(self):
        # After a hub restart poll() is the first call: start the queue (it cancels sessions
        # that were waiting when the hub stopped) and watch the sessions that survived.
        self.scheduler.ensure_running()
        await self.ensure_agent()
        if self.session_id and self._monitor_task is None and not self._stopping:
            self._start_monitor()
        session_id = self.session_id
        status = await self.poll_session()
        if status is not None and session_id and not self._stopping:
            # Gone without stop(): a container killed from outside, a crashed process.
            await self.run_db(self._vanished, session_id, status)
            self.scheduler.wake()
        return status

    def _vanished(self, db, session_id: uuid.UUID, status) -> None:
        session = db.get(m.Session, session_id)
        if session is not None and session.status in m.ACTIVE_SESSION_STATUSES:
            store.set_status(
                db,
                session,
                m.SessionStatus.TERMINATED,
                f"the session's {self.backend_name} backend ended it ({status})",
            )

    async def progress(self):
        yield {"progress": 5, "message": "Checking the request against your limits"}
        last = None
        while self.session_id is None:
            await asyncio.sleep(0.2)
        while True:
            status = await self.run_db(lambda db: db.get(m.Session, self.session_id).status)
            if status != m.SessionStatus.PENDING:
                break
            pos = self.scheduler.position(self.session_id)
            if pos is not None:
                message = f"Waiting for resources in {pos.resource_group}: position {pos.position} of {pos.length}"
                if "image" in pos.reason:
                    message += f" ({pos.reason})"  # no agent with the image, and none may pull it
                if message != last:
                    last = message
                    yield {"progress": 10, "message": message}
            await asyncio.sleep(0.5)
        if status in m.ACTIVE_SESSION_STATUSES:
            yield {"progress": 50, "message": f"Starting the session on the {self.backend_name} backend"}
        # While the backend prepares it: the pull of its image, when one runs (backends that pull).
        while status in m.ACTIVE_SESSION_STATUSES and status != m.SessionStatus.RUNNING:
            event = getattr(self, "pull_progress_event", lambda: None)()
            if event is not None and event["message"] != last:
                last = event["message"]
                yield event
            await asyncio.sleep(0.5)
            session_id = self.session_id
            if session_id is None:
                return
            status = await self.run_db(lambda db, sid=session_id: db.get(m.Session, sid).status)

    # --- usage and idleness ---------------------------------------------------------------------------

    def _start_monitor(self) -> None:
        if self._monitor_task is None or self._monitor_task.done():
            self._seen_ready = False
            self._monitor_task = asyncio.ensure_future(self._monitor())

    def _stop_monitor(self) -> None:
        task, self._monitor_task = self._monitor_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _monitor(self) -> None:
        """Sample usage every ``usage_interval`` s; stop the session once the policy's idle timeout
        or maximum lifetime says so (core.lifecycle), looking again right at the lifetime's end."""
        read, self._lifetime_read = self._lifetime_read, None
        try:
            end = read[0] if read is not None else await self.run_db(_lifetime_end, self.session_id)
        except Exception:
            self.log.exception("Reading the lifetime of session %s failed", self.session_id)
            end = None  # the first sample reads it again
        while self.session_id:
            # At most a second late at the end; never a busy loop while the server is not ready.
            floor = min(1.0, self.usage_interval)
            await asyncio.sleep(max(floor, lifecycle.next_check_in(utcnow(), end, self.usage_interval)))
            session_id = self.session_id
            if session_id is None:
                return
            if self.pending or not self.ready:
                continue  # idleness counts from when the server answers, not from its start
            try:
                sample = await self.sample_usage()
                activity = getattr(getattr(self, "orm_spawner", None), "last_activity", None)
                if not self._seen_ready:
                    self._seen_ready = True
                    activity = utcnow()
                ending, end = await self.run_db(_record_usage, session_id, sample, activity)
            except Exception:
                self.log.exception("Usage sampling of session %s failed", session_id)
                continue
            if ending is not None:
                self.log.info("Session %s ends after %d s (%s)", session_id, ending.seconds, ending.reason)
                self._end_reason = ending.reason
                asyncio.ensure_future(self.user.stop(self.name))
                return

    async def sample_usage(self) -> dict[str, Any]:
        """Backends return cpu_seconds, cpu_percent, mem_bytes, io_read_bytes, io_write_bytes."""
        return {}

    # --- the backend ---------------------------------------------------------------------------------

    agent_heartbeat_interval = Float(
        60.0, config=True, help="Seconds between the agent's heartbeats (re-registration with its capacity)."
    )

    async def ensure_agent(self) -> None:
        """Register the backend as an agent, and refresh it (a heartbeat) once the interval has passed."""
        import time

        if SessionSpawnerMixin._agent_lock is None:
            SessionSpawnerMixin._agent_lock = asyncio.Lock()
        async with SessionSpawnerMixin._agent_lock:  # concurrent spawns register it once
            now = time.monotonic()
            registered = SessionSpawnerMixin._agent_registered
            if registered and now - SessionSpawnerMixin._agent_seen < self.agent_heartbeat_interval:
                return
            SessionSpawnerMixin._agent_seen = now
            await self._register_agent()

    async def _register_agent(self) -> None:
        capacity, devices, addr = await self.agent_info()
        if self.gpu_devices:
            devices = configured_devices(self.gpu_devices, self.gpu_shares_per_device)
        if self.gpu_devices or devices:
            capacity = ResourceSlots(
                {**{k: v for k, v in capacity.items() if not k.startswith("cuda.")}, **gpu_slots(devices)}
            )
        if self.agent_capacity:
            capacity = ResourceSlots.parse(self.agent_capacity)
        unknown = [str(d["id"]) for d in devices if not d.get("memory")]
        if unknown and not SessionSpawnerMixin._agent_registered:
            self.log.warning("GPU %s: memory unknown, fGPU memory limits assume 16 GiB", ", ".join(unknown))
        await self.run_db(
            lambda db: store.register_agent(
                db,
                self.agent_id,
                scaling_group=self.agent_scaling_group,
                capacity=capacity,
                devices=devices,
                addr=addr,
                region="local",
                version=self.backend_name,
            )
        )
        if not SessionSpawnerMixin._agent_registered:
            self.log.info("Agent %s registered in %s with %s", self.agent_id, self.agent_scaling_group, capacity)
        SessionSpawnerMixin._agent_registered = True

    async def agent_info(self) -> tuple[ResourceSlots, list[dict], str]:
        raise NotImplementedError

    async def session_pids(self) -> list[int]:
        """Host pids of the session's processes (to tell its share of a shared GPU's memory)."""
        return []

    _gpu_placement: dict | None = None

    async def sample_gpu(self) -> dict[str, Any]:
        """The GPU fields of a usage sample (``gpu_percent``, ``gpu_mem_bytes``) where nvidia-smi runs."""
        from . import nvidia

        session_id = self.session_id
        if session_id is None:
            return {}
        if self._gpu_placement is None:  # after a hub restart _prepare did not run here
            self._gpu_placement = await self.run_db(lambda db: dict(db.get(m.Session, session_id).gpu_placement or {}))
        placement = self._gpu_placement
        if not any(placement.values()):
            return {}
        try:
            gpus, apps = await asyncio.to_thread(nvidia.snapshot, bool(placement.get("cuda.shares")))
        except NvidiaSmiError as e:
            self.log.warning("GPU usage of session %s: %s", session_id, e)
            return {}
        if gpus is None:
            return {}
        pids = await self.session_pids() if placement.get("cuda.shares") else []
        return session_gpu_usage(placement, gpus, apps, pids)

    async def start_session(self, spec: SessionSpec):
        raise NotImplementedError

    async def stop_session(self, now: bool) -> None:
        raise NotImplementedError

    async def poll_session(self):
        raise NotImplementedError

    def backend_object_id(self) -> str | None:
        return None


def form_choice(group: str, scaling_group: str) -> str:
    """How the spawn form names a (project, resource group) pair in a preset's ``data-fits``."""
    return f"{group}/{scaling_group}"


def pick_ssh_port(preferred: int | None, *, host: str = "127.0.0.1") -> int:
    """The user's preferred port when it is free, else a random free one in 10000–65000 (F34)."""
    import random

    candidates = ([preferred] if preferred and 10000 <= preferred <= 65000 else []) + [
        random.randint(10000, 65000) for _ in range(50)
    ]
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise SessionRefused("no free port for the session's SSH server", 503)


def _lifetime_end(db, session_id: uuid.UUID | None) -> dt.datetime | None:
    session = db.get(m.Session, session_id) if session_id else None
    return store.lifetime_end(db, session) if session is not None else None


def _record_usage(
    db, session_id: uuid.UUID, sample: dict[str, Any], activity
) -> tuple[lifecycle.Ending | None, dt.datetime | None]:
    """Store a usage sample; return why the session must end now (or None), and when its lifetime ends."""
    session = db.get(m.Session, session_id)
    if session is None or session.status != m.SessionStatus.RUNNING:
        return None, None
    now = utcnow()
    if sample:
        db.add(m.SessionUsage(session_id=session_id, at=now, **sample))
    if activity is not None:
        if activity.tzinfo is None:
            activity = activity.replace(tzinfo=dt.timezone.utc)
        if session.last_activity is None or activity > session.last_activity:
            session.last_activity = activity
    keypair = db.get(m.KeyPair, session.access_key)
    idle_timeout = keypair.policy.idle_timeout if keypair is not None else 0
    lifetime = keypair.policy.max_session_lifetime if keypair is not None else 0
    ending = lifecycle.check(
        now=now,
        started_at=session.started_at,
        last_activity=session.last_activity,
        idle_timeout=idle_timeout,
        max_session_lifetime=lifetime,
    )
    return ending, lifecycle.ends_at(session.started_at, lifetime)


def usage_sample(spawner, cpu_seconds: float, mem_bytes: int, io_read: int, io_write: int) -> dict[str, Any]:
    """A usage row's fields; CPU % is over the time since the spawner's previous sample."""
    import time

    now = time.monotonic()
    last = getattr(spawner, "_last_cpu", None)
    percent = 0.0
    if last is not None and now > last[0]:
        percent = max(0.0, (cpu_seconds - last[1]) / (now - last[0]) * 100)
    spawner._last_cpu = (now, cpu_seconds)
    return {
        "cpu_seconds": cpu_seconds,
        "cpu_percent": round(percent, 2),
        "mem_bytes": mem_bytes,
        "io_read_bytes": io_read,
        "io_write_bytes": io_write,
    }
