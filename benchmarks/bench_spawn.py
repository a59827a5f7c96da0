"""How long does a spawn take, and how much memory does the hub hold? Real hub, proxy and engine.

Run from the repository root: ``python benchmarks/bench_spawn.py`` (``--quick`` for a smoke run).
Needs what the end-to-end tests need: ``configurable-http-proxy`` on PATH, a Docker engine and the
image ``jupyter-backendai-session:local`` (``images/session/build-offline.sh``).

1. **Spawn time**: from the spawn request (``POST /hub/api/users/<u>/servers/<name>`` with the
   hub's admin token) to a ready server (``GET /hub/api/users/<u>`` every 0.1 s until
   ``servers[name].ready``), for sequential spawns (one at a time) and concurrent ones (5 users
   at once, one thread each). Two hubs with the same settings run side by side, one with this
   project's ``DockerSessionSpawner`` ("ours": preset 0.5 CPU / 512 MiB, agent capacity 8 CPU /
   16 GiB), one with plain dockerspawner ``DockerSpawner`` on the host network ("baseline": the
   same image, the same CPU and memory limits). The two are measured alternately (ABBA order),
   each server is stopped (and gone) before the next measurement, and the medians are reported;
   the first spawn on each hub is a warm-up, reported but not counted.
2. **Hub memory**: the resident set (RSS) of the ``jupyterhub`` process *alone* (not its proxy,
   not the sessions it started) on a hub with ``LocalSessionSpawner``, with no session and then
   with 50 running local sessions (preset 0.1 CPU / 64 MiB, an image row without minimums),
   started 5 at a time. Bounded: after ``--local-budget`` seconds it gives up and reports what
   it has (``local_sessions_ready`` says how many).

The last line printed is one JSON object with the figures. Every wait is bounded, all traffic
goes to 127.0.0.1 (free ports picked by binding port 0), container names are unique to the run,
and everything started is stopped at the end, on errors too: the hubs (``cleanup_servers``),
their proxies, the containers this run created (ours: by the session ids of this run's database,
baseline: by the run's name prefix) and any session process left behind.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # for testing.hub / testing.sessions

import psutil  # noqa: E402

from jupyter_backendai.db import admin  # noqa: E402
from jupyter_backendai.db import models as m  # noqa: E402
from jupyter_backendai.hub import TEMPLATES  # noqa: E402
from testing.hub import Hub  # noqa: E402
from testing.sessions import ProductDB  # noqa: E402

IMAGE = os.environ.get("BACKENDAI_TEST_SESSION_IMAGE", "jupyter-backendai-session:local")
LOCAL_IMAGE = "bench-local:1"
MANAGED_LABEL = "org.jupyter-backendai.managed"
POLL_S = 0.1
READY_TIMEOUT_S = 180.0
GONE_TIMEOUT_S = 90.0
MiB = 1024**2


class Abort(Exception):
    """The run must stop (a signal, the time budget); the figures so far are still printed."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# ------------------------------------------------------------------------------ hub configuration


def common_config(pdb: ProductDB, scheduler_interval: float | None) -> str:
    """The settings both Docker hubs share (as testing/sessions.hub_config, minus the spawner)."""
    text = f"""
c.JupyterHub.authenticator_class = "backendai"
c.BackendAIAuthenticator.db_url = {pdb.url!r}
c.JupyterHub.template_paths = [{TEMPLATES!r}]
c.JupyterHub.allow_named_servers = True
c.JupyterHub.default_url = "/hub/home"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.last_activity_interval = 5
# The API answers 202 for a spawn still going after 2 s instead of holding the request 10 s.
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 2}}
c.Spawner.http_timeout = 120
"""
    if scheduler_interval is not None:
        text += f"c.SessionSpawnerMixin.scheduler_interval = {scheduler_interval!r}\n"
    return text


def ours_config(pdb: ProductDB, scheduler_interval: float | None) -> str:
    return (
        common_config(pdb, scheduler_interval)
        + f"""
c.JupyterHub.spawner_class = "backendai-docker"
c.DockerSessionSpawner.db_url = {pdb.url!r}
c.DockerSessionSpawner.storage_root = {str(pdb.storage_root)!r}
c.DockerSessionSpawner.agent_capacity = {{"cpu": 8, "mem": "16g"}}
"""
    )


