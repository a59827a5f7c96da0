"""Sessions on Kubernetes: spawn → ready against plain KubeSpawner, and 1,000 sessions placed at once.

Run from the repository root, as root: ``python benchmarks/bench_kubernetes.py`` (``--spawns N``,
default 5; ``--sessions N`` and ``--nodes N``, default 1000 each). It needs what the Kubernetes
tests need (testing/k8s/: root, cgroup v1, the host's Docker engine, Kubernetes built by
testing/k8s/build.sh, the image ``jupyter-backendai-session:local``) and ``configurable-http-proxy``.
It brings up the tests' cluster twice, measures, and tears it down (restoring the host), on
errors and signals too. Takes about ten minutes; not part of CI.

1. **Spawn → ready** on the two real nodes, one image, through a real hub and proxy each: from
   the spawn request (``POST /hub/api/users/<u>/servers/<name>``) to ``ready`` in
   ``GET /hub/api/users/<u>`` (polled every 0.1 s), N sequential spawns each, alternately (ABBA),
   after one warm-up each (reported, not counted), every server stopped and its pod gone before
   the next. The hubs listen on the nodes' bridge, where pods reach their API.

   * **ours**: ``backendai-kubernetes`` as tests/hub/test_sessions_kubernetes.py configures it
     (preset 1 CPU / 512 MiB, requests = limits, SSH on: a Secret and a NodePort Service per
     session, the pod pinned by ``nodeName``);
   * **plain**: KubeSpawner with the same image, command, uid, CPU and memory limits and
     guarantees, in a namespace of its own; the kube-scheduler places its pods.

2. **Placement at scale** on ``--nodes`` simulated nodes (no real ones; testing/k8s/fake_kubelet.py:
   a pod bound to one turns Running, nothing runs): ``--sessions`` sessions asked for at once, and
   the time until every one is placed and its pod Running.

   * **ours**: ``KubeSessionSpawner.start()`` of every session at once, in one process (as one hub
     runs them): admission, the queue (FIFO), placement, the pod pinned with ``nodeName``, its
     start awaited until the pod runs. SSH off (plain makes no Service either).
   * **plain**: ``KubeSpawner.start()`` of as many pods at once, in one process: no admission, no
     queue; the kube-scheduler places them. KubeSpawner's start returns when its pod runs.

   Both wait only for the pods (no server answers on a simulated node). The fair order is checked:
   the scheduler must place sessions in the order they were queued.

The last line printed is one JSON object with ``spawn_ratio`` (ours / plain, goal ≤ 1.05) and
``placement_ratio`` (ours / plain, goal ≤ 1.2). Every wait is bounded; traffic goes to 127.0.0.1
and to the cluster's own addresses in 10.231.0.0/16 (pods on 10.231.64.0/24 and 10.231.65.0/24,
simulated pods on loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # for testing.k8s / testing.sessions

from bench_spawn import Abort, Runner, common_config, keep_or_remove, log, median, ratio, report  # noqa: E402

from jupyter_backendai.db import admin  # noqa: E402
from jupyter_backendai.db import models as m  # noqa: E402
from testing.db import use_fresh_db_key  # noqa: E402
from testing.hub import Hub  # noqa: E402
from testing.k8s import HOST_IP, IMAGE, NODE_LABEL, Cluster, cluster_problem, running_cluster  # noqa: E402
from testing.sessions import ProductDB, hub_config  # noqa: E402

CPU = 1
MEM = "512m"
MEM_BYTES = 512 * 1024**2
GOAL_SPAWN = 1.05
GOAL_PLACEMENT = 1.2
QUIET_TIMEOUT_S = 90.0
PLACE_TIMEOUT_S = 600.0


# ------------------------------------------------------------------------------ configuration


def product_db(directory: Path, users: list[str], max_sessions: int = 0, url: str | None = None) -> ProductDB:
    directory.mkdir(parents=True, exist_ok=True)
    pdb = ProductDB(directory, url=url)

    def setup(db):
        admin.create_policy(db, "bench", allowed_vfolder_hosts=["local"], max_concurrent_sessions=max_sessions)
        admin.create_preset(db, "small", {"cpu": CPU, "mem": MEM}, shared_memory="64m")
        admin.upsert_image(
            db,
            IMAGE,
            labels={"ai.backend.resource.min.cpu": "0.5", "ai.backend.resource.min.mem": "256m"},
            installed=True,
        )

    pdb.setup(setup)
    for name in users:
        pdb.user(f"{name}@bench.example", policy="bench", username=name)
    return pdb


def ours_config(pdb: ProductDB, namespace: str) -> str:
    """As tests/hub/test_sessions_kubernetes.py's hub."""
    return hub_config(
        pdb,
        "backendai-kubernetes",
        f"""
c.KubeSessionSpawner.namespace = {namespace!r}
c.KubeSessionSpawner.agent_node_selector = {NODE_LABEL!r}
c.KubeSessionSpawner.image_pull_policy = "Never"
c.Spawner.http_timeout = 120
c.JupyterHub.hub_ip = {HOST_IP!r}
""",
    )


