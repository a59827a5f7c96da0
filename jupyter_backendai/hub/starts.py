"""Sessions that start together write their starts together: one transaction, in arrival order.

A session's start writes twice: PREPARING with what its spec reads (the spawner's ``_prepare``),
then RUNNING (``_mark_running``). A thousand sessions starting at once made two thousand
transactions of a dozen statements each, every one reading again the same users, keypairs,
policies and agents, on the hub's worker threads while its event loop created the pods: the
start transactions, not the cluster, set the pace.

Here the start transactions waiting in one hub process are taken together (up to
:data:`BATCH`), in the order they were asked for, and run one after the other in one
transaction on a thread of their own:

* the rows they look up by key (their sessions, the sessions' agents, keypairs and policies,
  users and SSH keys) are read once for the batch (:func:`_preload`);
* a look-up that several of them repeat (a user's account and main keypair, the folders a user
  mounts) is shared by the transaction (:func:`shared`).

Each call does what it does in a transaction of its own. Their writes are flushed together at
the commit, not before each query of the next call: on SQLite the database's write lock is then
held for the commit only, not while the whole batch runs, so admission and the scheduler's pass
do not wait behind it. A call's queries therefore do not see rows that earlier calls of the batch
changed (the rows it gets by key it does see): the start transactions query only rows they do
not write. Should any call raise, or the commit fail, the whole transaction is rolled back and
each call runs again in a transaction of its own: each gets its own answer, and one failing
start takes nobody else's writes with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import select

from ..db import models as m

if TYPE_CHECKING:
    from .spawner import SessionSpawnerMixin

log = logging.getLogger("jupyter_backendai.starts")

T = TypeVar("T")

#: Most start transactions in one: on SQLite it holds the database's write lock for its length.
BATCH = 100

#: Where a batch keeps what its calls share, in the transaction's ``Session.info``.
_SHARED = "jupyter_backendai.starts.shared"
#: The batch's preloaded rows: the identity map keeps a row only while something refers to it.
_KEPT = "jupyter_backendai.starts.kept"


def shared(db, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, once per batch for ``key``; outside a batch, at every call."""
    memo = db.info.get(_SHARED)
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


@dataclass(eq=False)
class _Call:
    spawner: SessionSpawnerMixin
    fn: Callable[..., Any]
    args: tuple
    future: asyncio.Future
    started: bool = False


@dataclass
class _Queue:
    waiting: list[_Call] = field(default_factory=list)
    task: asyncio.Task | None = None


# One queue per event loop (the hub has one; tests may run several in turn).
_QUEUES: WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = WeakKeyDictionary()

#: The starts' own thread: on the shared worker threads they waited behind every other session's
#: database work (and those behind them), and ran in parallel only to contend for the same locks.
_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="starts")


async def run_together(spawner: SessionSpawnerMixin, fn: Callable[..., T], *args: Any) -> T:
    """``fn(db, *args)`` in a transaction with the other start transactions waiting now."""
    loop = asyncio.get_running_loop()
    queue = _QUEUES.get(loop)
    if queue is None:
        queue = _QUEUES[loop] = _Queue()
    call = _Call(spawner, fn, args, loop.create_future())
    queue.waiting.append(call)
    if queue.task is None or queue.task.done():
        queue.task = asyncio.ensure_future(_run(queue))
    try:
        return await asyncio.shield(call.future)
    except asyncio.CancelledError:
        if call.started:
            # Its transaction runs: what the cancelled start writes next (ERROR) must come after it.
            with contextlib.suppress(BaseException):
                await call.future
        else:
            call.future.cancel()  # not begun: left out of its batch
        raise


async def _run(queue: _Queue) -> None:
    loop = asyncio.get_running_loop()
    while queue.waiting:
        first = queue.waiting[0]
        url = first.spawner.db_url
        batch = [c for c in queue.waiting if c.spawner.db_url == url][:BATCH]
        taken = {id(c) for c in batch}
        queue.waiting = [c for c in queue.waiting if id(c) not in taken]
        batch = [c for c in batch if not c.future.done()]
        if not batch:
            continue
        for call in batch:
            call.started = True
        try:
            results = await loop.run_in_executor(_THREAD, _transactions, first.spawner.database, batch)
        except BaseException as e:  # not the calls' own errors (those are in results): nobody may wait forever
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(e if isinstance(e, Exception) else RuntimeError(repr(e)))
            if isinstance(e, asyncio.CancelledError):
                raise
            continue
        for call, (ok, value) in zip(batch, results, strict=True):
            if call.future.done():
                continue
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)


def _transactions(database, batch: list[_Call]) -> list[tuple[bool, Any]]:
    """(True, result) or (False, exception) per call: all in one transaction, else one by one."""
    if len(batch) > 1:
        try:
            return [(True, r) for r in database.transaction(_together, batch)]
        except Exception as e:
            log.info("%d session starts together failed (%s); writing them one by one", len(batch), e)
    results: list[tuple[bool, Any]] = []
    for call in batch:
        try:
            results.append((True, database.transaction(call.fn, *call.args)))
        except Exception as e:  # handed to the start that asked
            results.append((False, e))
    return results


def _together(db, batch: list[_Call]) -> list[Any]:
    db.info[_SHARED] = {}
    try:
        _preload(db, batch)
        with db.no_autoflush:
            return [call.fn(db, *call.args) for call in batch]
    finally:
        db.info.pop(_SHARED, None)


def _preload(db, batch: list[_Call]) -> None:
    """Read the rows the calls get by key in a few queries, so that their ``db.get`` finds them."""
    ids = [c.spawner.session_id for c in batch if c.spawner.session_id is not None]
    kept: list[Any] = []
    sessions = db.scalars(select(m.Session).where(m.Session.id.in_(ids))).all() if ids else []
    kept += sessions
    agents = {s.agent_id for s in sessions if s.agent_id}
    if agents:
        kept += db.scalars(select(m.Agent).where(m.Agent.id.in_(agents))).all()
    keys = {s.access_key for s in sessions}
    if keys:
        keypairs = db.scalars(select(m.KeyPair).where(m.KeyPair.access_key.in_(keys))).all()
        kept += keypairs
        policies = {k.resource_policy for k in keypairs}
        kept += db.scalars(select(m.KeyPairResourcePolicy).where(m.KeyPairResourcePolicy.name.in_(policies))).all()
    users = {s.user_id for s in sessions}
    if users:
        kept += db.scalars(select(m.User).where(m.User.id.in_(users))).all()
        kept += db.scalars(select(m.SSHKeyPair).where(m.SSHKeyPair.user_id.in_(users))).all()
    db.info[_KEPT] = kept
