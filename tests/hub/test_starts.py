"""Sessions' start transactions together (hub/starts.py), on SQLite and PostgreSQL, without a hub:
the calls waiting at once share one transaction and its look-ups, one that fails takes nobody
else's writes with it, and a start cancelled while its transaction runs waits for it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from sqlalchemy import event, select

from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as store
from jupyter_backendai.db.engine import Database
from jupyter_backendai.hub import starts

S = m.SessionStatus


def sessions(db, count: int) -> list:
    """``count`` sessions of two users, placed on one agent, and a carrier spawner for each."""
    store.register_agent(db, "a1", scaling_group="default", capacity=ResourceSlots(cpu=64, mem="64g"))
    users = [admin.create_user(db, f"u{i}@example.com", "S3cret!pw") for i in range(2)]
    rows = []
    for i in range(count):
        user, kp = users[i % 2]
        row = m.Session(
            name=f"s{i}", user_id=user.id, access_key=kp.access_key, domain_name="default",
            scaling_group="default", image="i", requested_slots=ResourceSlots(cpu=1, mem="1g"), agent_id="a1",
        )  # fmt: skip
        db.add(row)
        store.set_status(db, row, S.SCHEDULED, "placed")
        rows.append(row)
    db.commit()
    url = db.get_bind().url.render_as_string(hide_password=False)
    return [SimpleNamespace(db_url=url, database=Database(url), session_id=r.id) for r in rows]


def prepare(db, spawner, fail: bool = False) -> str:
    """What a start's first write does: read the session, its user and agent, mark it PREPARING."""
    session = db.get(m.Session, spawner.session_id)
    user = db.get(m.User, session.user_id)
    looked = starts.shared(db, ("folders", user.id), lambda: db.scalars(select(m.VFolder)).all())
    assert looked == [] and db.get(m.Agent, session.agent_id) is not None
    store.set_status(db, session, S.PREPARING, "preparing")
    if fail:
        raise RuntimeError(f"{session.name} cannot start")
    return session.name


def statuses(db, spawners) -> list:
    db.expire_all()
    return [db.get(m.Session, sp.session_id).status for sp in spawners]


def test_starts_share_one_transaction_and_their_look_ups(db):
    spawners = sessions(db, 30)
    database = spawners[0].database
    transactions, statements = [], []
    real = database.transaction
    database.transaction = lambda fn, *args: transactions.append(fn) or real(fn, *args)
    event.listen(database.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    async def main():
        return await asyncio.gather(*(starts.run_together(sp, prepare, sp) for sp in spawners))

    assert asyncio.run(main()) == [f"s{i}" for i in range(30)]
    assert len(transactions) == 1, "the starts waiting at once wrote in one transaction"
    # The rows got by key come from a few reads for the batch; the shared look-up ran once per user.
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) <= 8, reads
    assert sum("FROM vfolders" in s for s in reads) == 2
    assert statuses(db, spawners) == [S.PREPARING] * 30
    # Outside a batch, a shared look-up is made at every call.
    calls = []
    with database.factory() as s:
        for _ in range(2):
            starts.shared(s, "k", lambda: calls.append(1))
    assert len(calls) == 2
    database.dispose()


def test_a_failing_start_takes_nobody_elses_writes(db):
    spawners = sessions(db, 6)

    async def main():
        return await asyncio.gather(
            *(starts.run_together(sp, prepare, sp, i == 3) for i, sp in enumerate(spawners)),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert [r for i, r in enumerate(results) if i != 3] == ["s0", "s1", "s2", "s4", "s5"]
    assert isinstance(results[3], RuntimeError) and str(results[3]) == "s3 cannot start"
    # The failing one's own PREPARING was rolled back with it; every other start's is there.
    assert statuses(db, spawners) == [S.PREPARING] * 3 + [S.SCHEDULED] + [S.PREPARING] * 2
    spawners[0].database.dispose()


def test_a_cancelled_start_is_left_out_or_waits_for_its_transaction(db):
    spawners = sessions(db, 3)
    database = spawners[0].database
    real = database.transaction
    order = []

    def slow(fn, *args):
        order.append("transaction begins")
        import time

        time.sleep(0.5)  # long enough for the cancellation below to land while it runs
        result = real(fn, *args)
        order.append("transaction committed")
        return result

    database.transaction = slow

    async def main():
        first = asyncio.ensure_future(starts.run_together(spawners[0], prepare, spawners[0]))
        await asyncio.sleep(0.1)  # its batch (of one) runs now
        later = [asyncio.ensure_future(starts.run_together(sp, prepare, sp)) for sp in spawners[1:]]
        await asyncio.sleep(0)
        later[0].cancel()  # not begun: left out of the next batch
        first.cancel()  # begun: the caller sees the cancellation only after the commit
        with pytest.raises(asyncio.CancelledError):
            await first
        order.append("first start cancelled")
        with pytest.raises(asyncio.CancelledError):
            await later[0]
        return await later[1]

    assert asyncio.run(main()) == "s2"
    assert order[:3] == ["transaction begins", "transaction committed", "first start cancelled"]
    assert statuses(db, spawners) == [S.PREPARING, S.SCHEDULED, S.PREPARING]
    database.dispose()