def baseline_config(pdb: ProductDB, prefix: str, cpu: float, mem: str, scheduler_interval: float | None) -> str:
    # Configured through the subclass's own name: c.DockerSpawner.* would reach ours as well.
    return (
        common_config(pdb, scheduler_interval)
        + f"""
from dockerspawner import DockerSpawner
from jupyterhub.utils import random_port
from traitlets import default


class HostNetworkDockerSpawner(DockerSpawner):
    \"\"\"Plain DockerSpawner on the host network (test-machine-recipes.md).\"\"\"

    @default("network_name")
    def _default_network_name(self):
        return "host"

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        return True

    async def start(self):
        self.ip = "127.0.0.1"
        self.port = random_port()
        self.args = ["--ip=127.0.0.1", f"--port={{self.port}}"]
        return await super().start()

    async def get_ip_and_port(self):
        return "127.0.0.1", self.port


c.JupyterHub.spawner_class = HostNetworkDockerSpawner
c.HostNetworkDockerSpawner.image = {IMAGE!r}
c.HostNetworkDockerSpawner.cmd = ["jupyterhub-singleuser"]
c.HostNetworkDockerSpawner.prefix = {prefix!r}
c.HostNetworkDockerSpawner.remove = True
c.HostNetworkDockerSpawner.pull_policy = "never"
c.HostNetworkDockerSpawner.cpu_limit = {cpu!r}
c.HostNetworkDockerSpawner.mem_limit = {mem!r}
"""
    )


def local_config(pdb: ProductDB, scheduler_interval: float | None) -> str:
    return (
        common_config(pdb, scheduler_interval)
        + f"""
c.JupyterHub.spawner_class = "backendai-local"
c.LocalSessionSpawner.db_url = {pdb.url!r}
c.LocalSessionSpawner.storage_root = {str(pdb.storage_root)!r}
c.LocalSessionSpawner.agent_capacity = {{"cpu": 64, "mem": "256g"}}
"""
    )


def docker_pdb(directory: Path, cpu: float, mem: str) -> ProductDB:
    directory.mkdir(parents=True, exist_ok=True)
    pdb = ProductDB(directory)

    def setup(db):
        admin.create_policy(db, "bench", allowed_vfolder_hosts=["local"])  # no limits
        admin.create_preset(db, "bench", {"cpu": cpu, "mem": mem})
        admin.upsert_image(
            db,
            IMAGE,
            labels={
                "ai.backend.resource.min.cpu": "0.5",
                "ai.backend.resource.min.mem": "256m",
                "ai.backend.service-ports": "jupyter:http:8888,sshd:tcp:2200",
            },
            installed=True,
        )

    pdb.setup(setup)
    return pdb


def local_pdb(directory: Path) -> ProductDB:
    directory.mkdir(parents=True, exist_ok=True)
    pdb = ProductDB(directory)

    def setup(db):
        admin.create_policy(db, "bench", allowed_vfolder_hosts=["local"])
        admin.create_preset(db, "tiny", {"cpu": "0.1", "mem": "64m"})
        admin.upsert_image(db, LOCAL_IMAGE, labels={}, installed=True)  # no minimums

    pdb.setup(setup)
    return pdb


# ----------------------------------------------------------------------------------- measuring


