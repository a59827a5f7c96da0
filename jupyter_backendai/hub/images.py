"""Images onto agents: installs an administrator queued, pulls at spawn, what each agent has.

Backend.AI's agents pull images and report the ones they have; here the hub does it for the
agents of its backend, through the same engine calls its spawner makes:

* **Docker** (:class:`DockerImages`): the hub's engine is the agent. Its images are read at each
  heartbeat (``docker images``); a pull goes through the engine's API, whose per-layer events
  give the bytes done (:class:`~..core.images.PullProgress`).
* **Swarm** (:class:`SwarmImages`): where the hub reaches a node's own engine (the manager node
  it talks to, and nodes in ``node_docker_urls`` / ``node_docker_url``) it works as on Docker:
  the engine lists its images at each heartbeat and pulls with per-layer progress. Elsewhere the
  manager does not know the node's images: a pull onto the node is a one-task service with that
  image pinned there, which makes the node's engine pull it (the task's state is the progress:
  ``preparing`` while it pulls); its outcome says whether the node has the image, and the node's
  images are the ones this hub pulled there or ran a session from.

One :class:`ImagePuller` per hub process and database runs every pull, so that an install and a
spawn needing the same image on the same agent share one pull and its progress; it also takes
the installs that an administrator queued (``POST /admin/images/{ref}/install``, the manager
writes them as ``queued`` rows) and runs them, at most ``image_pull_concurrency`` at once.

At spawn (:meth:`ImagesMixin.pull_image`, which dockerspawner's ``start`` calls before it
creates the container or service) the ``pull_policy`` decides: ``ifnotpresent`` pulls an image
the chosen agent lacks while the session is PULLING (its pending page shows the progress);
``always`` pulls every time; ``never`` pulls nothing, and the scheduler places sessions only
on agents that have their image; ``skip`` does not look.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from traitlets import CaselessStrEnum, Float, Integer
from traitlets.config import LoggingConfigurable

from ..core.images import (
    FAILED,
    INSTALLED,
    LABEL_PULL,
    PULL_POLICIES,
    PULLING,
    PullError,
    PullProgress,
    engine_references,
    image_missing,
    normalize_reference,
    pull_object_name,
    pulls_when_missing,
    split_reference,
)
from ..db import admin
from ..db import images as image_db
from ..db import models as m
from ..db import sessions as store
from .passes import PassLoop
from .spec import SpecError

log = logging.getLogger("jupyter_backendai.images")

#: Seconds between writes of a pull's progress to the database (the admin panel reads it there).
PROGRESS_WRITE_INTERVAL = 1.0


@dataclass
class Pull:
    """One pull of one image onto one agent, shared by everyone who waits for it."""

    agent_id: str
    reference: str
    progress: PullProgress
    task: asyncio.Task | None = None
    started: float = field(default_factory=time.monotonic)
    #: Without per-byte progress (a swarm node), what the engine says it is doing.
    note: str = ""

    def text(self) -> str:
        return self.note or self.progress.text()


class ImagePuller(PassLoop):
    """The pulls of one hub process (per database), and the queue of installs."""

    _instances: dict[str, ImagePuller] = {}

    def __init__(self, backend: ImagesMixin):
        self.backend = backend
        self.pulls: dict[tuple[str, str], Pull] = {}
        self._reported = 0.0
        super().__init__()

    @classmethod
    def of(cls, backend: ImagesMixin) -> ImagePuller:
        puller = cls._instances.get(backend.db_url)
        if puller is None:
            puller = cls._instances[backend.db_url] = cls(backend)
        return puller

    # --- pulls -----------------------------------------------------------------------------

    def current(self, agent_id: str, reference: str) -> Pull | None:
        return self.pulls.get((agent_id, normalize_reference(reference)))

    def pull(self, agent_id: str, reference: str) -> Pull:
        """The pull of ``reference`` onto ``agent_id``: the one in progress, or a new one."""
        key = (agent_id, normalize_reference(reference))
        pull = self.pulls.get(key)
        if pull is None or (pull.task is not None and pull.task.done()):
            pull = Pull(agent_id, reference, PullProgress(reference))
            self.pulls[key] = pull
            pull.task = asyncio.ensure_future(self._run(pull))
        return pull

    async def _run(self, pull: Pull) -> None:
        backend = self.backend
        key = (pull.agent_id, normalize_reference(pull.reference))
        try:
            source = await backend.run_db(image_db.pull_source, pull.reference)
            await backend.run_db(image_db.set_install, pull.agent_id, pull.reference, PULLING, message="starting")
            log.info("Pulling %s onto agent %s", pull.reference, pull.agent_id)
            stop = asyncio.Event()
            writer = asyncio.ensure_future(self._write_progress(pull, stop))
            try:
                await backend.pull_onto(pull.agent_id, source, pull)
            finally:
                # Not cancelled: a write on its thread would land after the outcome's.
                stop.set()
                await asyncio.gather(writer, return_exceptions=True)
            pull.progress.finished = True
            await backend.run_db(image_db.set_install, pull.agent_id, pull.reference, INSTALLED)
            log.info(
                "Pulled %s onto agent %s in %.1f s", pull.reference, pull.agent_id, time.monotonic() - pull.started
            )
        except BaseException as e:
            reason = _reason(e)
            log.warning("Pulling %s onto agent %s failed: %s", pull.reference, pull.agent_id, reason)
            try:
                await backend.run_db(image_db.set_install, pull.agent_id, pull.reference, FAILED, message=reason)
            except Exception:  # the database gone with the hub: the next start marks it interrupted
                log.exception("Recording the failed pull of %s", pull.reference)
            if isinstance(e, asyncio.CancelledError):
                raise
            raise PullError(reason) from None
        finally:
            if self.pulls.get(key) is pull:
                del self.pulls[key]
            self._wake.set()

    async def _write_progress(self, pull: Pull, stop: asyncio.Event) -> None:
        last = None
        while True:
            try:
                await asyncio.wait_for(stop.wait(), PROGRESS_WRITE_INTERVAL)
                return
            except asyncio.TimeoutError:
                pass
            now = (pull.progress.current, pull.progress.total, pull.text())
            if now != last:
                last = now
                await self.backend.run_db(
                    image_db.set_install, pull.agent_id, pull.reference, PULLING,
                    current=now[0] or None, total=now[1] or None, message=now[2],
                )  # fmt: skip

    # --- the queue of installs -----------------------------------------------------------------

    async def _loop(self) -> None:
        backend = self.backend
        try:
            await backend.run_db(image_db.interrupted_pulls, backend.backend_name, keep=set(self.pulls))
        except Exception:
            log.exception("Marking the pulls of an earlier hub as interrupted failed")
        while True:
            await self._next_pass(backend.image_poll_interval)
            try:
                # The agent's heartbeat (when due) reports its images even while no spawn runs.
                await backend.ensure_agent()
                if time.monotonic() - self._reported >= backend.agent_heartbeat_interval:
                    self._reported = time.monotonic()
                    await backend.report_images()
                queued = await backend.run_db(image_db.queued_installs, backend.backend_name)
            except Exception:
                log.exception("Reading the queued image installs failed")
                continue
            running = sum(1 for p in self.pulls.values() if p.task is not None and not p.task.done())
            for agent_id, reference in queued:
                if running >= backend.image_pull_concurrency:
                    break
                if (agent_id, reference) in self.pulls:
                    continue
                running += 1
                pull = self.pull(agent_id, reference)
                pull.task.add_done_callback(_quiet)


def _quiet(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # read: an install's failure is in its row, not an unhandled-task warning


def _reason(e: BaseException) -> str:
    if isinstance(e, asyncio.CancelledError):
        return "the pull was cancelled"
    text = getattr(e, "explanation", None) or str(e) or type(e).__name__
    return str(text).strip()[:2000]


class ImagesMixin(LoggingConfigurable):
    """Spawner side of images, mixed in before :class:`~.spawner.SessionSpawnerMixin`.

    Backends implement :meth:`image_present` (``True``, ``False``, or ``None`` when the agent
    cannot tell) and :meth:`pull_onto`; :meth:`agent_image_references` when the agent reports
    its images at its heartbeat.
    """

    pull_policy = CaselessStrEnum(
        list(PULL_POLICIES),
        default_value="ifnotpresent",
        config=True,
        help="""When a spawn pulls the session's image onto the agent the scheduler chose.

        ``ifnotpresent`` (default): the image is pulled from its registry when the agent lacks it;
        the session is PULLING meanwhile and its pending page shows the progress. ``always``:
        every spawn pulls it (a moving tag is refreshed). ``never``: nothing is pulled at spawn;
        the scheduler places a session only on agents that have its image (installed by an
        administrator, Administration → Images, or put there by other means), and a session whose
        image no agent of its resource group has is refused with that reason. ``skip``: the image
        is not checked (the engine finds out). Only images of the registries in the database are
        pulled, with their credentials; images without a registry (built or loaded on the agents)
        never are. On Kubernetes the default follows the kubelet's ``image_pull_policy``
        (``IfNotPresent``: ``ifnotpresent``, ``Always``: ``always``, ``Never``: ``skip``).
        """,
    )
    image_pull_concurrency = Integer(
        2, min=1, config=True, help="How many image installs (queued by administrators) this hub runs at once."
    )
    image_poll_interval = Float(
        2.0, config=True, help="Seconds between looks for image installs queued by administrators."
    )

    # --- what backends implement ------------------------------------------------------------------

    async def image_present(self, agent_id: str, reference: str) -> bool | None:
        raise NotImplementedError

    async def pull_onto(self, agent_id: str, source: image_db.PullSource, pull: Pull) -> None:
        raise NotImplementedError

    async def agent_image_references(self) -> list[str] | None:
        """The images the backend's own agent has, at its heartbeat (None: it does not report)."""
        return None

    def engine_pulls_unknown_registries(self) -> bool:
        """Whether the agent's engine pulls, when it makes the session, an image whose registry the
        database does not know (a kubelet with its own pull secrets), so that a spawn is not refused."""
        return False

    async def report_images(self) -> None:
        """Many-agent backends: each agent that can say reports its images (every heartbeat interval)."""

    # --- the mixin's part -------------------------------------------------------------------------

    @property
    def image_puller(self) -> ImagePuller:
        puller = ImagePuller.of(self)
        puller.ensure_running()
        return puller

    def places_by_image(self) -> bool:
        return self.pull_policy == "never"

    async def ensure_agent(self) -> None:
        await super().ensure_agent()
        self.image_puller  # noqa: B018 - its loop takes the queued installs from now on

    async def _register_agent(self) -> None:
        await super()._register_agent()
        refs = await self.agent_image_references()
        if refs is not None:
            await self.run_db(image_db.report_agent_images, self.agent_id, refs)

    async def start(self):
        ip_port = await super().start()
        agent_id = self.image_agent()
        if agent_id and self.image:
            # The session runs from it: the agent has it (the only way a swarm node's images are known).
            await self.run_db(image_db.record_present, agent_id, self.image)
        return ip_port

    def check_image_placeable(self, db, image: m.Image, scaling_group: str) -> None:
        """With pulling off, refuse at once a session whose image no agent of its group has."""
        if not self.places_by_image():
            return
        ref = normalize_reference(image.reference)
        agents = [a.id for a in store.alive_agents(db, scaling_group) if a.schedulable]
        if any(ref in refs for refs in image_db.installed_on(db, agents).values()):
            return
        from .spawner import SessionRefused

        raise SessionRefused(
            f"the image {image.reference} is on no agent of resource group '{scaling_group}', and images are "
            "not pulled at spawn here (pull_policy 'never'); an administrator can install it (Administration → Images)"
        )

    async def pull_image(self, image: str) -> None:
        """dockerspawner's hook before the container (or service) is made: the pull policy at spawn."""
        await self.ensure_image(self.image_agent(), image)

    def image_agent(self) -> str:
        return self.agent_id

    async def ensure_image(self, agent_id: str, reference: str) -> None:
        policy = self.pull_policy
        if policy == "skip":
            return
        present = await self.image_present(agent_id, reference)
        if present and policy != "always":
            return
        if policy == "never":
            raise SpecError(
                f"the image {reference} is not on agent {agent_id}, and images are not pulled at spawn "
                "(pull_policy 'never')"
            )
        try:
            await self.run_db(image_db.pull_source, reference)
        except admin.AdminError as e:
            if present is None or self.engine_pulls_unknown_registries():
                return  # the agent may have it (loaded there), or pulls it itself: its engine finds out
            if present:
                return  # ``always`` cannot refresh an image that has no registry: use the one there
            raise SpecError(f"the image {reference} is not on agent {agent_id}, and {e}") from None
        assert pulls_when_missing(policy)
        pull = self.image_puller.pull(agent_id, reference)
        self._pull = pull
        await self.run_db(self._mark_pulling, f"pulling image {reference} onto agent {agent_id}")
        try:
            await asyncio.shield(pull.task)
        except PullError as e:
            raise SpecError(f"pulling the image {reference} onto agent {agent_id} failed: {e}") from None
        finally:
            self._pull = None
        await self.run_db(self._mark_pulled, f"pulled image {reference}; creating the container")

    _pull: Pull | None = None

    def _mark_pulling(self, db, reason: str) -> None:
        session = db.get(m.Session, self.session_id) if self.session_id else None
        if session is not None and session.status in (m.SessionStatus.PREPARING, m.SessionStatus.SCHEDULED):
            store.set_status(db, session, m.SessionStatus.PULLING, reason)

    def _mark_pulled(self, db, reason: str) -> None:
        session = db.get(m.Session, self.session_id) if self.session_id else None
        if session is not None and session.status == m.SessionStatus.PULLING:
            store.set_status(db, session, m.SessionStatus.CREATING, reason)

    def pull_progress_event(self) -> dict[str, Any] | None:
        """The pending page's event while the session's image is pulled (None when it is not)."""
        pull = self._pull
        if pull is None:
            return None
        return {"progress": 50 + int(0.4 * pull.progress.percent), "message": f"{pull.text()} (agent {pull.agent_id})"}


