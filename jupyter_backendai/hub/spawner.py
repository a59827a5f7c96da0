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
   (:meth:`start_session`), then RUNNING; both writes go with those of the other sessions
   starting at the same time (:mod:`.starts`).

``stop()`` ends it TERMINATED (CANCELLED while still queued), ``poll()`` notices a session
whose container or process vanished and ends it with the reason. Every change is in the
session's status history. Backends implement :meth:`start_session`, :meth:`stop_session`,
:meth:`poll_session` and :meth:`agent_info`.

Mixed in by concern: the request and its refusal (:mod:`.request`), the spawn form and the
options (:mod:`.spawn_form`), the pending page's text (:mod:`.progress`), usage samples and the
idle and lifetime ends (:mod:`.usage`); this module keeps the lifecycle, the agent and the spec.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from jupyterhub.utils import random_port
from sqlalchemy import select
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from ..core import lifecycle
from ..core.nvidia import configured_devices, device_memory, device_shares, gpu_slots
from ..core.slots import ResourceSlots
from ..db import admin, launch, sshkeys
from ..db import models as m
from ..db import sessions as store
from ..db.engine import Database
from ..settings import DatabaseSettings, StorageSettings
from .progress import SessionProgressMixin
from .request import SLOT_FIELDS, Admitted, SessionRefused, SessionRequest, request_from_options
from .scheduler import Cancelled, SessionScheduler
from .spawn_form import SpawnFormMixin, form_choice
from .spec import FolderRef, SessionSpec, SpecError, build_spec
from .starts import run_together, shared
from .usage import SessionUsageMixin, session_lifetime_end, usage_sample

# What the backends, the admission and the tests import from here, with their homes beside it.
__all__ = [
    "SLOT_FIELDS",
    "Admitted",
    "SessionRefused",
    "SessionRequest",
    "SessionSpawnerMixin",
    "form_choice",
    "pick_ssh_port",
    "request_from_options",
    "usage_sample",
]

T = TypeVar("T")


class SessionSpawnerMixin(
    SpawnFormMixin, SessionProgressMixin, SessionUsageMixin, DatabaseSettings, StorageSettings, LoggingConfigurable
):
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

    # --- look-ups ---------------------------------------------------------------------------------

    def _user_and_keypair(self, db) -> tuple[m.User, m.KeyPair]:
        # Read once for all of a user's sessions that start together (hub/starts.py).
        return shared(db, ("user and keypair", self.user.name), lambda: self._read_user_and_keypair(db))

    def _read_user_and_keypair(self, db) -> tuple[m.User, m.KeyPair]:
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
        chosen, automount = shared(db, ("mountable", user.id, *names), lambda: folder_db.mountable(db, user, names))
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

    def _mark_running(self, db, container_id: str | None) -> dt.datetime | None:
        self._mark(db, m.SessionStatus.RUNNING, "running", container_id=container_id)
        return session_lifetime_end(db, self.session_id)

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
            spec = await run_together(self, self._prepare, self.get_env(), request.environ)
            ip_port = await self.start_session(spec)
        except BaseException as e:
            reason = str(e) if not isinstance(e, asyncio.CancelledError) else "cancelled while starting"
            await self.run_db(self._mark, m.SessionStatus.ERROR, f"could not start: {reason}")
            self.scheduler.wake()
            if isinstance(e, SpecError):
                raise SessionRefused(str(e)) from None
            raise
        # The lifetime's end is read with the mark: the monitor's first look needs no transaction of its own.
        self.start_monitor((await run_together(self, self._mark_running, self.backend_object_id()),))
        return ip_port

    async def stop(self, now=False):
        # The backend's stop may poll and clear the state (the session id) on the way.
        session_id, self._stopping = self.session_id, True
        try:
            await self.stop_session(now)
        finally:
            self._stopping = False
            self.stop_monitor()
            if session_id:
                await self.run_db(self._finish, session_id, self._end_reason or "terminated by the user")
                self._end_reason = None
                self.scheduler.wake()

    _stopping = False

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
        if self.session_id and not self._stopping:
            self.resume_monitor()
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

    async def start_session(self, spec: SessionSpec):
        raise NotImplementedError

    async def stop_session(self, now: bool) -> None:
        raise NotImplementedError

    async def poll_session(self):
        raise NotImplementedError

    def backend_object_id(self) -> str | None:
        return None


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