def plain_config(pdb: ProductDB, namespace: str) -> str:
    return (
        common_config(pdb, None)
        + f"""
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.JupyterHub.hub_ip = {HOST_IP!r}
c.KubeSpawner.namespace = {namespace!r}
c.KubeSpawner.image = {IMAGE!r}
c.KubeSpawner.image_pull_policy = "Never"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.uid = 1000
c.KubeSpawner.gid = 1000
c.KubeSpawner.cpu_limit = {float(CPU)!r}
c.KubeSpawner.cpu_guarantee = {float(CPU)!r}
c.KubeSpawner.mem_limit = {MEM_BYTES!r}
c.KubeSpawner.mem_guarantee = {MEM_BYTES!r}
"""
    )


# ----------------------------------------------------------------------------------- spawn → ready


def wait_quiet(cluster: Cluster, namespaces: list[str], timeout: float = QUIET_TIMEOUT_S) -> None:
    """Until no pod is left in the namespaces: the next spawn starts on calm nodes."""
    deadline = time.monotonic() + timeout
    while True:
        left = sum(len(cluster.pods(ns)) for ns in namespaces)
        if not left:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{left} pod(s) still there after {timeout:.0f} s")
        time.sleep(0.3)


class Results:
    def __init__(self) -> None:
        self.spawn: dict[str, list[float]] = {"ours": [], "plain": []}
        self.warmup: dict[str, float | None] = {}
        self.failures: dict[str, int] = {"ours": 0, "plain": 0}
        self.ours_nodes: list[str] = []
        self.place: dict[str, float | None] = {"ours": None, "plain": None}
        self.place_failures: dict[str, int] = {"ours": 0, "plain": 0}
        self.fair_order: bool | None = None
        self.sessions = 0
        self.nodes = 0
        self.database = ""
        self.notes: list[str] = []


def run_spawns(args, cluster: Cluster, root: Path, res: Results, hubs: list[Hub]) -> None:
    ns_ours, ns_plain = cluster.create_namespace("bench-ours"), cluster.create_namespace("bench-plain")
    pdb = product_db(root / "product", ["bench-o", "bench-p"])
    try:
        ours_hub = Hub(root / "hub-ours", ours_config(pdb, ns_ours), env={"KUBECONFIG": str(cluster.kubeconfig)})
        plain_hub = Hub(root / "hub-plain", plain_config(pdb, ns_plain), env={"KUBECONFIG": str(cluster.kubeconfig)})
        hubs += [ours_hub, plain_hub]
        ours_hub.start()
        plain_hub.start()
        ours = Runner("ours", ours_hub, {"preset": "small"})
        plain = Runner("plain", plain_hub, {})
        ours.add_user("bench-o")
        plain.add_user("bench-p")

        def timed(label: str, server: str) -> float | None:
            runner, user = (ours, "bench-o") if label == "ours" else (plain, "bench-p")
            try:
                t = runner.spawn_and_wait(user, server)
            except Exception as e:  # noqa: BLE001 - counted and reported
                log(f"{label}: {e}")
                res.failures[label] += 1
                t = None
            if label == "ours" and t is not None and server != "warmup":
                res.ours_nodes.append(pdb.session(user, server).agent_id or "")
            runner.stop_and_wait([(user, server)])
            wait_quiet(cluster, [ns_ours, ns_plain])
            return t

        for label in ("plain", "ours"):
            t = timed(label, "warmup")
            res.warmup[label] = round(t, 3) if t is not None else None
            log(f"{label}: warm-up spawn {t if t is None else round(t, 2)} s")
        for i in range(args.spawns):
            for label in ("plain", "ours") if i % 2 == 0 else ("ours", "plain"):
                t = timed(label, f"s{i}")
                if t is not None:
                    res.spawn[label].append(t)
                log(f"{label}: spawn #{i + 1}: {t if t is None else round(t, 2)} s")
    finally:
        for hub in hubs:
            hub.stop()
        pdb.close()
        for ns in (ns_ours, ns_plain):
            cluster.delete_namespace(ns)