# --- Docker: the hub's engine ---------------------------------------------------------------------


def docker_pull(client, source: image_db.PullSource, progress: PullProgress) -> None:
    """Pull through one engine's API (blocking: run it on a thread), feeding ``progress``."""
    repo, tag = split_reference(source.reference)
    kwargs: dict[str, Any] = {"stream": True, "decode": True}
    if source.auth_config:
        kwargs["auth_config"] = source.auth_config
    # A digest goes with the repository (``repo@sha256:...``), a tag as the tag argument.
    events = client.pull(f"{repo}{tag}", **kwargs) if tag.startswith("@") else client.pull(repo, tag=tag, **kwargs)
    for event in events:
        progress.feed(event)
    if not progress.finished:
        raise PullError("the engine ended the pull without saying it finished")


class DockerImages(ImagesMixin):
    """The Docker backend: one engine, the hub's own."""

    async def image_present(self, agent_id: str, reference: str) -> bool | None:
        import docker.errors

        try:
            await self.docker("inspect_image", reference)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.NotFound:
            return False
        await self.run_db(image_db.record_present, agent_id, reference)
        return True

    async def pull_onto(self, agent_id: str, source: image_db.PullSource, pull: Pull) -> None:
        if agent_id != self.agent_id:
            raise PullError(f"this hub's engine is agent {self.agent_id}, not {agent_id}")
        await asyncio.to_thread(docker_pull, self.client, source, pull.progress)

    async def agent_image_references(self) -> list[str] | None:
        images = await self.docker("images")
        return sorted(engine_references(tag for image in images for tag in (image.get("RepoTags") or [])))