class Runner:
    """Spawns and stops servers on one hub, timing request → ready."""

    def __init__(self, label: str, hub: Hub, options: dict[str, Any]):
        self.label = label
        self.hub = hub
        self.options = options
        self.users: set[str] = set()

    def add_user(self, name: str) -> None:
        r = self.hub.api("POST", f"/users/{name}")
        if r.status_code not in (201, 409):
            raise RuntimeError(f"{self.label}: creating hub user {name} failed: {r.status_code} {r.text}")
        self.users.add(name)

    def server_model(self, user: str, server: str) -> dict | None:
        r = self.hub.api("GET", f"/users/{user}", timeout=10)
        r.raise_for_status()
        return (r.json().get("servers") or {}).get(server)

    def spawn_and_wait(self, user: str, server: str, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds from the spawn request to ``ready``; raises on failure or timeout."""
        t0 = time.monotonic()
        r = self.hub.api("POST", f"/users/{user}/servers/{server}", json=self.options, timeout=60)
        if r.status_code not in (201, 202):
            raise RuntimeError(f"{self.label}: spawn {user}/{server} answered {r.status_code}: {r.text[:300]}")
        deadline = t0 + timeout
        missing_since = None
        while True:
            model = self.server_model(user, server)
            now = time.monotonic()
            if model and model.get("ready"):
                return now - t0
            if model is None:
                missing_since = missing_since or now
                if now - missing_since > 3:
                    raise RuntimeError(f"{self.label}: {user}/{server} failed to start (gone from the hub)")
            else:
                missing_since = None
            if now > deadline:
                raise RuntimeError(f"{self.label}: {user}/{server} not ready after {timeout:.0f} s: {model}")
            time.sleep(POLL_S)

    def stop(self, user: str, server: str) -> None:
        r = self.hub.api("DELETE", f"/users/{user}/servers/{server}", timeout=60)
        if r.status_code not in (202, 204, 404):
            log(f"{self.label}: stopping {user}/{server} answered {r.status_code}: {r.text[:200]}")

    def wait_gone(self, user: str, server: str, timeout: float = GONE_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while self.server_model(user, server) is not None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label}: {user}/{server} still there after {timeout:.0f} s")
            time.sleep(0.2)

    def stop_and_wait(self, pairs: list[tuple[str, str]]) -> None:
        for user, server in pairs:
            self.stop(user, server)
        for user, server in pairs:
            self.wait_gone(user, server)


class Results:
    def __init__(self) -> None:
        self.seq: dict[str, list[float]] = {"ours": [], "baseline": []}
        self.conc: dict[str, list[float]] = {"ours": [], "baseline": []}
        self.conc_batch: dict[str, list[float]] = {"ours": [], "baseline": []}
        self.warmup: dict[str, float] = {}
        self.failures: dict[str, int] = {"ours": 0, "baseline": 0, "local": 0}
        self.phases: dict[str, list[float]] = {}
        # Sequential spawns, both spawners: request → container started → server listening → ready.
        self.timeline: dict[str, dict[str, list[float]]] = {
            k: {"to_container_start": [], "container_start_to_listening": [], "listening_to_ready": []}
            for k in ("ours", "baseline")
        }
        self.rss: dict[str, float | None] = {}
        self.local_ready = 0
        self.local_target = 0
        self.local_start_s: float | None = None
        self.notes: list[str] = []


def concurrent_batch(runner: Runner, users: list[str], server: str) -> tuple[list[float], int]:
    """Spawn ``server`` for every user at once; returns the times of those that got ready and the failures."""
    barrier = threading.Barrier(len(users))
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(user: str) -> None:
        try:
            barrier.wait(timeout=30)
            t = runner.spawn_and_wait(user, server)
            with lock:
                times.append(t)
        except Exception as e:  # noqa: BLE001 - counted and reported
            with lock:
                errors.append(f"{user}: {e}")

    threads = [threading.Thread(target=one, args=(u,), daemon=True) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=READY_TIMEOUT_S + 90)
    for e in errors:
        log(f"{runner.label}: concurrent spawn failed: {e}")
    return times, len(errors)


def phase_breakdown(pdb: ProductDB, users: list[str], requested_at: dict[str, float], ready_at: dict[str, float]):
    """Per session of ours: request→PENDING, PENDING→SCHEDULED, SCHEDULED→PREPARING,
    PREPARING→RUNNING (the container's create and start), RUNNING→ready (the hub waiting for the server)."""
    out: dict[str, list[float]] = {k: [] for k in ("request_to_pending", "queued", "scheduled_to_preparing",
                                                   "preparing_to_running", "running_to_ready")}  # fmt: skip
    for user in users:
        for session in pdb.sessions(user):
            key = f"{user}/{session.server_name}"
            if key not in requested_at:
                continue
            at = {}
            for h in session.history:
                at.setdefault(h.status, _epoch(h.at))
            pending, sched = at.get(m.SessionStatus.PENDING), at.get(m.SessionStatus.SCHEDULED)
            prep, running = at.get(m.SessionStatus.PREPARING), at.get(m.SessionStatus.RUNNING)
            if None in (pending, sched, prep, running):
                continue
            out["request_to_pending"].append(pending - requested_at[key])
            out["queued"].append(sched - pending)
            out["scheduled_to_preparing"].append(prep - sched)
            out["preparing_to_running"].append(running - prep)
            if key in ready_at:
                out["running_to_ready"].append(ready_at[key] - running)
    return out


def _epoch(value: dt.datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def run_docker(args, root: Path, run_id: str, res: Results, hubs: list[Hub], budget_end: float) -> None:
    cpu, mem = args.cpu, args.mem
    pdb = docker_pdb(root / "product-docker", cpu, mem)
    prefix = f"benchspawn-{run_id}"
    ours_hub = Hub(root / "hub-ours", ours_config(pdb, args.scheduler_interval) + (args.ours_config or ""))
    base_hub = Hub(root / "hub-baseline", baseline_config(pdb, prefix, cpu, f"{mem.rstrip('mM')}M",
                                                          args.scheduler_interval))  # fmt: skip
    hubs += [ours_hub, base_hub]
    log(f"starting the hubs (ours: {ours_hub.url}, baseline: {base_hub.url})")
    ours_hub.start()
    base_hub.start()
    runners = {
        "ours": Runner("ours", ours_hub, {"preset": "bench"}),
        "baseline": Runner("baseline", base_hub, {}),
    }
    seq_user = "bench-seq"
    conc_users = [f"bench-c{i}" for i in range(1, args.concurrency + 1)]
    for name in [seq_user, *conc_users]:
        pdb.user(f"{name}@bench.example", policy="bench", username=name)
        for r in runners.values():
            r.add_user(name)

    requested_at: dict[str, float] = {}  # wall clock, for ours' phase breakdown
    ready_at: dict[str, float] = {}

    def timed(label: str, user: str, server: str) -> float | None:
        runner = runners[label]
        wall0 = time.time()
        try:
            t = runner.spawn_and_wait(user, server)
        except Exception as e:  # noqa: BLE001 - counted and reported
            log(f"{label}: {e}")
            res.failures[label] += 1
            t = None
        if label == "ours" and server != "warmup":
            requested_at[f"{user}/{server}"] = wall0
            if t is not None:
                ready_at[f"{user}/{server}"] = wall0 + t
        if t is not None and server != "warmup":
            try:
                record_timeline(label, user, server, wall0, wall0 + t)
            except Exception as e:  # noqa: BLE001 - extra information only
                log(f"{label}: no timeline for {user}/{server}: {e}")
        runner.stop_and_wait([(user, server)])
        return t

    def record_timeline(label: str, user: str, server: str, requested: float, ready: float) -> None:
        if label == "ours":
            container = pdb.session(user, server).container_id
        else:
            # The only baseline container running now (sequential); its name escapes the user's.
            out = subprocess.run(
                ["docker", "ps", "-q", "--filter", f"name=^{prefix}-"], capture_output=True, text=True, timeout=30
            ).stdout.split()
            if len(out) != 1:
                raise RuntimeError(f"expected one running baseline container, found {len(out)}")
            container = out[0]
        started_at, listening = container_timeline(container)
        line = res.timeline[label]
        if started_at is not None:
            line["to_container_start"].append(started_at - requested)
        if started_at is not None and listening is not None:
            line["container_start_to_listening"].append(listening - started_at)
        if listening is not None:
            line["listening_to_ready"].append(ready - listening)

    def check_budget() -> None:
        if time.monotonic() > budget_end:
            raise Abort("the time budget for the Docker part is spent")

    try:
        # Warm-up: one-time costs (agent registration, the scheduler's start, first engine calls).
        for label in ("baseline", "ours"):
            t = timed(label, seq_user, "warmup")
            res.warmup[label] = round(t, 3) if t is not None else None
            log(f"{label}: warm-up spawn {t if t is None else round(t, 2)} s")

        for i in range(args.seq):
            order = ("baseline", "ours") if i % 2 == 0 else ("ours", "baseline")
            for label in order:
                check_budget()
                t = timed(label, seq_user, f"seq{i}")
                if t is not None:
                    res.seq[label].append(t)
                log(f"{label}: sequential #{i + 1}: {t if t is None else round(t, 2)} s")

        for rnd in range(args.conc_rounds):
            order = ("baseline", "ours") if rnd % 2 == 0 else ("ours", "baseline")
            for label in order:
                check_budget()
                runner = runners[label]
                server = f"conc{rnd}"
                wall0 = time.time()
                t0 = time.monotonic()
                times, failed = concurrent_batch(runner, conc_users, server)
                batch = time.monotonic() - t0
                res.failures[label] += failed
                res.conc[label].extend(times)
                if not failed:
                    res.conc_batch[label].append(batch)
                if label == "ours":
                    for u in conc_users:
                        requested_at[f"{u}/{server}"] = wall0
                log(f"{label}: concurrent round {rnd + 1}: {sorted(round(x, 2) for x in times)} s "
                    f"(batch {batch:.2f} s, {failed} failed)")  # fmt: skip
                runner.stop_and_wait([(u, server) for u in conc_users])
    finally:
        try:
            phases = phase_breakdown(pdb, [seq_user], requested_at, ready_at)
            res.phases = {k: v for k, v in phases.items() if v}
        except Exception as e:  # noqa: BLE001 - the breakdown is extra information
            log(f"phase breakdown failed: {e}")
        for hub in (ours_hub, base_hub):
            hub.stop()
        remove_containers(pdb, prefix)
        pdb.close()


def _parse_docker_time(text: str) -> float | None:
    """Docker's RFC 3339 time with nanoseconds ('2024-06-11T22:05:24.123456789Z') as epoch seconds."""
    text = text.strip()
    if not text or text.startswith("0001-"):
        return None
    date, _, frac = text.rstrip("Z").partition(".")
    value = dt.datetime.fromisoformat(date).replace(tzinfo=dt.timezone.utc).timestamp()
    return value + (float("0." + frac) if frac else 0.0)


def container_timeline(container: str) -> tuple[float | None, float | None]:
    """(when the container started, when its Jupyter server said it is running), epoch seconds."""
    started = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}}", container], capture_output=True, text=True, timeout=30
    )
    started_at = _parse_docker_time(started.stdout) if started.returncode == 0 else None
    logs = subprocess.run(
        ["docker", "logs", "-t", container], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30
    )
    listening = None
    for line in logs.stdout.splitlines():
        if "is running at" in line:
            listening = _parse_docker_time(line.split(" ", 1)[0])
            break
    return started_at, listening


