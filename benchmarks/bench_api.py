"""How fast does the manager answer its listings? 10,000 finished sessions and 1,000 folders of one user.

Run from the repository root: ``python benchmarks/bench_api.py`` (``--quick`` for a smoke run:
fewer requests). A real manager process (``python -m jupyter_backendai.manager``) runs on a free
127.0.0.1 port on a fresh SQLite product database (WAL, as the product uses it) into which the
rows are bulk-inserted with SQLAlchemy:

* ``--sessions`` (10,000) sessions of the user, all TERMINATED, with occupied and requested
  slots, created/started/terminated times spread over 90 days, and ``--usage-samples`` (3)
  usage samples each (finished sessions have them: the listing joins the latest one);
* ``--folders`` (1,000) user folders (``m.VFolder`` rows) owned by the same user; their
  directories are made through ``FolderStore.create`` only with ``--folder-dirs yes`` (the
  default ``auto`` makes them when the folder listing reads anything from storage).

Then, sequentially over one keep-alive connection, each request signed with the user's
keypair (whose rate limit is lifted first: 0 = none), after a few unrecorded warm-up calls:

* ``GET /session?status=finished&page=k&page_size=50`` for random pages k (``--session-requests``, 300);
* ``GET /session?status=finished&page_size=50&cursor=c``, walking the pages by ``next_cursor``
  (as many requests; from the first page again after the last);
* ``GET /folders`` (``--folder-requests``, 100);
* ``GET /`` (public, no database): the floor of one HTTP round trip through tornado.

Latency is the client's wall time of one request (signing excluded). p50/p95/p99 per endpoint
in ms, and the manager's CPU time per request (which other load on the machine does not
inflate); goal p95 < 50 ms (both session listings and the folder listing). To show where the
time goes, the run also times in-process, on the same database, what every signed request does
before its handler runs (the keypair look-up transaction and the rate-limit counter update, a
write committed to SQLite) and each listing's own work (the handler's functions: queries and
JSON) alone.

Waits (bounded) for ``manager.folders``/``api_sessions`` to exist (``--wait``, at most 30 min,
polling every minute and running their tests). The last line printed is one JSON object with
the figures. Everything (the manager, the temporary directory) is removed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _manager import (  # noqa: E402
    Abort,
    ManagerProcess,
    SignedClient,
    install_signal_handlers,
    log,
    make_db,
    missing_modules,
    percentile,
    quietly,
    wait_for_api,
)
from sqlalchemy import func, insert, select  # noqa: E402

from jupyter_backendai.core.slots import ResourceSlots  # noqa: E402
from jupyter_backendai.db import admin  # noqa: E402
from jupyter_backendai.db import folders as folder_db  # noqa: E402
from jupyter_backendai.db import models as m  # noqa: E402
from jupyter_backendai.db import sessions as store  # noqa: E402
from jupyter_backendai.manager import api_sessions  # noqa: E402
from jupyter_backendai.manager.folders import listing as folder_listing_module  # noqa: E402

SEED = 20240611
PAGE_SIZE = 50
WARMUP = 10
GOAL_P95_MS = 50.0
HARD_LIMIT_S = 900
GiB = 1024**3
IMAGES = [
    "cr.backend.ai/stable/python:3.11-ubuntu22.04",
    "cr.backend.ai/stable/python-pytorch:2.3-py311-cuda12.1",
    "cr.backend.ai/stable/python-tensorflow:2.15-py311-cuda12.2",
]


def insert_rows(pdb, username: str, n_sessions: int, n_folders: int, usage_samples: int, rng: random.Random):
    """Bulk-insert the sessions, their usage samples and the folders; returns (folder ids, seconds)."""
    t0 = time.perf_counter()
    with pdb() as db:
        user = admin.get_user(db, username)
        kp = next(k for k in user.keypairs if k.is_active)
        group_id = db.scalar(select(m.Group.id).where(m.Group.name == "default"))
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        sessions, usage = [], []
        for i in range(n_sessions):
            created = now - dt.timedelta(seconds=rng.randint(3600, 90 * 86400))
            started = created + dt.timedelta(seconds=rng.randint(2, 120))
            terminated = started + dt.timedelta(seconds=rng.randint(60, 3 * 86400))
            cpu = rng.choice([1, 2, 4, 8])
            slots = {"cpu": cpu, "mem": cpu * 2 * GiB}
            if rng.random() < 0.2:
                slots["cuda.shares"] = rng.choice(["0.25", "0.5", "1"])
            sid = uuid.uuid4()
            sessions.append(
                {
                    "id": sid,
                    "name": f"sess-{i:05d}",
                    "server_name": f"sess-{i:05d}",
                    "user_id": user.id,
                    "access_key": kp.access_key,
                    "domain_name": user.domain_name,
                    "group_id": group_id,
                    "scaling_group": "default",
                    "image": rng.choice(IMAGES),
                    "status": m.SessionStatus.TERMINATED,
                    "status_info": "user-requested",
                    "requested_slots": ResourceSlots(slots),
                    "occupied_slots": ResourceSlots(slots),
                    "created_at": created,
                    "scheduled_at": created + dt.timedelta(seconds=1),
                    "started_at": started,
                    "terminated_at": terminated,
                    "last_activity": terminated,
                }
            )
            span = (terminated - started).total_seconds()
            for k in range(usage_samples):
                usage.append(
                    {
                        "session_id": sid,
                        "at": started + dt.timedelta(seconds=span * (k + 1) / usage_samples),
                        "cpu_percent": rng.uniform(0, 100 * cpu),
                        "cpu_seconds": span * (k + 1) / usage_samples * rng.random(),
                        "mem_bytes": rng.randint(1, cpu * 2) * GiB // 2,
                        "io_read_bytes": rng.randint(0, 10 * GiB),
                        "io_write_bytes": rng.randint(0, 10 * GiB),
                    }
                )
        for start in range(0, len(sessions), 2000):
            db.execute(insert(m.Session), sessions[start : start + 2000])
        for start in range(0, len(usage), 5000):
            db.execute(insert(m.SessionUsage), usage[start : start + 5000])
        folders = [
            {
                "id": uuid.uuid4(),
                "name": f"data-{i:04d}",
                "host": "local",
                "ownership_type": m.FolderOwnership.USER,
                "user_id": user.id,
                "creator": user.email,
                "permission": m.FolderPermission.RW_DELETE,
                "usage_mode": rng.choice(["general", "data", "model"]),
                "created_at": now - dt.timedelta(seconds=rng.randint(0, 365 * 86400)),
            }
            for i in range(n_folders)
        ]
        if folders:
            db.execute(insert(m.VFolder), folders)
        db.commit()
        counted = (
            db.scalar(select(func.count(m.Session.id)).where(m.Session.user_id == user.id)),
            db.scalar(select(func.count(m.VFolder.id)).where(m.VFolder.user_id == user.id)),
        )
    assert counted == (n_sessions, n_folders), counted
    return [f["id"] for f in folders], time.perf_counter() - t0


def folder_listing_reads_storage() -> bool:
    """Whether ``GET /folders`` (the folders package' GET handler) touches the folder store (dirs needed)."""
    import importlib.util
    import inspect

    spec = importlib.util.find_spec("jupyter_backendai.manager.folders.lifecycle")
    if spec is None:
        return False
    import importlib

    module = importlib.import_module("jupyter_backendai.manager.folders.lifecycle")
    for path, handler, *_ in getattr(module, "handlers", []):
        if path.rstrip("/?$") == "/folders" and hasattr(handler, "get"):
            source = inspect.getsource(handler.get)  # the listing itself, not the create/delete beside it
            return any(word in source for word in ("store", "usage(", "storage.", "directory("))
    return True  # unknown: make them, a real installation has them


def measure(client: SignedClient, paths, n: int, deadline: float, check, seen=None) -> list[float]:
    """Latencies (ms) of ``n`` sequential signed GETs of ``paths()``, after WARMUP unrecorded ones.

    ``seen(data)``, when given, gets every answer (a cursor walk takes its next position from it).
    """
    out: list[float] = []
    for i in range(WARMUP + n):
        if time.monotonic() > deadline:
            log(f"time budget spent after {len(out)} requests")
            break
        path = paths()
        t0 = time.perf_counter()
        response = client.call("GET", path)
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
        if i == 0:
            check(response.json())
        if seen is not None:
            seen(response.json())
        if i >= WARMUP:
            out.append(elapsed)
    return out


class ManagerCPU:
    """The manager process's CPU time (user + system) per request since the last reading."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)
        self.last = self._seconds()

    def _seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def per_request(self, requests: int) -> float:
        now = self._seconds()
        used, self.last = now - self.last, now
        return round(used * 1000 / max(1, requests), 2)


def measure_public(manager: ManagerProcess, n: int) -> list[float]:
    import requests

    out = []
    with requests.Session() as s:
        for i in range(WARMUP + n):
            t0 = time.perf_counter()
            r = s.get(manager.url + "/", timeout=30)
            elapsed = (time.perf_counter() - t0) * 1000
            r.raise_for_status()
            if i >= WARMUP:
                out.append(elapsed)
    return out


def in_process_breakdown(
    pdb, access_key: str, user_id, n: int, rng: random.Random, pages: int, have_folders: bool
) -> dict:
    """What a request costs without HTTP: the keypair look-up, the counter update, each listing's work.

    The listings run the handlers' own functions (queries, rows to JSON) in one transaction,
    as the handlers do; the folder listing's JSON per row is warm, as after a first request.
    """
    from jupyter_backendai.db.types import utcnow

    def timed(fn) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            with pdb() as db:
                fn(db)
                db.commit()
            out.append((time.perf_counter() - t0) * 1000)
        return out

    def look_up(db):  # base.APIHandler._keypair_identity.look_up
        kp = db.get(m.KeyPair, access_key)
        return kp.secret_key, kp.user.username

    def count(db):  # base.APIHandler.count_request.count (a write: committed, so fsync'd)
        kp = db.get(m.KeyPair, access_key)
        kp.num_queries = (kp.num_queries or 0) + 1
        kp.last_used = utcnow()

    statuses = tuple(m.FINISHED_SESSION_STATUSES)

    def listing(db):  # what api_sessions.SessionsHandler.get does inside its transaction
        page = rng.randint(1, pages)
        found = store.list_sessions(
            db, statuses=statuses, user_id=user_id, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        json.dumps([api_sessions.listed_item(row, found.usage.get(row.id)) for row in found.rows], default=str)

    def folders(db):  # what folders.lifecycle.FoldersHandler.get does inside its transaction
        entries = folder_db.folder_listing(db, db.get(m.User, user_id))
        "[" + ",".join(folder_listing_module.LISTED.texts(entries, folder_listing_module.decoder(db))[0]) + "]"

    result = {}
    steps = (("keypair_lookup", look_up), ("rate_count_commit", count), ("sessions_listing", listing))
    if have_folders:
        steps += (("folders_listing", folders),)
    for name, fn in steps:
        values = timed(fn)
        result[name + "_p50_ms"] = round(statistics.median(values), 2)
        result[name + "_p95_ms"] = round(percentile(values, 95), 2)
    return result


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 2) if values else None,
        "p95": round(percentile(values, 95), 2) if values else None,
        "p99": round(percentile(values, 99), 2) if values else None,
        "max": round(max(values), 2) if values else None,
        "mean": round(statistics.fmean(values), 2) if values else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (60 / 30)")
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--folders", type=int, default=1_000)
    parser.add_argument("--usage-samples", type=int, default=3, help="usage rows per session")
    parser.add_argument("--session-requests", type=int, default=None)
    parser.add_argument("--folder-requests", type=int, default=None)
    parser.add_argument("--folder-dirs", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument("--wait", type=float, default=1800, help="seconds to wait for the API modules (max 1800)")
    parser.add_argument("--no-tests", action="store_true", help="don't run the manager tests while waiting")
    args = parser.parse_args(argv)
    n_sess_req = args.session_requests or (60 if args.quick else 300)
    n_fold_req = args.folder_requests or (30 if args.quick else 100)
    install_signal_handlers()
    started = time.monotonic()
    rng = random.Random(SEED)
    figures: dict = {
        "sessions_rows": args.sessions,
        "folders_rows": args.folders,
        "usage_rows": args.sessions * args.usage_samples,
        "page_size": PAGE_SIZE,
        "goal_p95_ms": GOAL_P95_MS,
    }

    api = wait_for_api(["sessions", "folders"], max_wait=min(args.wait, 1800), tests=not args.no_tests)
    figures["api_wait"] = api
    log(f"manager API: {api}")
    have_folders = not missing_modules(["folders"])
    measure_start = time.monotonic()
    deadline = measure_start + HARD_LIMIT_S

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    manager = client = pdb = None
    try:
        pdb, username, keys = make_db(tmp)
        folder_ids, insert_s = insert_rows(pdb, username, args.sessions, args.folders, args.usage_samples, rng)
        figures["insert_s"] = round(insert_s, 2)
        log(f"inserted {args.sessions} sessions, {args.folders} folders in {insert_s:.1f} s")
        dirs = args.folder_dirs == "yes" or (args.folder_dirs == "auto" and folder_listing_reads_storage())
        if dirs:
            from jupyter_backendai.storage import FolderStore

            store = FolderStore(pdb.storage_root)
            for fid in folder_ids:
                store.create("local", fid)
        figures["folder_dirs_created"] = dirs

        manager = ManagerProcess(tmp, pdb)
        client = SignedClient(manager, keys)
        pages = max(1, -(-args.sessions // PAGE_SIZE))

        def check_sessions(data):
            assert data.get("total_count") == args.sessions, {k: data.get(k) for k in ("total_count", "page")}
            assert len(data.get("items", [])) == min(PAGE_SIZE, args.sessions), len(data.get("items", []))

        log(f"GET /session?status=finished: {n_sess_req} requests over {pages} pages")
        cpu = ManagerCPU(manager.pid)
        sess = measure(
            client,
            lambda: f"/session?status=finished&page={rng.randint(1, pages)}&page_size={PAGE_SIZE}",
            n_sess_req,
            deadline,
            check_sessions,
        )
        cpu_sess = cpu.per_request(WARMUP + n_sess_req)
        # The same pages by cursor (next_cursor of the previous page; from the start again at the end).
        position: dict = {"cursor": None, "pages": 0}

        def cursor_path() -> str:
            cursor = position["cursor"]
            return f"/session?status=finished&page_size={PAGE_SIZE}" + (f"&cursor={cursor}" if cursor else "")

        def next_page(data) -> None:
            position["cursor"] = data.get("next_cursor")
            position["pages"] += 1

        def check_cursor(data):
            assert "next_cursor" in data and len(data.get("items", [])) == min(PAGE_SIZE, args.sessions), data.keys()

        log(f"GET /session?status=finished&cursor=...: {n_sess_req} requests walking the pages")
        walk = measure(client, cursor_path, n_sess_req, deadline, check_cursor, next_page)
        cpu_walk = cpu.per_request(WARMUP + n_sess_req)
        cpu_fold = None
        folders: list[float] = []
        if have_folders:

            def check_folders(data):
                items = data if isinstance(data, list) else data.get("items", data.get("folders", []))
                figures["folders_listed"] = len(items) if isinstance(items, list) else None
                if isinstance(items, list) and len(items) != args.folders:
                    log(f"GET /folders listed {len(items)} folders, not {args.folders}")

            log(f"GET /folders: {n_fold_req} requests")
            folders = measure(client, lambda: "/folders", n_fold_req, deadline, check_folders)
            cpu_fold = cpu.per_request(WARMUP + n_fold_req)
        else:
            log("manager.folders is not there: GET /folders not measured")
        public = measure_public(manager, 100)

        with pdb() as db:
            user = admin.get_user(db, username)
            user_id = user.id
        breakdown = in_process_breakdown(pdb, keys[0], user_id, 50, rng, pages, have_folders)

        s, c, f, p = summary(sess), summary(walk), summary(folders), summary(public)
        print()
        print(f"Manager API latency, sequential, signed, keep-alive ({args.sessions:,} finished sessions, "
              f"{args.folders:,} folders, one user)")  # fmt: skip
        print(f"{'endpoint':<48}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'CPU ms':>9}")
        for label, row, used in (
            (f"GET /session?status=finished&page_size={PAGE_SIZE}", s, cpu_sess),
            ("GET /session?status=finished&cursor=... (walk)", c, cpu_walk),
            ("GET /folders", f, cpu_fold),
            ("GET / (public, no db: HTTP floor)", p, None),
        ):
            if row["n"]:
                shown = "" if used is None else used
                print(f"{label:<48}{row['n']:>6}{row['p50']:>9}{row['p95']:>9}{row['p99']:>9}{row['max']:>9}{shown:>9}")
        print("CPU ms: the manager process's CPU time per request (user + system), whatever else the machine runs.")
        print("In-process, same database, no HTTP (p50 / p95 ms):")
        for name in ("keypair_lookup", "rate_count_commit", "sessions_listing", "folders_listing"):
            if name + "_p50_ms" in breakdown:
                print(f"  {name:<30}{breakdown[name + '_p50_ms']:>8} / {breakdown[name + '_p95_ms']}")
        goal_s = s["p95"] is not None and s["p95"] < GOAL_P95_MS and (c["p95"] is None or c["p95"] < GOAL_P95_MS)
        goal_f = f["p95"] is not None and f["p95"] < GOAL_P95_MS
        print(f"goal p95 < {GOAL_P95_MS:g} ms: sessions {'met' if goal_s else 'MISSED'}, "
              f"folders {'met' if goal_f else ('MISSED' if f['n'] else 'not measured')}")  # fmt: skip
        figures.update(
            {
                "sessions_p50_ms": s["p50"],
                "sessions_p95_ms": s["p95"],
                "sessions_p99_ms": s["p99"],
                "sessions_requests": s["n"],
                "sessions_cursor_p50_ms": c["p50"],
                "sessions_cursor_p95_ms": c["p95"],
                "sessions_cursor_p99_ms": c["p99"],
                "sessions_cursor_requests": c["n"],
                "folders_p50_ms": f["p50"],
                "folders_p95_ms": f["p95"],
                "folders_p99_ms": f["p99"],
                "folders_requests": f["n"],
                "sessions_cpu_ms_per_request": cpu_sess,
                "sessions_cursor_cpu_ms_per_request": cpu_walk,
                "folders_cpu_ms_per_request": cpu_fold,
                "public_root_p50_ms": p["p50"],
                "public_root_p95_ms": p["p95"],
                **breakdown,
                "sessions_goal_met": goal_s,
                "folders_goal_met": goal_f if f["n"] else None,
            }
        )
    except Abort as e:
        figures["aborted"] = str(e)
        log(f"aborted: {e}")
    except Exception as e:  # noqa: BLE001 - report what failed, still print the figures
        figures["error"] = f"{type(e).__name__}: {e}"[:500]
        log(f"failed: {figures['error']}")
        if manager is not None:
            log("manager log tail:\n" + manager.log_tail())
    finally:
        for thing, how in ((client, "close"), (manager, "stop"), (pdb, "close")):
            quietly(thing, how)
        shutil.rmtree(tmp, ignore_errors=True)
    figures["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))
    return 0 if "error" not in figures and "aborted" not in figures else 1


if __name__ == "__main__":
    sys.exit(main())
