"""Limits at launch through a real hub: group and domain caps under concurrent launches (on
SQLite and PostgreSQL), and the spawn form's presets that fit them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import time
from types import SimpleNamespace

import pytest

from jupyter_backendai.db import admin, launch
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as store
from testing.db import postgres_database
from testing.sessions import PASSWORD, ProductDB, hub_config, spawn, stop, wait_status

S = m.SessionStatus
IMAGE = "python-local:3"
LAUNCHES = 20


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_pdb(request, tmp_path):
    """The product's database on each kind (set up before the hub, so dropped after it stops)."""
    if request.param == "sqlite":
        pdb = ProductDB(tmp_path)
        yield pdb
        pdb.close()
        return
    with postgres_database() as url:
        pdb = ProductDB(tmp_path, url=url)
        yield pdb
        pdb.close()


def local_hub(make_hub, pdb, capacity='{"cpu": 5, "mem": "4g"}', extra=""):
    return make_hub(hub_config(pdb, "backendai-local", f"c.LocalSessionSpawner.agent_capacity = {capacity}\n{extra}"))


def launch_at_once(hub, pdb, launches, expect_admitted, timeout=120):
    """Start ``launches`` ((user, server) pairs) at the same moment; return the refusals once
    every launch is accounted for: refused (its answer came back 4xx) or admitted (it has a
    session row). Admitted launches may still be waiting for an agent; their answers are not
    awaited."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(launches))
    futures = {pool.submit(spawn, hub, u, n, image=IMAGE, preset="one"): (u, n) for u, n in launches}
    deadline = time.monotonic() + timeout
    while True:
        refused = [f.result() for f in futures if f.done() and f.result().status_code >= 400]
        with pdb() as db:
            rows = db.query(m.Session).filter(m.Session.server_name.in_({n for _, n in launches})).count()
        if len(refused) + rows >= len(launches) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    pool.shutdown(wait=False)
    assert rows == expect_admitted, f"{rows} admitted, {len(refused)} refused\n{hub.log_tail(40)}"
    assert len(refused) == len(launches) - expect_admitted, [r.text[:200] for r in refused]
    return refused


def holding(pdb):
    with pdb() as db:
        return db.query(m.Session).filter(m.Session.status.in_(store.RESERVING)).all()


@pytest.mark.parametrize("locked", [True, False])
def test_the_admission_lock_serializes_read_then_write_per_domain(any_pdb, locked):
    """The database half of the rule, without a hub: a hub admits the launches that arrive
    together in one transaction itself (hub/admission.py), so this is what keeps the caps when
    several processes (hubs, or a hub and the CLI) admit into one domain. Each transaction reads a counter kept on the domain, waits, and writes it
    back plus one; without the lock they read the same value and updates are lost."""
    pdb = any_pdb
    pdb.setup(lambda db: setattr(db.get(m.Domain, admin.DEFAULT), "description", "0"))
    start = threading.Barrier(LAUNCHES)

    def admit_one():
        start.wait(timeout=30)
        with pdb() as db:
            if locked:
                launch.lock_admission(db, admin.DEFAULT)
            domain = db.get(m.Domain, admin.DEFAULT)
            seen = int(domain.description)
            time.sleep(0.05)
            domain.description = str(seen + 1)
            db.commit()

    with concurrent.futures.ThreadPoolExecutor(max_workers=LAUNCHES) as pool:
        failures = [f.exception() for f in [pool.submit(admit_one) for _ in range(LAUNCHES)]]
    count = int(pdb.setup(lambda db: db.get(m.Domain, admin.DEFAULT).description))
    if locked:
        assert failures == [None] * LAUNCHES
        assert count == LAUNCHES
    else:  # the test can fail: unserialized, the increments overwrite one another (or SQLite refuses)
        assert count < LAUNCHES or any(failures)


def test_launches_admitted_together_get_the_answers_of_one_by_one(any_pdb, monkeypatch):
    """Launches arriving at once are admitted in one transaction (hub/admission.py), in their
    order, each one counted before the next is decided: the domain's cap and a policy's session
    count hold within the batch, and a refusal answers only its own launch."""
    from jupyter_backendai.hub import admission
    from jupyter_backendai.hub.local import LocalSessionSpawner
    from jupyter_backendai.hub.spawner import Admitted, SessionRefused, SessionRequest

    pdb = any_pdb

    def setup(db):
        admin.create_preset(db, "one", {"cpu": 1, "mem": "256m"})
        admin.upsert_image(db, IMAGE, installed=True)
        admin.create_policy(db, "single", max_concurrent_sessions=1)
        store.register_agent(
            db, "agent-1", scaling_group=admin.DEFAULT, capacity=admin.parse_slots({"cpu": 8, "mem": "8g"})
        )
        db.get(m.Domain, admin.DEFAULT).total_resource_slots = admin.parse_slots({"cpu": 5})

    pdb.setup(setup)
    users = ["u0", "u1", "u2", "u3"]
    for user in users:
        pdb.user(f"{user}@example.com", policy="single" if user == "u3" else "default", groups=[admin.DEFAULT])
    transactions = []
    real = admission.admit_together  # called once per transaction, with the launches it admits
    monkeypatch.setattr(
        admission, "admit_together", lambda db, batch: transactions.append(len(batch)) or real(db, batch)
    )

    def launch_one(user, name, preset="one"):
        spawner = LocalSessionSpawner(
            user=SimpleNamespace(name=user),
            orm_spawner=SimpleNamespace(name=name, server=None),
            db_url=pdb.url,
            backend_reason="",
        )
        return admission.admit_launch(spawner, SessionRequest(image=IMAGE, preset=preset), name)

    async def at_once():
        launches = [launch_one("u0", "bad", preset="nope")]
        launches += [launch_one(u, f"s{n}") for n in range(3) for u in users]
        return await asyncio.gather(*launches, return_exceptions=True)

    results = asyncio.run(at_once())
    assert transactions == [13]
    answers = [("ok" if isinstance(r, Admitted) else r.reason) for r in results]
    domain_cap = "cpu 1 exceeds the domain 'default' limit of 5 (5 in use)"
    single = "max concurrent sessions 1 reached for keypair policy 'single'"
    assert answers == [
        "unknown resource preset 'nope'",
        *["ok"] * 5,  # s0 of each, s1 of u0: the domain's five CPUs
        domain_cap,
        domain_cap,
        single,  # u3's policy is checked before the domain's cap
        domain_cap,
        domain_cap,
        domain_cap,
        single,
    ], answers
    assert all(isinstance(r, (Admitted, SessionRefused)) for r in results)
    assert [r.status_code for r in results if isinstance(r, SessionRefused)] == [400] + [403] * 7
    with pdb() as db:
        assert store.reserved(db, domain_name=admin.DEFAULT)["cpu"] == 5
        rows = db.query(m.Session).filter(m.Session.status == S.PENDING).all()
        assert sorted((db.get(m.User, r.user_id).username, r.server_name) for r in rows) == [
            ("u0", "s0"),
            ("u0", "s1"),
            ("u1", "s0"),
            ("u2", "s0"),
            ("u3", "s0"),
        ]
        assert all([h.status for h in r.history] == [S.PENDING] for r in rows)


@pytest.mark.parametrize("capped", ["domain", "group"])
def test_twenty_launches_at_once_against_a_cap_of_five(any_pdb, make_hub, capped):
    pdb = any_pdb
    users = [f"u{i}" for i in range(4)]

    def setup(db):
        admin.create_preset(db, "one", {"cpu": 1, "mem": "256m"})
        admin.upsert_image(db, IMAGE, installed=True)
        cap = {"cpu": 5}  # five sessions of the preset
        if capped == "domain":
            db.get(m.Domain, admin.DEFAULT).total_resource_slots = admin.parse_slots(cap)
        else:
            admin.get_group(db, admin.DEFAULT).total_resource_slots = admin.parse_slots(cap)

    pdb.setup(setup)
    for user in users:
        pdb.user(f"{user}@example.com", groups=[admin.DEFAULT])
    # One session runs at a time on the agent; the others admitted wait in its queue (the
    # caps count them: they are promised their slots). The spawn API holds an answer up to
    # 45 s, so that a refusal comes back as the answer, whatever the admissions queued behind
    # the domain's lock take on a busy machine.
    hub = local_hub(
        make_hub,
        pdb,
        capacity='{"cpu": 1, "mem": "4g"}',
        extra='c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 45}',
    )
    for user in users:
        assert hub.api("POST", f"/users/{user}").status_code in (201, 409)

    names = [f"s{i}" for i in range(LAUNCHES // len(users))]
    refused = launch_at_once(hub, pdb, [(u, n) for n in names for u in users], expect_admitted=5)
    assert all(f"exceeds the {capped} '{admin.DEFAULT}' limit" in r.text for r in refused), refused[0].text
    assert {r.status_code for r in refused} == {403}
    with pdb() as db:
        assert store.reserved(db, domain_name=admin.DEFAULT)["cpu"] == 5

    # Ending one (running or queued) makes room for exactly one more.
    ended = holding(pdb)[0]
    owner = pdb.setup(lambda db: db.get(m.User, ended.user_id).username)
    stop(hub, owner, ended.server_name)
    deadline = time.monotonic() + 60
    while len(holding(pdb)) != 4:
        assert time.monotonic() < deadline, f"{ended.server_name} of {owner} still holds its slots"
        time.sleep(0.3)
    launch_at_once(hub, pdb, [(u, "again") for u in users], expect_admitted=1)
    assert len(holding(pdb)) == 5
    for u in users:
        for n in [*names, "again"]:
            stop(hub, u, n)


def test_spawn_form_offers_the_presets_that_fit_the_project_and_the_domain(make_hub, tmp_path, page):
    pdb = ProductDB(tmp_path)

    def setup(db):
        admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"})
        admin.create_preset(db, "large", {"cpu": 2, "mem": "1g"})
        admin.create_preset(db, "xl", {"cpu": 1, "mem": "4g"})
        admin.upsert_image(db, IMAGE, installed=True)
        admin.create_group(db, "alpha", total_resource_slots={"cpu": 1})
        admin.create_group(db, "beta")
        db.get(m.Domain, admin.DEFAULT).total_resource_slots = admin.parse_slots({"mem": "3g"})

    pdb.setup(setup)
    pdb.user("pat@example.com", groups=["alpha", "beta"])
    hub = local_hub(make_hub, pdb, capacity='{"cpu": 4, "mem": "8g"}')

    def offered() -> tuple[list[str], str]:
        visible = page.locator("#backendai-spawn-form .bai-preset:visible input").evaluate_all(
            "els => els.map(e => e.value)"
        )
        note = page.inner_text("#hidden-presets") if page.is_visible("#hidden-presets") else ""
        return visible, note

    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "pat")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/home"))
    page.goto(f"{hub.url}/hub/spawn/pat/one")
    page.wait_for_selector("#backendai-spawn-form")
    # xl fits no project (the domain caps memory at 3 GiB): it is not offered anywhere.
    assert "xl" not in page.inner_text("#backendai-spawn-form")
    assert page.input_value("#bai-group") == "alpha"
    assert offered()[0] == ["small"]  # alpha caps cpu at 1
    assert "2 preset(s) are hidden" in offered()[1]
    assert page.is_checked("input[name=preset][value=small]")
    page.select_option("#bai-group", "beta")
    assert offered()[0] == ["large", "small"]
    assert "1 preset(s) are hidden" in offered()[1]
    page.check("input[name=preset][value=large]")
    page.select_option("#bai-group", "alpha")
    # The chosen preset no longer fits: the first that does is chosen instead.
    assert page.is_checked("input[name=preset][value=small]")

    # What alpha's sessions hold counts: with its one cpu in use, nothing fits there.
    assert spawn(hub, "pat", "busy", image=IMAGE, preset="small", group="alpha").status_code in (201, 202)
    wait_status(pdb, "pat", "busy", S.RUNNING)
    page.goto(f"{hub.url}/hub/spawn/pat/two")
    page.wait_for_selector("#backendai-spawn-form")
    assert offered()[0] == []
    assert "3 preset(s) are hidden" in offered()[1]
    assert page.is_checked("#bai-preset-custom")
    page.select_option("#bai-group", "beta")
    assert offered()[0] == ["large", "small"]
    stop(hub, "pat", "busy")
    pdb.close()