def container_ids_of_run(pdb: ProductDB, prefix: str) -> list[str]:
    """Containers this run created: ours by the session ids in this run's database, the
    baseline's by the run's name prefix (another run's containers are never touched)."""
    from sqlalchemy import select

    with pdb() as db:
        session_ids = {str(s) for s in db.scalars(select(m.Session.id))}
    ids = []
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={MANAGED_LABEL}=true", "--format", "{{.ID}} {{.Names}}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    for line in out.stdout.splitlines():
        cid, _, name = line.partition(" ")
        if name.removeprefix("backendai-session-") in session_ids:
            ids.append(cid)
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=^{prefix}-", "--format", "{{.ID}} {{.Names}}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    for line in out.stdout.splitlines():
        cid, _, name = line.partition(" ")
        if name.startswith(prefix + "-"):
            ids.append(cid)
    return ids


def remove_containers(pdb: ProductDB, prefix: str) -> None:
    try:
        ids = container_ids_of_run(pdb, prefix)
        if ids:
            log(f"removing {len(ids)} leftover container(s) of this run")
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)
    except Exception as e:  # noqa: BLE001 - best effort at the end
        log(f"could not list/remove this run's containers: {e}")


def hub_rss(hub: Hub, samples: int = 5, every: float = 0.5) -> float:
    """Median RSS (MiB) of the jupyterhub process alone over a few samples."""
    proc = psutil.Process(hub.process.pid)
    values = []
    for i in range(samples):
        values.append(proc.memory_info().rss / MiB)
        if i + 1 < samples:
            time.sleep(every)
    return round(statistics.median(values), 1)


