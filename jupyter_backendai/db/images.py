"""Images on agents (``agent_images``): what each agent has, what is being pulled where.

The one place that reads and writes those rows. Backends report an agent's images at its
heartbeat (:func:`report_agent_images`) and the state of each pull (:func:`set_install`); the
manager queues installs (:func:`queue_install`) and shows them (:func:`installs_by_reference`);
the scheduler asks which agents hold an image (:func:`installed_on`).

Only images the database knows (rows of ``images``, added by a rescan, ``image add`` or the
bootstrap) are tracked on agents: an engine's other images are not the product's business.
An image is ``installed`` (offered in the spawn form) once any agent has it, or when an
administrator marked it so; an agent losing it does not withdraw the offer, since a spawn
pulls what its agent lacks (unless pulling is off, when the scheduler only places sessions on
agents that have their image).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ..core.images import FAILED, INSTALLED, PULLING, QUEUED, normalize_reference
from . import models as m
from .admin import AdminError, Conflict, NotFound, parse_image_ref
from .types import utcnow

__all__ = [
    "PULLING_BACKENDS",
    "PullSource",
    "agents_view",
    "install_targets",
    "installed_on",
    "interrupted_pulls",
    "installs_by_reference",
    "known_references",
    "pull_source",
    "queue_install",
    "queued_installs",
    "report_agent_images",
    "set_install",
]


def reference_of(image: m.Image) -> str:
    return normalize_reference(image.reference)


def known_references(db: DB) -> dict[str, list[m.Image]]:
    """Normalized reference → the image rows (one per architecture) of every known image."""
    out: dict[str, list[m.Image]] = {}
    for image in db.scalars(select(m.Image)):
        out.setdefault(reference_of(image), []).append(image)
    return out


def _mark_installed(known: dict[str, list[m.Image]], ref: str) -> None:
    for image in known.get(ref, ()):
        if not image.installed:
            image.installed = True


def report_agent_images(
    db: DB, agent_id: str, present: Iterable[str], *, complete: bool = True, known: dict | None = None
) -> None:
    """An agent's heartbeat: the (normalized) references of every image it has.

    Known images it has become ``installed`` there (a queued or failed install of one is
    settled); ``installed`` rows of images it no longer has are dropped, unless the list is not
    ``complete`` (a kubelet lists only a node's largest images). A pull in progress is left to
    its puller. ``known``: :func:`known_references`, when read once for many agents.
    """
    known = known_references(db) if known is None else known
    have = {normalize_reference(r) for r in present} & set(known)
    rows = {r.reference: r for r in db.scalars(select(m.AgentImage).where(m.AgentImage.agent_id == agent_id))}
    now = utcnow()
    for ref in have:
        row = rows.get(ref)
        if row is None:
            db.add(m.AgentImage(agent_id=agent_id, reference=ref, status=INSTALLED, message="", updated_at=now))
        elif row.status in (QUEUED, FAILED):
            row.status, row.message, row.updated_at = INSTALLED, "", now
            row.progress_current = row.progress_total = None
        _mark_installed(known, ref)
    for ref, row in rows.items():
        if complete and row.status == INSTALLED and ref not in have:
            db.delete(row)
    db.flush()


def record_present(db: DB, agent_id: str, reference: str) -> None:
    """One image seen on one agent (a session's image found, or a pull that finished)."""
    set_install(db, agent_id, reference, INSTALLED)


def set_install(
    db: DB,
    agent_id: str,
    reference: str,
    status: str,
    *,
    current: int | None = None,
    total: int | None = None,
    message: str = "",
) -> None:
    """The state of an image on an agent (``pulling`` with bytes, ``installed``, ``failed`` with why)."""
    ref = normalize_reference(reference)
    if db.get(m.Agent, agent_id) is None:
        return
    row = db.get(m.AgentImage, (agent_id, ref))
    if row is None:
        row = m.AgentImage(agent_id=agent_id, reference=ref)
        db.add(row)
    row.status = status
    row.progress_current, row.progress_total = current, total
    row.message = message[:2000]
    row.updated_at = utcnow()
    if status == INSTALLED:
        _mark_installed(known_references(db), ref)
    db.flush()


def queue_install(db: DB, image: m.Image, agents: Iterable[m.Agent]) -> tuple[list[str], list[str]]:
    """Ask these agents to pull the image; returns (queued, already installed or pulling there).

    A failed install is queued again.
    """
    ref = reference_of(image)
    queued, already = [], []
    now = utcnow()
    for agent in agents:
        row = db.get(m.AgentImage, (agent.id, ref))
        if row is not None and row.status in (INSTALLED, PULLING, QUEUED):
            already.append(agent.id)
            continue
        if row is None:
            row = m.AgentImage(agent_id=agent.id, reference=ref)
            db.add(row)
        row.status, row.message, row.updated_at = QUEUED, "", now
        row.progress_current = row.progress_total = None
        queued.append(agent.id)
    db.flush()
    return queued, already


def queued_installs(db: DB, backend: str) -> list[tuple[str, str]]:
    """(agent, reference) of the installs waiting on the alive agents of one backend, oldest first."""
    rows = db.execute(
        select(m.AgentImage.agent_id, m.AgentImage.reference)
        .join(m.Agent, m.Agent.id == m.AgentImage.agent_id)
        .where(
            m.AgentImage.status == QUEUED,
            m.Agent.status == m.AgentStatus.ALIVE,
            m.Agent.version == backend,
        )
        .order_by(m.AgentImage.updated_at)
    )
    return [(a, r) for a, r in rows]


def installed_on(db: DB, agent_ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """Per agent, the references it has (installed rows)."""
    ids = list(agent_ids)
    out: dict[str, set[str]] = {a: set() for a in ids}
    if ids:
        rows = db.execute(
            select(m.AgentImage.agent_id, m.AgentImage.reference).where(
                m.AgentImage.agent_id.in_(ids), m.AgentImage.status == INSTALLED
            )
        )
        for agent_id, ref in rows:
            out[agent_id].add(ref)
    return {a: frozenset(refs) for a, refs in out.items()}


def installs_by_reference(db: DB, refs: Iterable[str] | None = None) -> dict[str, list[m.AgentImage]]:
    """Normalized reference → its rows on agents (every reference when ``refs`` is None)."""
    query = select(m.AgentImage).order_by(m.AgentImage.agent_id)
    if refs is not None:
        wanted = sorted({normalize_reference(r) for r in refs})
        if not wanted:
            return {}
        query = query.where(m.AgentImage.reference.in_(wanted))
    out: dict[str, list[m.AgentImage]] = {}
    for row in db.scalars(query):
        out.setdefault(row.reference, []).append(row)
    return out


def interrupted_pulls(db: DB, backend: str, keep: set[tuple[str, str]] = frozenset()) -> None:
    """Pulls an earlier hub process left ``pulling`` on its agents: failed, with why (queued
    ones stay queued and run again)."""
    agents = select(m.Agent.id).where(m.Agent.version == backend)
    now = utcnow()
    for row in db.scalars(
        select(m.AgentImage).where(m.AgentImage.status == PULLING, m.AgentImage.agent_id.in_(agents))
    ):
        if (row.agent_id, row.reference) in keep:
            continue  # pulling in this process
        row.status, row.updated_at = FAILED, now
        row.message = "the pull was interrupted (the hub stopped); install it again"
    db.flush()


#: Backends whose hub pulls images onto their agents (hub/images.py); installs go only there.
PULLING_BACKENDS = ("docker", "swarm", "kubernetes")


def install_targets(
    db: DB, *, scaling_group: str | None = None, agent_ids: Iterable[str] | None = None
) -> list[m.Agent]:
    """The alive agents an install goes to: those named, or those of a resource group, or all.

    Agents of backends whose hub does not pull (:data:`PULLING_BACKENDS`) are left out; naming
    one is an error.
    """
    query = select(m.Agent).where(m.Agent.status == m.AgentStatus.ALIVE).order_by(m.Agent.id)
    if scaling_group is not None:
        if db.get(m.ScalingGroup, scaling_group) is None:
            raise NotFound(f"no resource group {scaling_group!r}")
        query = query.where(m.Agent.scaling_group == scaling_group)
    agents = list(db.scalars(query))
    if agent_ids is not None:
        wanted = list(dict.fromkeys(agent_ids))
        by_id = {a.id: a for a in agents}
        for agent_id in wanted:
            if agent_id not in by_id:
                row = db.get(m.Agent, agent_id)
                if row is None:
                    raise NotFound(f"no agent {agent_id!r}")
                if row.status != m.AgentStatus.ALIVE:
                    raise AdminError(f"agent {agent_id!r} is {row.status.value}, not alive")
                raise AdminError(
                    f"agent {agent_id!r} is in resource group {row.scaling_group!r}, not {scaling_group!r}"
                )
            version = by_id[agent_id].version
            if version == "local":
                raise AdminError(f"agent {agent_id!r} runs sessions as local processes: it has no images")
            if version not in PULLING_BACKENDS:
                raise AdminError(f"agent {agent_id!r} is of the {version!r} backend, which does not install images")
        agents = [by_id[a] for a in wanted]
    agents = [a for a in agents if a.version in PULLING_BACKENDS]
    if not agents:
        where = f" in resource group {scaling_group!r}" if scaling_group else ""
        raise Conflict(f"no alive agent{where} runs images (Docker, Swarm or Kubernetes backends) to install onto")
    return agents


def agents_view(rows: Iterable[m.AgentImage]) -> dict[str, object]:
    """An image's ``installed_agents`` (Backend.AI's field) and ``installs`` (each agent's state)."""
    rows = list(rows)
    return {
        "installed_agents": [r.agent_id for r in rows if r.status == INSTALLED],
        "installs": [
            {
                "agent": r.agent_id,
                "status": r.status,
                "progress": {"current": r.progress_current, "total": r.progress_total} if r.progress_total else None,
                "message": r.message,
                "updated_at": r.updated_at.isoformat() if r.updated_at else None,
            }
            for r in rows
        ],
    }


@dataclass(frozen=True)
class PullSource:
    """Where an image is pulled from: its registry's row, with the credentials to send."""

    reference: str
    registry: str
    username: str | None = None
    password: str | None = None

    @property
    def auth_config(self) -> dict[str, str] | None:
        if not self.username:
            return None
        return {"username": self.username, "password": self.password or "", "serveraddress": self.registry}


def pull_source(db: DB, reference: str) -> PullSource:
    """The registry an image is pulled from; an :class:`AdminError` says why it cannot be pulled.

    Only registries an administrator added are pulled from: an image of the ``local``
    registry (built or loaded on the agents) or of an unknown registry is not.
    """
    try:
        host, _name, _tag = parse_image_ref(reference)
    except AdminError:
        raise
    if host == "local":
        raise AdminError(
            f"the image {reference!r} names no registry to pull it from (it must be loaded onto the agents)"
        )
    registry = db.scalar(select(m.ContainerRegistry).where(m.ContainerRegistry.hostname == host))
    if registry is None:
        raise AdminError(f"the image {reference!r} is from the registry {host!r}, which is not among the registries")
    return PullSource(reference, host, registry.username, registry.password)
