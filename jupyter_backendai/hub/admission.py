"""Launches that arrive together are admitted together: one transaction, in arrival order.

A launch is checked against the launch rules (:func:`..db.launch.plan_launch`), then decided by
:func:`..core.admission.admit` under its domain's admission lock, against what its keypair,
group, domain and resource group hold. Admitted one transaction at a time, a thousand launches
at once (a class starting) read all of that a thousand times, the resource group's agents
among it, while each held the lock: admission, not the cluster, set the pace.

Here the launches waiting for admission in one hub process are taken together (up to
:data:`BATCH`), in the order they arrived, and in one transaction:

* the launch rules are read once per user and request (a user's identical launches share them);
* the domains are locked once each, in name order (two hubs never wait on each other in turn);
* what keypairs, groups, domains and resource groups hold is read once, and every admitted
  session adds its total before the next launch is decided: the decisions are exactly those
  of admitting the launches one by one in that order, and the caps hold as they did.

A refusal answers only its own launch. Should the transaction itself fail (a database error),
the batch's launches are admitted again one per transaction, so that each gets its own answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import uuid
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.admission import AdmissionRequest, Decision, ResourceGroupState, admit
from ..core.policy import Cap
from ..core.slots import ResourceSlots
from ..db import launch
from ..db import models as m
from ..db import sessions as store
from .spawner import Admitted, SessionRefused
from .spec import SpecError

if TYPE_CHECKING:
    from ..db.launch import LaunchPlan
    from .spawner import SessionRequest, SessionSpawnerMixin

log = logging.getLogger("jupyter_backendai.admission")

#: Most launches admitted in one transaction: it holds the domains' locks (on SQLite the
#: database's write lock) for its length, and the first sessions of a large burst are queued,
#: and placed, sooner than if the whole burst waited for one commit.
BATCH = 100


@dataclass(eq=False)
class Launch:
    spawner: SessionSpawnerMixin
    request: SessionRequest
    name: str
    future: asyncio.Future | None = None


@dataclass
class _Holdings:
    """What the batch's keypairs, groups, domains and resource groups hold (read once, kept current)."""

    db: Any
    keypairs: dict[str, list[Any]] = field(default_factory=dict)  # access key -> [using, running, pending]
    groups: dict[uuid.UUID, ResourceSlots] = field(default_factory=dict)
    domains: dict[str, tuple[m.Domain, ResourceSlots]] = field(default_factory=dict)
    resource_groups: dict[str, ResourceGroupState] = field(default_factory=dict)

    def request(self, plan: LaunchPlan) -> AdmissionRequest:
        db, keypair, group = self.db, plan.keypair, plan.group
        held = self.keypairs.get(keypair.access_key)
        if held is None:
            running, pending = store.session_counts(db, keypair.access_key)
            held = self.keypairs[keypair.access_key] = [
                store.reserved(db, access_key=keypair.access_key),
                running,
                pending,
            ]
        if group is not None and group.id not in self.groups:
            self.groups[group.id] = store.reserved(db, group_id=group.id)
        # Held here: the session's identity map keeps rows only while something refers to them.
        if plan.user.domain_name not in self.domains:
            name = plan.user.domain_name
            self.domains[name] = (db.get(m.Domain, name), store.reserved(db, domain_name=name))
        domain, domain_using = self.domains[plan.user.domain_name]
        if plan.scaling_group not in self.resource_groups:
            self.resource_groups[plan.scaling_group] = store.resource_group_state(db, plan.scaling_group)
        return AdmissionRequest(
            policy=store.policy_of(keypair.policy),
            requested=plan.slots,
            image_min=plan.image.min_slots,
            keypair_using=held[0],
            running_sessions=held[1],
            pending_sessions=held[2],
            group=Cap("group", group.name, group.total_resource_slots) if group is not None else None,
            group_using=self.groups[group.id] if group is not None else ResourceSlots(),
            domain=Cap("domain", domain.name, domain.total_resource_slots),
            domain_using=domain_using,
            resource_group=self.resource_groups[plan.scaling_group],
        )

    def add(self, plan: LaunchPlan, decision: Decision) -> None:
        """A session queued: it reserves its total (as store.reserved counts a PENDING session)."""
        held = self.keypairs[plan.keypair.access_key]
        held[0] = held[0] + decision.total
        held[2] += 1
        if plan.group is not None:
            self.groups[plan.group.id] = self.groups[plan.group.id] + decision.total
        domain, using = self.domains[plan.user.domain_name]
        self.domains[plan.user.domain_name] = (domain, using + decision.total)