# ----------------------------------------------------------------------------------- placement


def mock_user(name: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, id=abs(hash(name)) % 10**6, url=f"/user/{name}/", settings={}, escaped_name=name)


MOCK_HUB = SimpleNamespace(public_host="", url="/hub/", base_url="/hub/", api_url=f"http://{HOST_IP}:8081/hub/api")


async def place_plain(cluster: Cluster, namespace: str, count: int) -> tuple[float, int]:
    from kubespawner import KubeSpawner

    spawners = []
    for i in range(count):
        sp = KubeSpawner(
            user=mock_user(f"plain{i}"), hub=MOCK_HUB, namespace=namespace, image=IMAGE, image_pull_policy="Never",
            cmd=["jupyterhub-singleuser"], uid=1000, gid=1000, cpu_limit=float(CPU), cpu_guarantee=float(CPU),
            mem_limit=MEM_BYTES, mem_guarantee=MEM_BYTES, start_timeout=int(PLACE_TIMEOUT_S),
            k8s_api_request_timeout=30,
        )  # fmt: skip
        spawners.append(sp)
    t0 = time.monotonic()
    results = await asyncio.gather(*(sp.start() for sp in spawners), return_exceptions=True)
    elapsed = time.monotonic() - t0
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        log(f"plain: {len(failed)} starts failed, e.g. {failed[0]!r}")
    await asyncio.gather(*(sp.stop(now=True) for sp in spawners), return_exceptions=True)
    await KubeSpawner._stop_all_reflectors()
    return elapsed, len(failed)


async def place_ours(pdb: ProductDB, namespace: str, users: list[str], per_user: int) -> tuple[float, int, bool]:
    from jupyter_backendai.hub.kube import KubeSessionSpawner

    common = dict(
        hub=MOCK_HUB, namespace=namespace, db_url=pdb.url, storage_root=str(pdb.storage_root),
        image_pull_policy="Never", ssh_enabled=False, agent_node_selector="k8s-test-cluster/simulated=true",
        scheduler_interval=0.5, start_pod_timeout=PLACE_TIMEOUT_S, k8s_api_request_timeout=30,
        usage_interval=3600.0, watch_server_start=False,  # no server runs on a simulated node
        pull_policy="skip",  # as plain: the kubelet finds the image (a simulated node lists none)
    )  # fmt: skip
    first = KubeSessionSpawner(user=mock_user(users[0]), name="warmup", **common)
    await first.ensure_agent()  # the nodes registered as agents before the clock starts
    first.scheduler.ensure_running()
    spawners = [
        KubeSessionSpawner(user=mock_user(u), name=f"p{i}", user_options={"preset": "small"}, **common)
        for i in range(per_user)
        for u in users
    ]
    t0 = time.monotonic()
    results = await asyncio.gather(*(sp.start() for sp in spawners), return_exceptions=True)
    elapsed = time.monotonic() - t0
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        log(f"ours: {len(failed)} starts failed, e.g. {failed[0]!r}")
    fair = fair_order(pdb)
    log(f"ours: steps {place_phases(pdb)}")
    await asyncio.gather(*(sp.stop(now=True) for sp in spawners if sp.session_id), return_exceptions=True)
    await KubeSessionSpawner._stop_all_reflectors()
    return elapsed, len(failed), fair


PLACE_PHASES = ("queued_to_scheduled", "scheduled_to_preparing", "preparing_to_running")