# --- Swarm: a one-task service per pull -------------------------------------------------------------


def pull_service_spec(reference: str, node_id: str, *, network: str = "host") -> dict[str, Any]:
    """``create_service`` arguments of a task that makes ``node_id``'s engine pull ``reference``.

    The task runs ``true`` as uid 1000 without capabilities and is never restarted: once its
    container exists the image is on the node, whatever the command does (an image without
    ``true`` fails to start, which still proves the pull).
    """
    from docker.types import ContainerSpec, Resources

    from .swarm_args import check_node_id, pinned_service

    check_node_id(node_id)
    container = ContainerSpec(reference, command=["true"], user="1000", cap_drop=["ALL"])
    return pinned_service(
        pull_object_name(node_id, reference, uuid.uuid4().hex[:6]), container, node_id, network, {LABEL_PULL: reference},
        resources=Resources(cpu_limit=100_000_000, mem_limit=64 * 1024**2),
    )  # fmt: skip


#: Task states on a node before its container exists (``preparing`` is the pull).
_BEFORE_CONTAINER = {"new", "allocated", "pending", "assigned", "accepted", "preparing"}


class SwarmImages(ImagesMixin):
    """The Swarm backend: the nodes' engines pull, driven by one-task services."""

    swarm_pull_timeout = Float(
        1800.0, config=True, help="Seconds a pull onto a swarm node may take before it is given up."
    )

    def image_agent(self) -> str:
        return self._node_id

    async def _engine_of(self, agent_id: str):
        """The node's own engine when the hub reaches it (the swarm backend's ``node_client``)."""
        try:
            return await self.node_client(agent_id)
        except Exception as e:  # unreachable now: fall back to what the manager can do
            log.warning("The engine of node %s did not answer: %s", agent_id, e)
            return None

    async def image_present(self, agent_id: str, reference: str) -> bool | None:
        client = await self._engine_of(agent_id)
        if client is not None:
            import docker.errors

            try:
                await asyncio.to_thread(client.inspect_image, reference)
            except docker.errors.NotFound:
                return False
            await self.run_db(image_db.record_present, agent_id, reference)
            return True
        # The manager cannot list a node's images: what this hub pulled or ran there is known.
        have = await self.run_db(image_db.installed_on, [agent_id])
        return True if normalize_reference(reference) in have.get(agent_id, ()) else None

    async def report_images(self) -> None:
        """Every node whose engine the hub reaches reports its images (as the Docker agent does)."""
        nodes = await self.run_db(
            lambda db: [
                a.id for a in db.query(m.Agent).filter_by(version=self.backend_name, status=m.AgentStatus.ALIVE)
            ]
        )
        for node_id in nodes:
            client = await self._engine_of(node_id)
            if client is None:
                continue
            try:
                images = await asyncio.to_thread(client.images)
            except Exception as e:
                log.warning("Listing the images of node %s: %s", node_id, e)
                continue
            refs = engine_references(tag for image in images for tag in (image.get("RepoTags") or []))
            await self.run_db(image_db.report_agent_images, node_id, refs)

    async def pull_onto(self, agent_id: str, source: image_db.PullSource, pull: Pull) -> None:
        client = await self._engine_of(agent_id)
        if client is not None:
            # The node's engine itself: its pull reports every layer's bytes.
            await asyncio.to_thread(docker_pull, client, source, pull.progress)
            return
        if source.auth_config:
            # create_service sends the credentials of the image's registry from the client's store.
            self.client._auth_configs.add_auth(source.registry, source.auth_config)
        kwargs = pull_service_spec(source.reference, agent_id, network=self.network_name)
        service = await self.docker("create_service", **kwargs)
        deadline = time.monotonic() + self.swarm_pull_timeout
        try:
            while True:
                tasks = await self.docker("tasks", filters={"service": service["ID"]})
                status = (tasks[0].get("Status") or {}) if tasks else {}
                state = (status.get("State") or "new").lower()
                err = status.get("Err") or ""
                elapsed = time.monotonic() - pull.started
                pull.note = f"pulling {source.reference} onto node {agent_id}: its engine is {state} ({elapsed:.0f} s)"
                if state not in _BEFORE_CONTAINER:
                    if err and image_missing(err):
                        raise PullError(err)
                    return  # the container was made (and ran, or failed on its command): the image is there
                if state == "preparing" and err and image_missing(err):
                    raise PullError(err)
                if time.monotonic() > deadline:
                    raise PullError(f"the node did not have the image within {self.swarm_pull_timeout:.0f} s ({state})")
                await asyncio.sleep(0.5)
        finally:
            try:
                await self.docker("remove_service", service["ID"])
            except Exception as e:  # gone already is fine
                log.debug("Removing the pull service %s: %s", kwargs["name"], e)