def admit_together(db, launches: list[Launch]) -> list[Admitted | SessionRefused]:
    """Admit ``launches`` in order in ``db``'s transaction (the caller commits); a refusal per launch refused."""
    results: list[Admitted | SessionRefused | None] = [None] * len(launches)
    plans: dict[tuple, Any] = {}
    planned: list[tuple[int, LaunchPlan]] = []
    for i, item in enumerate(launches):
        sp = item.spawner
        key = (type(sp), sp.user.name, sp.default_scaling_group, repr(item.request))
        if key not in plans:
            try:
                plans[key] = sp._plan(db, item.request)
            except SessionRefused as e:
                plans[key] = e
            except SpecError as e:
                plans[key] = SessionRefused(str(e))
        if isinstance(plans[key], SessionRefused):
            results[i] = plans[key]
        else:
            planned.append((i, plans[key]))
    # From here to the commit of the new rows, no other launch in these domains reads what
    # their sessions hold: the limits hold however many launches come at once.
    for domain in sorted({plan.user.domain_name for _, plan in planned}):
        launch.lock_admission(db, domain)
    holdings = _Holdings(db)
    for i, plan in planned:
        decision = admit(holdings.request(plan))
        if decision.refused:
            results[i] = SessionRefused(decision.reason or "refused", 403)
            continue
        results[i] = _queue(db, launches[i], plan, decision)
        holdings.add(plan, decision)
    return results  # type: ignore[return-value]


def _queue(db, item: Launch, plan: LaunchPlan, decision: Decision) -> Admitted:
    user, keypair, group, image = plan.user, plan.keypair, plan.group, plan.image
    session = m.Session(
        id=store.new_session_id(),
        name=item.name,
        user_id=user.id,
        access_key=keypair.access_key,
        domain_name=user.domain_name,
        group_id=group.id if group else None,
        scaling_group=plan.scaling_group,
        image=image.reference,
        requested_slots=decision.total,
        resource_opts={"shmem": plan.shmem} if plan.shmem else {},
        mounts=[{"folder": a.folder.name, "id": str(a.folder.id), "permission": a.permission} for a in plan.folders],
        service_ports=list(image.service_ports or []),
        server_name=item.spawner.name or "",
    )
    db.add(session)
    note = decision.note
    store.set_status(db, session, m.SessionStatus.PENDING, note or f"queued in resource group '{plan.scaling_group}'")
    keypair.last_used = session.created_at
    return Admitted(session.id, plan.scaling_group, note)


# --- the hub's event loop -------------------------------------------------------------------------


@dataclass
class _Queue:
    waiting: list[Launch] = field(default_factory=list)
    task: asyncio.Task | None = None


# One queue per event loop (the hub has one; tests may run several in turn).
_QUEUES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = weakref.WeakKeyDictionary()


async def admit_launch(spawner: SessionSpawnerMixin, request: SessionRequest, name: str) -> Admitted:
    """Admit one launch with the others waiting; :class:`SessionRefused` says why not."""
    loop = asyncio.get_running_loop()
    queue = _QUEUES.get(loop)
    if queue is None:
        queue = _QUEUES[loop] = _Queue()
    item = Launch(spawner, request, name, loop.create_future())
    queue.waiting.append(item)
    if queue.task is None or queue.task.done():
        queue.task = asyncio.ensure_future(_run(queue))
    return await item.future


#: Admission's own thread. On the shared worker threads a batch waited behind the database work
#: of every session already admitted (a thousand starts): the queue's head must not wait for its tail.
_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="admission")


async def _transaction(spawner: SessionSpawnerMixin, fn, *args):
    return await asyncio.get_running_loop().run_in_executor(_THREAD, spawner.database.transaction, fn, *args)


async def _run(queue: _Queue) -> None:
    # The waiting launches take no database thread: one batch at a time runs on admission's own.
    while queue.waiting:
        first = queue.waiting[0]
        batch = [w for w in queue.waiting if w.spawner.db_url == first.spawner.db_url][:BATCH]
        taken = {id(w) for w in batch}
        queue.waiting = [w for w in queue.waiting if id(w) not in taken]
        batch = [w for w in batch if not w.future.done()]  # spawns cancelled while they waited
        if not batch:
            continue
        try:
            results = await _transaction(first.spawner, admit_together, batch)
        except Exception as e:
            if len(batch) == 1:
                results = [e]
            else:
                log.warning("Admitting %d launches together failed (%s); admitting them one by one", len(batch), e)
                results = []
                for item in batch:
                    try:
                        results += await _transaction(item.spawner, admit_together, [item])
                    except Exception as one:
                        results.append(one)
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                if isinstance(result, Admitted):  # its spawn was cancelled meanwhile: nobody waits
                    await item.spawner.database.run(_cancel, result.session_id)
            elif isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)


def _cancel(db, session_id: uuid.UUID) -> None:
    session = db.get(m.Session, session_id)
    if session is not None and session.status == m.SessionStatus.PENDING:
        store.set_status(db, session, m.SessionStatus.CANCELLED, "the spawn was cancelled while it was admitted")
