"""``/session`` end to end: a real hub (local backend, real proxy) runs the manager as its service.

The manager starts and stops sessions only through the hub's REST API (DESIGN.md), so these
tests go the whole way: a keypair-signed call to ``<hub>/services/backendai/session`` → the
manager → ``POST /hub/api/users/<u>/servers/<name>`` → the spawner's admission → a real
``jupyterhub-singleuser`` process. One test (listing filters and pagination) needs no hub:
it inserts session rows directly and runs against the ``manager`` fixture alone.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.manager.api_sessions import is_server_slug, server_name_for
from testing.manager import add_session
from testing.sessions import (
    PASSWORD,
    PREFIX,
    HubWithManager,
    ProductDB,
    server_model,
    session_process_env,
    start_hub_with_manager,
    wait_ready,
)

S = m.SessionStatus


@pytest.fixture
def pdb(tmp_path: Any) -> Iterator[ProductDB]:
    pdb = ProductDB(tmp_path)

    def setup(db: Any) -> None:
        admin.create_policy(db, "student", total_resource_slots={"cpu": 2, "mem": "2g"}, max_concurrent_sessions=2)
        admin.create_preset(db, "small", {"cpu": 1, "mem": "512m"})
        admin.upsert_image(db, "python-local:3", labels={"ai.backend.service-ports": "tensorboard:http:6006"},
                           installed=True)  # fmt: skip

    pdb.setup(setup)
    pdb.user("admin@example.com", role="superadmin", username="admin")
    pdb.user("alice@example.com", policy="student")
    pdb.user("bob@example.com", policy="student")
    yield pdb
    pdb.close()


@pytest.fixture
def backendai(make_hub: Any, pdb: ProductDB) -> HubWithManager:
    """A hub on the local backend with the manager as the managed service ``backendai``."""
    return HubWithManager(start_hub_with_manager(make_hub, pdb), pdb)


def test_create_run_list_delete(backendai: HubWithManager) -> None:
    body = {"image": "python-local:3", "name": "nb1", "type": "interactive", "preset": "small"}
    created = backendai.call("POST", "/session", "alice", body)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["created"] is True and answer["sessionName"] == "nb1" and answer["serverName"] == "nb1"
    assert answer["status"] in {"PENDING", "SCHEDULED", "PREPARING", "RUNNING"}
    assert answer["servicePorts"] == [{"name": "tensorboard", "protocol": "http", "ports": [6006]}]

    detail = backendai.wait_status("alice", "nb1", {"RUNNING"})
    assert detail["id"] == answer["sessionId"]
    assert detail["occupied_slots"] == {"cpu": "1", "mem": str(512 * 1024**2)}
    assert [h["status"] for h in detail["status_history"]] == ["PENDING", "SCHEDULED", "PREPARING", "RUNNING"]
    apps = {a["name"]: a["url"] for a in detail["apps"]}
    assert apps["jupyterlab"] == "/user/alice/nb1/lab"
    # Through the session's server extension: a form for TensorBoard's log directory, then the app.
    assert apps["tensorboard"] == "/user/alice/nb1/backendai/_ext/apps/tensorboard/open"
    assert detail["agent"] and detail["user_email"] == "alice@example.com"
    # RUNNING is the container/process started; the hub calls it ready once the server answers.
    wait_ready(backendai.hub, "alice", "nb1")
    # The lab answers through the proxy (the hub's admin token may access it).
    lab = requests.get(f"{backendai.hub.url}/user/alice/nb1/api/status",
                       headers={"Authorization": f"token {backendai.hub.admin_token}"}, timeout=30)  # fmt: skip
    assert lab.status_code == 200, lab.text

    running = backendai.call("GET", "/session?status=running", "alice").json()
    assert running["total_count"] == 1 and running["items"][0]["name"] == "nb1"
    assert running["items"][0]["status"] == "RUNNING"

    # Same name again while it runs: a conflict, decided before the hub is asked.
    again = backendai.call("POST", "/session", "alice", {"name": "nb1", "preset": "small"})
    assert again.status_code == 409 and "already have an active session named 'nb1'" in again.json()["title"]

    # Bob neither sees nor stops it.
    assert backendai.call("GET", "/session/nb1", "bob").status_code == 404
    assert backendai.call("GET", f"/session/{answer['sessionId']}", "bob").status_code == 404
    assert backendai.call("DELETE", "/session/nb1", "bob").status_code == 404
    assert backendai.call("GET", "/session/nb1?owner=alice", "bob").status_code == 403
    assert backendai.call("GET", "/session?status=all", "bob").json()["total_count"] == 0
    assert backendai.call("GET", "/session?all_users=1", "bob").status_code == 403

    # The admin lists everyone's, and may look at alice's by owner.
    everyone = backendai.call("GET", "/session?all_users=1&status=all", "admin").json()
    assert [(i["username"], i["name"]) for i in everyone["items"]] == [("alice", "nb1")]
    assert backendai.call("GET", "/session/nb1?owner=alice", "admin").json()["id"] == answer["sessionId"]

    # The process's output (the server's start-up lines), copied by the hub every half second.
    deadline = time.monotonic() + 10
    while (
        "Jupyter Server" not in (logs := backendai.call("GET", "/session/nb1/logs", "alice").json())["result"]["logs"]
        and time.monotonic() < deadline
    ):
        time.sleep(0.3)
    assert "Jupyter Server" in logs["result"]["logs"], logs
    assert backendai.call("GET", "/session/nb1/logs", "bob").status_code == 404

    deleted = backendai.call("DELETE", "/session/nb1", "alice")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "TERMINATED"
    assert server_model(backendai.hub, "alice", "nb1") is None
    stopped = backendai.hub.api("GET", "/users/alice?include_stopped_servers=1").json()["servers"]
    assert "nb1" not in stopped  # removed, so it does not count against the hub's named-server limit
    assert backendai.call("GET", "/session", "alice").json()["total_count"] == 0
    finished = backendai.call("GET", "/session?status=finished", "alice").json()
    assert [i["name"] for i in finished["items"]] == ["nb1"] and finished["items"][0]["terminated_at"]
    history = backendai.call("GET", "/session/nb1", "alice").json()["status_history"]
    assert [h["status"] for h in history][-2:] == ["TERMINATING", "TERMINATED"]
    assert history[-1]["reason"] == "terminated by the user"
    # Its output outlives it; the file the process wrote it to is gone.
    kept = backendai.call("GET", "/session/nb1/logs", "alice").json()["result"]
    assert "Jupyter Server" in kept["logs"] and kept["status"] == "TERMINATED"
    assert not list(backendai.pdb.sessions_root.rglob("*.log"))
    assert backendai.call("DELETE", "/session/nb1", "alice").status_code == 404

    # The name is free again (the hub's server was removed, not only stopped).
    second = backendai.call("POST", "/session", "alice", {"name": "nb1", "preset": "small", "enqueueOnly": True})
    assert second.status_code == 201, second.text
    assert second.json()["sessionId"] != answer["sessionId"]
    backendai.wait_status("alice", "nb1", {"RUNNING"})
    assert backendai.call("DELETE", f"/session/{second.json()['sessionId']}", "admin").json()["status"] == "TERMINATED"


def test_refusals_keep_the_hubs_status_and_reason(backendai: HubWithManager) -> None:
    over = backendai.call("POST", "/session", "bob", {"name": "big", "config": {"resources": {"cpu": 4, "mem": "1g"}}})
    assert over.status_code == 403, over.text
    assert "cpu 4 exceeds the keypair policy 'student' limit of 2 (0 in use)" in over.json()["title"]
    missing = backendai.call("POST", "/session", "bob", {"name": "nofolder", "preset": "small",
                                                         "config": {"mounts": ["nope"]}})  # fmt: skip
    assert missing.status_code == 404, missing.text
    bad_image = backendai.call("POST", "/session", "bob", {"name": "img", "image": "nope:1", "preset": "small"})
    assert bad_image.status_code == 400 and "unknown image 'nope:1'" in bad_image.json()["title"]
    bad_group = backendai.call("POST", "/session", "bob", {"name": "sg", "config": {"scaling_group": "gpu"}})
    assert bad_group.status_code == 400 and "resource group 'gpu'" in bad_group.json()["title"]
    # Refused by the manager itself, before the hub is asked.
    assert backendai.call("POST", "/session", "bob", {"name": "bad name!"}).status_code == 400
    assert backendai.call("POST", "/session", "bob", {"name": "x" * 65}).status_code == 400
    batch = backendai.call("POST", "/session", "bob", {"name": "job", "type": "batch", "startupCommand": "ls"})
    assert batch.status_code == 400 and "not supported" in batch.json()["title"]
    assert backendai.call("GET", "/session?status=all", "bob").json()["total_count"] == 0


def test_names_that_are_not_server_slugs(backendai: HubWithManager) -> None:
    name = "My_Notebook"
    server = server_name_for(name)
    assert not is_server_slug(name) and is_server_slug(server)
    created = backendai.call("POST", "/session", "alice", {"name": name, "preset": "small", "maxWaitSeconds": 60})
    assert created.status_code == 201, created.text
    assert created.json()["sessionName"] == name and created.json()["serverName"] == server
    assert created.json()["status"] == "RUNNING"  # maxWaitSeconds waited for it
    detail = backendai.call("GET", f"/session/{name}", "alice").json()
    assert detail["apps"][0]["url"] == f"/user/alice/{server}/lab"
    renamed = backendai.call("POST", f"/session/{name}/rename", "alice", {"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["sessionName"] == "renamed"
    assert backendai.call("GET", f"/session/{name}", "alice").status_code == 404
    assert backendai.call("DELETE", "/session/renamed", "alice").json()["status"] == "TERMINATED"


def test_recalculate_usage_ends_sessions_whose_server_is_gone(backendai: HubWithManager) -> None:
    assert backendai.call("POST", "/session", "alice", {"name": "real", "preset": "small"}).status_code == 201
    backendai.wait_status("alice", "real", {"RUNNING"})
    # A row that claims resources but whose server the hub never had (e.g. a hub crash lost it).
    backendai.pdb.setup(lambda db: add_session(db, "bob", "ghost", S.RUNNING, {"cpu": 1}))

    assert backendai.call("POST", "/resource/recalculate-usage", "alice").status_code == 403
    r = backendai.call("POST", "/resource/recalculate-usage", "admin")
    assert r.status_code == 200, r.text
    assert [(t["username"], t["server_name"]) for t in r.json()["terminated"]] == [("bob", "ghost")]
    ghost = backendai.pdb.session("bob", "ghost")
    assert ghost.status == S.TERMINATED and ghost.status_info == "recalculated: the server is gone"
    assert backendai.pdb.session("alice", "real").status == S.RUNNING
    backendai.call("DELETE", "/session/real", "alice")


def test_hub_token_reaches_the_manager_through_the_proxy(backendai: HubWithManager) -> None:
    hub = backendai.hub
    assert hub.api("POST", "/users/alice").status_code in (201, 409)
    made = hub.api("POST", "/users/alice/tokens", json={"note": "test", "expires_in": 600})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    me = requests.get(f"{hub.url}{PREFIX}/auth/whoami", headers={"Authorization": f"token {token}"}, timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice" and me.json()["via"] == "hub-token"
    # The same token works for the session API.
    listed = requests.get(f"{hub.url}{PREFIX}/session", headers={"Authorization": f"token {token}"}, timeout=30)
    assert listed.status_code == 200 and listed.json()["total_count"] == 0
    bad = requests.get(f"{hub.url}{PREFIX}/auth/whoami", headers={"Authorization": "token nope"}, timeout=30)
    assert bad.status_code == 401


def test_listing_filters_and_pages_without_a_hub(manager: Any) -> None:
    """Rows inserted directly (no hub): status filters, pagination, scope, latest usage sample."""

    def setup(db: Any) -> None:
        for i in range(5):
            add_session(db, "alice", f"run{i}", S.RUNNING, {"cpu": 1, "mem": "1g"})
        add_session(db, "alice", "done", S.TERMINATED, {"cpu": 1})
        add_session(db, "alice", "waiting", S.PENDING, {"cpu": 1})
        add_session(db, "bob", "bobs", S.RUNNING, {"cpu": 2})
        run0 = next(s for s in db.query(m.Session).all() if s.name == "run0")
        db.add(m.SessionUsage(session_id=run0.id, cpu_percent=10.0, mem_bytes=100))
        db.flush()
        db.add(m.SessionUsage(session_id=run0.id, cpu_percent=42.5, mem_bytes=2048, io_read_bytes=7))

    manager.pdb.setup(setup)
    page1 = manager.call("GET", "/session?page_size=4", "alice").json()
    assert page1["total_count"] == 6 and len(page1["items"]) == 4
    page2 = manager.call("GET", "/session?page_size=4&page=2", "alice").json()
    names = {i["name"] for i in page1["items"] + page2["items"]}
    assert names == {"run0", "run1", "run2", "run3", "run4", "waiting"}
    finished = manager.call("GET", "/session?status=finished", "alice").json()
    assert [i["name"] for i in finished["items"]] == ["done"]
    assert manager.call("GET", "/session?status=all", "alice").json()["total_count"] == 7
    run0 = next(i for i in page1["items"] + page2["items"] if i["name"] == "run0")
    assert run0["usage"]["cpu_percent"] == 42.5 and run0["usage"]["mem_bytes"] == 2048
    assert run0["occupied_slots"] == {"cpu": "1", "mem": str(1024**3)} and run0["user_email"] == "alice@example.com"

    # By cursor: the page after page1, the same as page 2 by number; counted only on request.
    after = manager.call("GET", f"/session?page_size=4&cursor={page1['next_cursor']}", "alice").json()
    assert [i["id"] for i in after["items"]] == [i["id"] for i in page2["items"]]
    assert after["total_count"] is None and after["next_cursor"] is None and page2["next_cursor"] is None
    counted = manager.call("GET", f"/session?page_size=4&count=true&cursor={page1['next_cursor']}", "alice").json()
    assert counted["total_count"] == 6
    forged = manager.call("GET", "/session?cursor=bm90LWEtY3Vyc29y", "alice")
    assert forged.status_code == 400 and "is not a cursor of this listing" in forged.json()["title"]

    assert manager.call("GET", "/session?page_size=101", "alice").status_code == 400
    assert manager.call("GET", "/session?status=weird", "alice").status_code == 400
    assert manager.call("GET", "/session?all_users=1", "alice").status_code == 403
    everyone = manager.call("GET", "/session?all_users=1&page_size=100", "admin").json()
    assert everyone["total_count"] == 7 and "bob" in {i["username"] for i in everyone["items"]}

    detail = manager.call("GET", "/session/run0", "alice").json()
    assert detail["usage_summary"]["samples"] == 2 and detail["usage_summary"]["cpu_percent_max"] == 42.5
    # Without a hub the manager cannot start or stop anything, and says why.
    no_hub = manager.call("DELETE", "/session/run0", "alice")
    assert no_hub.status_code == 503 and "without a hub" in no_hub.json()["title"]


def test_pages_by_cursor_and_by_number_agree(db) -> None:
    """The listing's queries on SQLite and PostgreSQL: ties of created_at, status filters, scopes."""
    import datetime as dt

    from jupyter_backendai.db import sessions as store
    from jupyter_backendai.db.types import utcnow

    ann = admin.create_user(db, "ann@example.com", "S3cret!pw")[0]
    bob = admin.create_user(db, "bob@example.com", "S3cret!pw")[0]
    base = utcnow().replace(microsecond=0)
    statuses = [S.RUNNING, S.TERMINATED, S.PENDING, S.ERROR, S.CANCELLED]
    for i in range(23):
        for user in (ann, bob):
            keypair = next(k for k in user.keypairs if k.is_active)
            db.add(
                m.Session(
                    name=f"s{i}", server_name=f"s{i}", user_id=user.id, access_key=keypair.access_key,
                    domain_name=user.domain_name, scaling_group="default", image="python:3",
                    status=statuses[i % 5], created_at=base - dt.timedelta(seconds=i // 3),  # three share a time
                    occupied_slots={"cpu": i},
                )
            )  # fmt: skip
    db.commit()

    def walk(**kw) -> list:
        seen, cursor = [], None
        for _ in range(50):
            page = store.list_sessions(db, limit=4, cursor=cursor, count=False, **kw)
            assert len(page.rows) <= 4 and page.total is None
            seen += [(r.created_at, r.id) for r in page.rows]
            cursor = page.next_cursor
            if cursor is None:
                return seen
        raise AssertionError("the cursor walk did not end")

    for kw, expected_total in (
        ({"statuses": None, "user_id": ann.id}, 23),
        ({"statuses": tuple(m.FINISHED_SESSION_STATUSES), "user_id": ann.id}, 13),
        ({"statuses": store.RESERVING, "domain_name": "default"}, 20),
        ({"statuses": None}, 46),
    ):
        by_number = []
        for page_no in range(12):
            page = store.list_sessions(db, limit=4, offset=page_no * 4, **kw)
            assert page.total == expected_total
            by_number += [(r.created_at, r.id) for r in page.rows]
        assert len(by_number) == expected_total == len(set(by_number))
        assert by_number == sorted(by_number, reverse=True)  # newest first, ties by id
        assert walk(**kw) == by_number
    first = store.list_sessions(db, statuses=None, user_id=ann.id, limit=2).rows
    newest = sorted(db.scalars(select(m.Session).where(m.Session.user_id == ann.id, m.Session.created_at == base)),
                    key=lambda row: row.id, reverse=True)  # fmt: skip
    assert [r.id for r in first] == [row.id for row in newest[:2]] and len(newest) == 3
    # Slots as stored (Backend.AI's strings), the owner joined in.
    assert [(r.occupied_slots, r.user_email) for r in first] == [
        ({"cpu": row.name[1:]}, "ann@example.com") for row in newest[:2]
    ]
    with pytest.raises(store.CursorError):
        store.list_sessions(db, statuses=None, cursor="garbage!")


def test_environ_reaches_the_session_and_owned_names_are_refused(backendai: HubWithManager) -> None:
    from testing.hub import login

    environ = {"MY_SETTING": "hello world", "DATA_DIR": "/home/work/data", "EMPTY": ""}
    body = {"name": "envy", "preset": "small", "config": {"environ": environ}}
    created = backendai.call("POST", "/session", "alice", body)
    assert created.status_code == 201, created.text
    assert "warnings" not in created.json()
    backendai.wait_status("alice", "envy", {"RUNNING"})
    env = session_process_env(created.json()["sessionId"])
    assert {k: env.get(k) for k in environ} == environ
    assert env["JUPYTERHUB_API_TOKEN"] and env["BACKENDAI_SESSION_NAME"] == "envy"
    assert backendai.call("DELETE", "/session/envy", "alice").status_code == 200

    # Names the product sets: 400 with the name, nothing started.
    for name in ("JUPYTERHUB_API_TOKEN", "BACKENDAI_SESSION_ID", "BACKEND_SECRET_KEY", "NVIDIA_VISIBLE_DEVICES",
                 "HOME", "jupyterhub_api_url"):  # fmt: skip
        r = backendai.call("POST", "/session", "alice", {"name": "bad", "config": {"environ": {name: "x"}}})
        assert r.status_code == 400, (name, r.text)
        assert f"config.environ: environment variable {name} is set by the product" in r.json()["title"], r.text
    for environ, words in (
        ({"1ABC": "x"}, "name '1ABC' is not valid"),
        ({"A-B": "x"}, "name 'A-B' is not valid"),
        ({"KEY": {"nested": 1}}, "KEY must be text"),
        ({"BIG": "x" * 40000}, "BIG is 40000 bytes long"),
        (["A=1"], "'config.environ' must be an object"),
    ):
        r = backendai.call("POST", "/session", "alice", {"name": "bad", "config": {"environ": environ}})
        assert r.status_code == 400 and words in r.json()["title"], r.text
    assert backendai.call("GET", "/session?status=all", "alice").json()["total_count"] == 1

    # The hub's API (user_options, as the lab's start dialog and the manager send them): the same rule.
    hub = backendai.hub
    r = hub.api("POST", "/users/alice/servers/viahub", json={"preset": "small", "environ": {"JUPYTERHUB_USER": "x"}})
    assert r.status_code == 400 and "environment variable JUPYTERHUB_USER is set by the product" in r.text, r.text

    # The spawn form: KEY=value lines; a refusal is shown on the form, nothing is started.
    browser = requests.Session()
    assert login(hub, "alice", PASSWORD, browser).status_code == 200
    page = f"{hub.url}/hub/spawn/alice/formenv"
    assert 'name="environ"' in browser.get(page, timeout=30).text

    def post_form(session: requests.Session, url: str, data: dict[str, str]) -> requests.Response:
        xsrf = session.cookies.get("_xsrf", path="/hub/")
        return session.post(url, data={"_xsrf": xsrf, **data}, timeout=60)

    refused = post_form(browser, page, {"preset": "small", "environ": "OK=1\nBACKENDAI_ACCESS_KEY=AKIA\n"})
    assert refused.status_code == 400 and "environment variable BACKENDAI_ACCESS_KEY is set by the product" in (
        refused.text
    )
    assert server_model(hub, "alice", "formenv") is None
    no_equals = post_form(browser, page, {"preset": "small", "environ": "JUST_A_NAME\n"})
    assert no_equals.status_code == 400 and "line 1 'JUST_A_NAME' is not KEY=value" in html.unescape(no_equals.text)
    started = post_form(browser, page, {"preset": "small", "environ": "# mine\nFORM_VAR=a=b c\n\nOTHER=2\n"})
    assert started.status_code == 200, started.text[-2000:]
    detail = backendai.wait_status("alice", "formenv", {"RUNNING"})
    env = session_process_env(detail["id"])
    assert (env.get("FORM_VAR"), env.get("OTHER")) == ("a=b c", "2")
    assert backendai.call("DELETE", "/session/formenv", "alice").status_code == 200