def tree_rss(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return round(total / MiB, 1)


def session_pids(hub: Hub) -> list[int]:
    """The hub's descendants except its proxy: the local sessions."""
    try:
        children = psutil.Process(hub.process.pid).children(recursive=True)
    except psutil.Error:
        return []
    return [c.pid for c in children if c.pid != hub.proxy_pid]


def run_local(args, root: Path, res: Results, hubs: list[Hub], budget_end: float) -> None:
    pdb = local_pdb(root / "product-local")
    hub = Hub(root / "hub-local", local_config(pdb, args.scheduler_interval))
    hubs.append(hub)
    log(f"starting the local hub ({hub.url})")
    hub.start()
    runner = Runner("local", hub, {"preset": "tiny"})
    per_user = 5
    n_users = -(-args.local // per_user)
    users = [f"bench-l{i}" for i in range(1, n_users + 1)]
    for name in users:
        pdb.user(f"{name}@bench.example", policy="bench", username=name)
        runner.add_user(name)
    targets = [(users[k // per_user], f"l{k}") for k in range(args.local)]
    res.local_target = len(targets)
    started: list[tuple[str, str]] = []
    seen_pids: set[int] = set()
    try:
        time.sleep(2)
        res.rss["idle"] = hub_rss(hub)
        log(f"local: hub RSS idle {res.rss['idle']} MiB")
        t_start = time.monotonic()
        deadline = min(budget_end, t_start + args.local_budget)
        retries = 0
        b = -args.local_batch
        while True:
            b += args.local_batch
            if b >= len(targets) or res.local_ready >= res.local_target:
                break
            if time.monotonic() > deadline:
                res.notes.append(
                    f"local: gave up after {args.local_budget:.0f} s with {res.local_ready} of {res.local_target} ready"
                )
                log(res.notes[-1])
                break
            batch = targets[b : b + args.local_batch]
            left = max(10.0, deadline - time.monotonic())
            errors: list[str] = []

            def one(pair, errors=errors, left=left):
                try:
                    runner.spawn_and_wait(*pair, timeout=min(READY_TIMEOUT_S, left))
                except Exception as e:  # noqa: BLE001
                    errors.append(str(e))

            threads = [threading.Thread(target=one, args=(p,), daemon=True) for p in batch]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=READY_TIMEOUT_S + 30)
            started += batch
            seen_pids.update(session_pids(hub))
            res.failures["local"] += len(errors)
            res.local_ready += len(batch) - len(errors)
            for err in errors:
                log(f"local: {err}")
            if errors and retries < res.local_target // 5 + 1:  # a failed spawn is tried again, a few at most
                for _ in errors:
                    retries += 1
                    targets.append((users[0], f"retry{retries}"))
            log(f"local: {res.local_ready}/{res.local_target} ready ({time.monotonic() - t_start:.0f} s)")
        res.local_start_s = round(time.monotonic() - t_start, 1)
        time.sleep(3)  # let the spawns' bookkeeping settle
        res.rss["local"] = hub_rss(hub)
        pids = session_pids(hub)
        seen_pids.update(pids)
        res.rss["local_sessions_total"] = tree_rss(pids)
        res.rss["proxy"] = tree_rss([hub.proxy_pid]) if hub.proxy_pid else None
        log(f"local: hub RSS with {res.local_ready} sessions {res.rss['local']} MiB "
            f"(sessions together {res.rss['local_sessions_total']} MiB, proxy {res.rss['proxy']} MiB)")  # fmt: skip
        stop_end = time.monotonic() + 180
        for pair in started:
            runner.stop(*pair)
        for pair in started:
            try:
                runner.wait_gone(*pair, timeout=max(5.0, stop_end - time.monotonic()))
            except Exception as e:  # noqa: BLE001
                log(f"local: {e}")
        time.sleep(2)
        res.rss["after_stop"] = hub_rss(hub)
        log(f"local: hub RSS after stopping them all {res.rss['after_stop']} MiB")
    finally:
        seen_pids.update(session_pids(hub))
        hub.stop()
        _kill_leftovers(seen_pids)
        pdb.close()


def _kill_leftovers(pids: set[int]) -> None:
    """Session processes this run started that outlived their hub: SIGTERM, then SIGKILL."""
    alive = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if "singleuser" in " ".join(p.cmdline()) or "jupyter" in " ".join(p.cmdline()):
                p.terminate()
                alive.append(p)
        except psutil.Error:
            pass
    if alive:
        log(f"terminating {len(alive)} leftover session process(es)")
        _, still = psutil.wait_procs(alive, timeout=10)
        for p in still:
            try:
                p.kill()
            except psutil.Error:
                pass


# -------------------------------------------------------------------------------------- report


def docker_problem() -> str | None:
    if not shutil.which("docker"):
        return "no docker client"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        return "no Docker engine answers"
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30).returncode != 0:
        return f"the session image {IMAGE} is not built (images/session/build-offline.sh)"
    return None


def figures(res: Results) -> dict[str, Any]:
    seq_o, seq_b = median(res.seq["ours"]), median(res.seq["baseline"])
    conc_o, conc_b = median(res.conc["ours"]), median(res.conc["baseline"])
    out: dict[str, Any] = {
        "seq_median_s_ours": seq_o,
        "seq_median_s_baseline": seq_b,
        "seq_ratio": ratio(seq_o, seq_b),
        "conc_median_s_ours": conc_o,
        "conc_median_s_baseline": conc_b,
        "conc_ratio": ratio(conc_o, conc_b),
        "conc_batch_median_s_ours": median(res.conc_batch["ours"]),
        "conc_batch_median_s_baseline": median(res.conc_batch["baseline"]),
        "seq_n": {k: len(v) for k, v in res.seq.items()},
        "conc_n": {k: len(v) for k, v in res.conc.items()},
        "warmup_s": res.warmup,
        "failures": res.failures,
        "ours_phase_median_s": {k: median(v) for k, v in res.phases.items()},
        "seq_timeline_median_s": {
            label: {k: median(v) for k, v in parts.items()} for label, parts in res.timeline.items()
        },
        "hub_rss_mib_idle": res.rss.get("idle"),
        "hub_rss_mib_local": res.rss.get("local"),
        "hub_rss_mib_after_stop": res.rss.get("after_stop"),
        "local_sessions_ready": res.local_ready,
        "local_sessions_target": res.local_target,
        "local_start_s": res.local_start_s,
    }
    if res.local_target == 50:
        out["hub_rss_mib_50_local"] = res.rss.get("local")
    return out


def table(f: dict[str, Any]) -> str:
    def s(v):
        return "-" if v is None else f"{v:.2f}"

    lines = [
        "",
        f"{'spawn → ready (median s)':<28}{'ours':>10}{'baseline':>10}{'ours/base':>11}",
        f"{'sequential':<28}{s(f['seq_median_s_ours']):>10}{s(f['seq_median_s_baseline']):>10}{s(f['seq_ratio']):>11}",
        f"{'concurrent (per spawn)':<28}{s(f['conc_median_s_ours']):>10}"
        f"{s(f['conc_median_s_baseline']):>10}{s(f['conc_ratio']):>11}",
        f"{'concurrent (whole batch)':<28}{s(f['conc_batch_median_s_ours']):>10}"
        f"{s(f['conc_batch_median_s_baseline']):>10}"
        f"{s(ratio(f['conc_batch_median_s_ours'], f['conc_batch_median_s_baseline'])):>11}",
        f"  samples: sequential {f['seq_n']}, concurrent {f['conc_n']}; warm-up (not counted) {f['warmup_s']}",
        f"  failures: {f['failures']}",
    ]
    if f["ours_phase_median_s"]:
        lines.append("  ours, sequential, median s per phase: "
                     + ", ".join(f"{k} {s(v)}" for k, v in f["ours_phase_median_s"].items()))  # fmt: skip
    tl = f["seq_timeline_median_s"]
    if any(v is not None for parts in tl.values() for v in parts.values()):
        lines.append("  sequential, median s: request → container started → server listening → hub says ready")
        for label in ("ours", "baseline"):
            parts = tl[label]
            lines.append(f"    {label:<9} " + ", ".join(f"{k} {s(v)}" for k, v in parts.items()))
    lines += [
        "",
        f"{'hub process RSS (MiB)':<28}{'value':>10}",
        f"{'no session':<28}{s(f['hub_rss_mib_idle']):>10}",
        f"{str(f['local_sessions_ready']) + ' local sessions':<28}{s(f['hub_rss_mib_local']):>10}",
        f"{'after stopping them':<28}{s(f['hub_rss_mib_after_stop']):>10}",
        f"  local sessions ready: {f['local_sessions_ready']} of {f['local_sessions_target']}"
        f" in {f['local_start_s']} s",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 3 sequential, 2 concurrent, 10 local sessions")
    p.add_argument("--seq", type=int, help="sequential spawns per spawner (default 10)")
    p.add_argument("--concurrency", type=int, help="users spawning at once (default 5)")
    p.add_argument("--conc-rounds", type=int, help="concurrent batches per spawner (default 3)")
    p.add_argument("--local", type=int, help="local sessions for the memory figure (default 50)")
    p.add_argument("--local-batch", type=int, default=5, help="local sessions started at once (default 5)")
    p.add_argument("--local-budget", type=float, help="seconds to start the local sessions (default 600)")
    p.add_argument("--budget", type=float, default=2400, help="seconds for the whole run (default 2400)")
    p.add_argument("--cpu", type=float, default=0.5, help="CPU of each Docker session (default 0.5)")
    p.add_argument("--mem", default="512m", help="memory of each Docker session (default 512m)")
    p.add_argument("--scheduler-interval", type=float, default=None,
                   help="the spawner's scheduler_interval (default: the trait's default)")  # fmt: skip
    p.add_argument(
        "--ours-config",
        help="configuration lines appended to ours' hub, for diagnosis "
        "(e.g. 'c.DockerSessionSpawner.ssh_enabled = False')",
    )
    p.add_argument("--skip-docker", action="store_true")
    p.add_argument("--skip-local", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the run's directory (logs) even on success")
    a = p.parse_args(argv)
    quick = {"seq": 3, "concurrency": 2, "conc_rounds": 1, "local": 10, "local_budget": 180}
    full = {"seq": 10, "concurrency": 5, "conc_rounds": 3, "local": 50, "local_budget": 600}
    for key, value in (quick if a.quick else full).items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    return a


def _on_signal(signum, _frame):
    raise Abort(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    run_id = secrets.token_hex(4)
    root = Path(tempfile.mkdtemp(prefix=f"bench-spawn-{run_id}-"))
    started = time.monotonic()
    budget_end = started + args.budget
    res = Results()
    hubs: list[Hub] = []
    ok = True
    log(f"run {run_id} in {root}")
    try:
        if not args.skip_docker:
            problem = docker_problem()
            if problem:
                raise RuntimeError(f"cannot measure the Docker spawners: {problem}")
            run_docker(args, root, run_id, res, hubs, budget_end)
        if not args.skip_local:
            run_local(args, root, res, hubs, budget_end)
    except (Abort, Exception) as e:  # noqa: BLE001 - report what was measured, then fail
        ok = False
        log(f"ABORTED: {type(e).__name__}: {e}")
        res.notes.append(f"aborted: {e}")
        for hub in hubs:
            if hub.running:
                log(f"hub log tail ({hub.dir.name}):\n{hub.log_tail(40)}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for hub in hubs:
            hub.stop()
        keep_or_remove(root, ok=ok, keep=args.keep)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    report(figures(res), res.notes, started, table)
    return 0 if ok else 1


def keep_or_remove(root: Path, *, ok: bool, keep: bool) -> None:
    """Remove a run's directory, unless the run failed or ``--keep`` asks to keep its hub logs."""
    if ok and not keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        log(f"the run's directory (hub logs) is kept: {root}")


def report(f: dict[str, Any], notes: list[str], started: float, table: Any) -> None:
    """Print a run's table, then its figures as the last line (JSON)."""
    f["elapsed_s"] = round(time.monotonic() - started, 1)
    if notes:
        f["notes"] = notes
    print(table(f))
    print(json.dumps(f))


if __name__ == "__main__":
    sys.exit(main())