def place_phases(pdb: ProductDB) -> dict[str, dict[str, float | None]]:
    """Median and slowest seconds of each step of ours' sessions, from their status history."""
    steps: dict[str, list[float]] = {p: [] for p in PLACE_PHASES}
    with pdb() as db:
        for s in db.query(m.Session).all():
            at = {h.status: h.at for h in s.history}
            marks = [s.created_at, at.get(m.SessionStatus.SCHEDULED), at.get(m.SessionStatus.PREPARING),
                     at.get(m.SessionStatus.RUNNING)]  # fmt: skip
            for name, a, b in zip(PLACE_PHASES, marks, marks[1:], strict=False):
                if a is not None and b is not None:
                    steps[name].append((b - a).total_seconds())
    return {k: {"median": median(v), "max": round(max(v), 3) if v else None} for k, v in steps.items()}


def fair_order(pdb: ProductDB) -> bool:
    """Whether the scheduler placed sessions in the order they were queued (FIFO)."""
    with pdb() as db:
        rows = db.query(m.Session).all()
        placed = []
        for s in rows:
            at = next((h.at for h in s.history if h.status == m.SessionStatus.SCHEDULED), None)
            if at is not None:
                placed.append((s.created_at, at))
    placed.sort()
    return all(a[1] <= b[1] for a, b in zip(placed, placed[1:], strict=False))


def run_placement(args, root: Path, res: Results) -> None:
    res.sessions, res.nodes = args.sessions, args.nodes
    res.database = "postgresql" if args.postgres else "sqlite"
    users = [f"bench-{i}" for i in range(10)]
    per_user = max(1, args.sessions // len(users))
    log(f"placement: bringing up {args.nodes} simulated nodes")
    with running_cluster(
        real_nodes=0, sim_nodes=args.nodes, sim_args="--capacity cpu=32,memory=256Gi,pods=110 --no-events",
        node_grace="2m",
    ) as cluster:  # fmt: skip
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        ns_ours, ns_plain = cluster.create_namespace("bench-ours"), cluster.create_namespace("bench-plain")
        database = contextlib.nullcontext(None)
        if args.postgres:
            from testing.db import postgres_database

            database = postgres_database("jba_bench")
        with database as url:
            pdb = product_db(root / "placement", users, url=url)
            try:
                measure_placement(args, cluster, pdb, ns_ours, ns_plain, users, per_user, res)
            finally:
                pdb.close()
                for ns in (ns_ours, ns_plain):
                    cluster.delete_namespace(ns)


def run_bounded(coro, grace: float = 15.0):
    """``asyncio.run(coro)``, but the tasks it leaves (the hub's loops) get ``grace`` seconds to end
    once cancelled, and those that do not are named instead of waited for forever."""
    loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(coro)
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in left:
            task.cancel()
        if left:
            _done, stuck = loop.run_until_complete(asyncio.wait(left, timeout=grace))
            for task in stuck:
                frames = "; ".join(f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno}" for f in task.get_stack())
                log(f"a task did not end within {grace:.0f} s of its cancellation: {task.get_coro()!r} at {frames}")
        return result
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def measure_placement(args, cluster: Cluster, pdb: ProductDB, ns_ours, ns_plain, users, per_user, res) -> None:
    count = per_user * len(users)
    elapsed, failed = run_bounded(place_plain(cluster, ns_plain, count))
    res.place["plain"], res.place_failures["plain"] = round(elapsed, 3), failed
    log(f"plain: {count} pods Running in {elapsed:.2f} s ({failed} failed)")
    wait_quiet(cluster, [ns_plain], timeout=PLACE_TIMEOUT_S)
    elapsed, failed, fair = run_bounded(place_ours(pdb, ns_ours, users, per_user))
    res.place["ours"], res.place_failures["ours"], res.fair_order = round(elapsed, 3), failed, fair
    log(f"ours: {count} sessions placed and Running in {elapsed:.2f} s ({failed} failed)")


# -------------------------------------------------------------------------------------- report


def figures(res: Results) -> dict[str, Any]:
    o, p = median(res.spawn["ours"]), median(res.spawn["plain"])
    return {
        "spawn_ratio": ratio(o, p),
        "placement_ratio": ratio(res.place["ours"], res.place["plain"]),
        "spawn_ready_s_ours": o,
        "spawn_ready_s_plain": p,
        "spawns_ours_s": [round(x, 3) for x in res.spawn["ours"]],
        "spawns_plain_s": [round(x, 3) for x in res.spawn["plain"]],
        "ours_nodes": res.ours_nodes,
        "warmup_s": res.warmup,
        "failures": res.failures,
        "placement_s_ours": res.place["ours"],
        "placement_s_plain": res.place["plain"],
        "placement_failures": res.place_failures,
        "fair_order": res.fair_order,
        "sessions": res.sessions,
        "simulated_nodes": res.nodes,
        "database": res.database,
        "goals": {"spawn_ratio": GOAL_SPAWN, "placement_ratio": GOAL_PLACEMENT},
    }


def table(f: dict[str, Any]) -> str:
    def s(v):
        return "-" if v is None else f"{v:.2f}"

    def goal(v, limit):
        return "" if v is None else ("  (goal met)" if v <= limit else "  (goal missed)")

    return "\n".join(
        [
            "",
            f"{'spawn → ready, median s':<40}{'ours':>8}{'plain':>8}{'ours/plain':>12}",
            f"{'sequential, two real nodes, same image':<40}{s(f['spawn_ready_s_ours']):>8}"
            f"{s(f['spawn_ready_s_plain']):>8}{s(f['spawn_ratio']):>12}{goal(f['spawn_ratio'], GOAL_SPAWN)}",
            f"  samples ours {f['spawns_ours_s']} (on {f['ours_nodes']})",
            f"  samples plain {f['spawns_plain_s']}",
            f"  warm-up (not counted) {f['warmup_s']}; failures {f['failures']}",
            "",
            f"{'all placed and Running, s':<40}{'ours':>8}{'plain':>8}{'ours/plain':>12}",
            f"{f['sessions']} at once on {f['simulated_nodes']} simulated nodes".ljust(40)
            + f"{s(f['placement_s_ours']):>8}{s(f['placement_s_plain']):>8}{s(f['placement_ratio']):>12}"
            f"{goal(f['placement_ratio'], GOAL_PLACEMENT)}",
            f"  fair (FIFO) order kept: {f['fair_order']}; failures {f['placement_failures']};"
            f" ours' database {f['database']}",
            "",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spawns", type=int, default=5, help="sequential spawns per spawner (default 5)")
    p.add_argument("--sessions", type=int, default=1000, help="sessions asked for at once (default 1000)")
    p.add_argument("--nodes", type=int, default=1000, help="simulated nodes (default 1000)")
    p.add_argument("--skip-spawns", action="store_true", help="measure the placement only")
    p.add_argument("--skip-placement", action="store_true", help="measure the spawns only")
    p.add_argument(
        "--postgres",
        action=argparse.BooleanOptionalAction,
        default=bool(os.environ.get("BACKENDAI_TEST_POSTGRES_URL")),
        help="the placement's database on PostgreSQL (BACKENDAI_TEST_POSTGRES_URL; default when it is set)",
    )
    p.add_argument("--keep", action="store_true", help="keep the run's directory (hub logs) even on success")
    return p.parse_args(argv)


def _on_signal(signum, _frame):
    raise Abort(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    found = cluster_problem() or (None if shutil.which("configurable-http-proxy") else "no configurable-http-proxy")
    if found:
        print(f"cannot run: {found}", file=sys.stderr)
        return 2
    use_fresh_db_key()  # the run's databases have a key of their own, which the hubs inherit
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    root = Path(tempfile.mkdtemp(prefix=f"bench-kubernetes-{secrets.token_hex(4)}-"))
    started = time.monotonic()
    res = Results()
    hubs: list[Hub] = []
    ok = True
    try:
        if not args.skip_spawns:
            log("spawns: bringing up the cluster with two real nodes")
            with running_cluster() as cluster:
                run_spawns(args, cluster, root, res, hubs)
        if not args.skip_placement:
            run_placement(args, root, res)
    except (Abort, Exception) as e:  # noqa: BLE001 - report what was measured, then fail
        ok = False
        log(f"ABORTED: {type(e).__name__}: {e}")
        res.notes.append(f"aborted: {e}")
        for hub in hubs:
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


if __name__ == "__main__":
    sys.exit(main())
