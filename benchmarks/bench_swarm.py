"""Sessions on a Docker Swarm: spawn → ready against plain SwarmSpawner, and a node's loss.

Run from the repository root, as root: ``python benchmarks/bench_swarm.py`` (``--spawns N``,
default 5). It needs what the Swarm tests need (testing/swarm.py: root, ``ip``,
``nsenter``, ``iptables``, ``dockerd``, the image ``jupyter-backendai-session:local``) and
``configurable-http-proxy``. It builds the tests' swarm of three engines on this machine (each
in a network namespace of its own, addresses in 10.231.200.0/24), measures, and tears it all
down, on errors and signals too. Takes a few minutes; not part of CI.

1. **Spawn → ready** on one swarm and image, through a real hub and proxy: from the spawn
   request (``POST /hub/api/users/<u>/servers/<name>``) to ``ready`` in ``GET /hub/api/users/<u>``
   (polled every 0.1 s), N sequential spawns each, alternately (ABBA), after one warm-up each
   (reported, not counted), every server stopped and its service gone before the next. Two hubs
   run side by side on the nodes' bridge (as the Swarm tests' hub: sessions on the nodes reach
   its API there):

   * **ours**: ``backendai-swarm`` configured as tests/hub/test_sessions_swarm.py does (preset 1 CPU /
     512 MiB, agent capacity 2 CPU / 2 GiB per node, scheduler pass every 0.5 s, heartbeat 2 s);
   * **plain**: dockerspawner's ``SwarmSpawner`` with the same image, CPU and memory limits and
     reservations. Its docs run the hub as a swarm service on an overlay network and reach the
     server by its service name; this hub is not a swarm service (neither is ours), so the task
     uses its node's network, as dockerspawner's ``get_ip_and_port`` docstring says for host
     networking: ``network_name = "host"``, a port of its own, and ``get_ip_and_port`` answering
     the address of the node the swarm placed the task on. Ours runs sessions the same way.

2. **A node's loss**: the manager drained (sessions go to the two workers), one session of ours
   running on a worker, that worker's engine killed (SIGKILL, as the tests do). From the kill:
   until the session is ERROR ``agent lost`` in the database; until the hub no longer lists the
   server; and until the same session, asked for again by its user as soon as the hub lets them,
   went through the queue and is ready on the other worker (``node_loss_to_requeue_s``, goal
   ≤ 15 s). A session queued *before* the loss cannot show the queue moving: the lost node's
   capacity leaves with its sessions, so no room appears anywhere else.

The last line printed is one JSON object with the figures. Every wait is bounded, the traffic
goes to 127.0.0.1 and to the swarm's own 10.231.200.x addresses, and the hubs, their proxies,
the services and the swarm are all removed at the end.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # for testing.swarm / testing.sessions

from bench_spawn import (  # noqa: E402
    Abort,
    Runner,
    _parse_docker_time,
    common_config,
    keep_or_remove,
    log,
    median,
    ratio,
    report,
)
from sqlalchemy import select  # noqa: E402

from jupyter_backendai.db import admin  # noqa: E402
from jupyter_backendai.db import models as m  # noqa: E402
from testing.db import use_fresh_db_key  # noqa: E402
from testing.hub import Hub  # noqa: E402
from testing.sessions import ProductDB, hub_config  # noqa: E402
from testing.swarm import BRIDGE, BRIDGE_IP, IMAGE, Swarm, running_swarm, swarm_problem  # noqa: E402

CPU = 1
MEM = "512m"
MEM_BYTES = 512 * 1024**2
HEARTBEAT_S = 2
POLL_S = 2
QUIET_TIMEOUT_S = 60.0
LOSS_TIMEOUT_S = 120.0
GOAL_RATIO = 1.05
GOAL_REQUEUE_S = 15.0
PLAIN_PREFIX = "bench-plain"


# ------------------------------------------------------------------------------ hub configuration


def product_db(directory: Path) -> ProductDB:
    directory.mkdir(parents=True, exist_ok=True)
    pdb = ProductDB(directory)

    def setup(db):
        admin.create_policy(db, "bench", allowed_vfolder_hosts=["local"])  # no limits
        admin.create_preset(db, "small", {"cpu": CPU, "mem": MEM}, shared_memory="64m")
        admin.upsert_image(
            db,
            IMAGE,
            labels={"ai.backend.resource.min.cpu": "0.5", "ai.backend.resource.min.mem": "256m"},
            installed=True,
        )

    pdb.setup(setup)
    return pdb


def ours_config(pdb: ProductDB, swarm: Swarm, extra: str) -> str:
    """As tests/hub/test_sessions_swarm.py's hub."""
    return hub_config(
        pdb,
        "backendai-swarm",
        f"""
c.SwarmSessionSpawner.client_kwargs = {{"base_url": {swarm.manager.sock!r}}}
c.SwarmSessionSpawner.agent_capacity = {{"cpu": 2, "mem": "2g"}}
c.SwarmSessionSpawner.agent_heartbeat_interval = {HEARTBEAT_S}
c.Spawner.poll_interval = {POLL_S}
c.JupyterHub.hub_ip = {BRIDGE_IP!r}
{extra}
""",
    )


def plain_config(pdb: ProductDB, swarm: Swarm) -> str:
    # Configured through the subclass's own name: c.SwarmSpawner.* would reach ours as well.
    return (
        common_config(pdb, None)
        + f"""
from dockerspawner import SwarmSpawner
from jupyterhub.utils import random_port
from traitlets import default


class NodeNetworkSwarmSpawner(SwarmSpawner):
    \"\"\"Plain SwarmSpawner, its task on its node's network (dockerspawner's host-network recipe).\"\"\"

    @default("network_name")
    def _default_network_name(self):
        return "host"

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        return True  # no published port: the hub reaches the task at its node's address

    async def start(self):
        self.port = random_port()  # sessions on one node share its ports
        return await super().start()

    async def get_ip_and_port(self):
        task = await self.get_task()
        node = await self.docker("inspect_node", task["NodeID"])
        return node["Status"]["Addr"], self.port


c.JupyterHub.spawner_class = NodeNetworkSwarmSpawner
c.JupyterHub.hub_ip = {BRIDGE_IP!r}
c.Spawner.poll_interval = {POLL_S}
c.NodeNetworkSwarmSpawner.client_kwargs = {{"base_url": {swarm.manager.sock!r}}}
c.NodeNetworkSwarmSpawner.image = {IMAGE!r}
c.NodeNetworkSwarmSpawner.cmd = ["jupyterhub-singleuser"]
c.NodeNetworkSwarmSpawner.prefix = {PLAIN_PREFIX!r}
c.NodeNetworkSwarmSpawner.cpu_limit = {float(CPU)!r}
c.NodeNetworkSwarmSpawner.cpu_guarantee = {float(CPU)!r}
c.NodeNetworkSwarmSpawner.mem_limit = {MEM_BYTES!r}
c.NodeNetworkSwarmSpawner.mem_guarantee = {MEM_BYTES!r}
"""
    )


# ----------------------------------------------------------------------------------- measuring


def wait_quiet(swarm: Swarm, timeout: float = QUIET_TIMEOUT_S) -> None:
    """Until the swarm runs no service and no container: the next spawn starts on a calm swarm."""
    deadline = time.monotonic() + timeout
    while True:
        busy = swarm.manager.docker("service", "ls", "-q", check=False).stdout.split()
        for node in swarm.nodes:
            busy += node.docker("ps", "-q", check=False).stdout.split()
        if not busy:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the swarm still runs {len(busy)} service(s)/container(s) after {timeout:.0f} s")
        time.sleep(0.3)


PHASES = ("to_container_start", "container_start_to_listening", "listening_to_ready")


def container_timeline(swarm: Swarm, requested: float, ready: float) -> dict[str, float]:
    """Where a spawn's time went, for the one container the swarm runs now (spawns are
    sequential): request → container started → server listening → the hub says ready."""
    found = [(n, cid) for n in swarm.nodes for cid in n.docker("ps", "-q", check=False).stdout.split()]
    if len(found) != 1:
        raise RuntimeError(f"expected one running container on the swarm, found {len(found)}")
    node, cid = found[0]
    started = _parse_docker_time(node.docker("inspect", "-f", "{{.State.StartedAt}}", cid).stdout)
    logs = node.docker("logs", "-t", cid, check=False)
    heard = [
        _parse_docker_time(line.split(" ", 1)[0])
        for line in (logs.stdout + "\n" + logs.stderr).splitlines()
        if "is running at" in line
    ]
    listening = min((t for t in heard if t is not None), default=None)
    if started is None or listening is None:
        raise RuntimeError("no start time or no 'is running at' line in the container's log")
    return dict(zip(PHASES, (started - requested, listening - started, ready - listening), strict=True))


def agent_rows(pdb: ProductDB) -> dict[str, m.Agent]:
    with pdb() as db:
        return {a.id: a for a in db.scalars(select(m.Agent))}


def wait_until(check, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout:.0f} s: {what}")
        time.sleep(every)


class Results:
    def __init__(self) -> None:
        self.spawn: dict[str, list[float]] = {"ours": [], "plain": []}
        self.warmup: dict[str, float | None] = {}
        self.failures: dict[str, int] = {"ours": 0, "plain": 0}
        self.ours_nodes: list[int] = []
        self.timeline: dict[str, dict[str, list[float]]] = {k: {p: [] for p in PHASES} for k in ("ours", "plain")}
        self.loss: dict[str, float | None] = {
            "node_loss_to_agent_lost_s": None,
            "node_loss_to_hub_forgot_s": None,
            "node_loss_to_requeue_s": None,
            "restart_spawn_ready_s": None,  # of the requeue: from asking again to ready
        }
        self.lost_reason: str | None = None
        self.notes: list[str] = []


def run_spawns(args, swarm: Swarm, pdb: ProductDB, ours: Runner, plain: Runner, res: Results, budget_end: float):
    node_by_id = {n.node_id: n.n for n in swarm.nodes}

    def timed(label: str, user: str, server: str) -> float | None:
        runner = ours if label == "ours" else plain
        wall0 = time.time()  # the containers' times are the engines' wall clock
        try:
            t = runner.spawn_and_wait(user, server)
        except Exception as e:  # noqa: BLE001 - counted and reported
            log(f"{label}: {e}")
            res.failures[label] += 1
            t = None
        if t is not None and server != "warmup":
            try:
                for phase, value in container_timeline(swarm, wall0, wall0 + t).items():
                    res.timeline[label][phase].append(value)
            except Exception as e:  # noqa: BLE001 - extra information only
                log(f"{label}: no timeline for {user}/{server}: {e}")
        if label == "ours" and t is not None and server != "warmup":
            agent = pdb.session(user, server).agent_id
            res.ours_nodes.append(node_by_id.get(agent, 0))
        runner.stop_and_wait([(user, server)])
        wait_quiet(swarm)
        return t

    for label, user in (("plain", "bench-p"), ("ours", "bench-o")):
        t = timed(label, user, "warmup")
        res.warmup[label] = round(t, 3) if t is not None else None
        log(f"{label}: warm-up spawn {t if t is None else round(t, 2)} s")
    for i in range(args.spawns):
        order = ("plain", "ours") if i % 2 == 0 else ("ours", "plain")
        for label in order:
            if time.monotonic() > budget_end:
                raise Abort("the time budget is spent")
            t = timed(label, "bench-o" if label == "ours" else "bench-p", f"s{i}")
            if t is not None:
                res.spawn[label].append(t)
            log(f"{label}: spawn #{i + 1}: {t if t is None else round(t, 2)} s")


def run_loss(swarm: Swarm, pdb: ProductDB, ours: Runner, res: Results) -> None:
    """Kill the engine of the worker that runs a session; time the session's end and its restart."""
    manager = swarm.manager
    manager.docker("node", "update", "--availability", "drain", manager.node_id)
    wait_until(
        lambda: not getattr(agent_rows(pdb).get(manager.node_id), "schedulable", True),
        30,
        "the drained manager unschedulable",
    )
    user, server = "bench-loss", "a"
    t = ours.spawn_and_wait(user, server)
    log(f"loss: session {user}/{server} ready in {t:.2f} s")
    first = pdb.session(user, server)
    victim = next(n for n in swarm.nodes if n.node_id == first.agent_id)
    other = next(n for n in swarm.nodes if n is not victim and n is not manager)
    log(f"loss: killing the engine of node {victim.n}, which runs it")

    victim.kill_engine()
    t0 = time.monotonic()
    deadline = t0 + LOSS_TIMEOUT_S
    while res.loss["node_loss_to_hub_forgot_s"] is None:
        now = time.monotonic()
        if res.loss["node_loss_to_agent_lost_s"] is None:
            row = pdb.session(user, server)
            if row.status in m.FINISHED_SESSION_STATUSES:
                res.loss["node_loss_to_agent_lost_s"] = round(now - t0, 3)
                res.lost_reason = f"{row.status.name} {row.status_info!r}"
                log(f"loss: the session is {res.lost_reason} after {now - t0:.2f} s")
        if ours.server_model(user, server) is None:
            res.loss["node_loss_to_hub_forgot_s"] = round(now - t0, 3)
            log(f"loss: the hub forgot the server after {now - t0:.2f} s")
            break
        if now > deadline:
            raise RuntimeError(f"the lost session did not end within {LOSS_TIMEOUT_S:.0f} s")
        time.sleep(0.1)

    # The user asks for it again as soon as the hub lets them (a stop may still be settling).
    while True:
        asked = time.monotonic()
        r = ours.hub.api("POST", f"/users/{user}/servers/{server}", json=ours.options, timeout=60)
        if r.status_code in (201, 202):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the hub refused to start {user}/{server} again: {r.status_code} {r.text[:200]}")
        time.sleep(0.2)
    wait_until(lambda: (ours.server_model(user, server) or {}).get("ready"), max(5, deadline - time.monotonic()),
               f"{user}/{server} ready again", every=0.1)  # fmt: skip
    res.loss["node_loss_to_requeue_s"] = round(time.monotonic() - t0, 3)
    res.loss["restart_spawn_ready_s"] = round(time.monotonic() - asked, 3)
    again = pdb.session(user, server)
    if again.id == first.id or again.agent_id != other.node_id:
        raise RuntimeError(f"the session started again on {again.agent_id}, not on the other worker {other.node_id}")
    log(f"loss: ready again on node {other.n} after {res.loss['node_loss_to_requeue_s']:.2f} s")
    if res.loss["node_loss_to_agent_lost_s"] is None:  # ended between two looks: read when
        res.notes.append("the session's end was seen only after the hub forgot it")
    ours.stop_and_wait([(user, server)])


# -------------------------------------------------------------------------------------- report


def figures(res: Results) -> dict[str, Any]:
    o, p = median(res.spawn["ours"]), median(res.spawn["plain"])
    return {
        "spawn_ready_s_ours": o,
        "spawn_ready_s_plain": p,
        "ratio": ratio(o, p),
        **res.loss,
        "lost_session": res.lost_reason,
        "spawns_ours_s": [round(x, 3) for x in res.spawn["ours"]],
        "spawns_plain_s": [round(x, 3) for x in res.spawn["plain"]],
        "ours_nodes": res.ours_nodes,
        "timeline_median_s": {k: {p: median(v) for p, v in parts.items()} for k, parts in res.timeline.items()},
        "warmup_s": res.warmup,
        "failures": res.failures,
        "heartbeat_s": HEARTBEAT_S,
        "poll_s": POLL_S,
        "goals": {"ratio": GOAL_RATIO, "node_loss_to_requeue_s": GOAL_REQUEUE_S},
    }


def table(f: dict[str, Any]) -> str:
    def s(v):
        return "-" if v is None else f"{v:.2f}"

    def goal(v, limit):
        return "" if v is None else ("  (goal met)" if v <= limit else "  (goal missed)")

    return "\n".join(
        [
            "",
            f"{'spawn → ready, median s':<34}{'ours':>8}{'plain':>8}{'ours/plain':>12}",
            f"{'sequential, same swarm and image':<34}{s(f['spawn_ready_s_ours']):>8}"
            f"{s(f['spawn_ready_s_plain']):>8}{s(f['ratio']):>12}{goal(f['ratio'], GOAL_RATIO)}",
            f"  samples ours {f['spawns_ours_s']} (on nodes {f['ours_nodes']})",
            f"  samples plain {f['spawns_plain_s']}",
            f"  warm-up (not counted) {f['warmup_s']}; failures {f['failures']}",
            "  median s: request → container started → server listening → the hub says ready",
            *(
                f"    {k:<6} " + ", ".join(f"{p} {s(v)}" for p, v in parts.items())
                for k, parts in f["timeline_median_s"].items()
            ),
            "",
            f"{'after a worker engine killed, s':<34}{'ours':>8}",
            f"{'session ended (database)':<34}{s(f['node_loss_to_agent_lost_s']):>8}  {f['lost_session'] or ''}",
            f"{'hub forgot the server':<34}{s(f['node_loss_to_hub_forgot_s']):>8}",
            f"{'started again, ready elsewhere':<34}{s(f['node_loss_to_requeue_s']):>8}"
            f"{goal(f['node_loss_to_requeue_s'], GOAL_REQUEUE_S)}",
            f"  of which asking again → ready {s(f['restart_spawn_ready_s'])} s;"
            f" heartbeat {f['heartbeat_s']} s, hub poll {f['poll_s']} s",
            "",
        ]
    )


def problem(replace_stale: bool) -> str | None:
    found = swarm_problem()
    if found:
        return found
    # The fixture removes what it finds of an earlier swarm: a test run's swarm up right now
    # would go down with it. Only on request, for what an interrupted run left behind.
    if Path(f"/sys/class/net/{BRIDGE}").exists() and not replace_stale:
        return (
            f"a swarm of the tests is up (bridge {BRIDGE}): wait until that run ends, or pass "
            "--replace-stale if an interrupted run left it"
        )
    if not shutil.which("configurable-http-proxy"):
        return "no configurable-http-proxy on PATH"
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spawns", type=int, default=5, help="sequential spawns per spawner (default 5)")
    p.add_argument("--budget", type=float, default=1200, help="seconds for the spawns before giving up (default 1200)")
    p.add_argument("--skip-loss", action="store_true", help="measure the spawns only")
    p.add_argument("--ours-config", default="", help="configuration lines appended to ours' hub, for diagnosis")
    p.add_argument("--replace-stale", action="store_true", help="tear down a swarm an interrupted test run left behind")
    p.add_argument("--keep", action="store_true", help="keep the run's directory (hub logs) even on success")
    return p.parse_args(argv)


def _on_signal(signum, _frame):
    raise Abort(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    found = problem(args.replace_stale)
    if found:
        print(f"cannot run: {found}", file=sys.stderr)
        return 2
    use_fresh_db_key()  # the run's database has a key of its own, which the hubs inherit
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    root = Path(tempfile.mkdtemp(prefix=f"bench-swarm-{secrets.token_hex(4)}-"))
    started = time.monotonic()
    res = Results()
    hubs: list[Hub] = []
    pdb: ProductDB | None = None
    ok = True
    log(f"run in {root}; building the swarm")
    try:
        with running_swarm() as swarm:
            try:
                log(f"swarm ready after {time.monotonic() - started:.0f} s")
                pdb = product_db(root / "product")
                for name in ("bench-o", "bench-p", "bench-loss"):
                    pdb.user(f"{name}@bench.example", policy="bench", username=name)
                ours_hub = Hub(root / "hub-ours", ours_config(pdb, swarm, args.ours_config))
                plain_hub = Hub(root / "hub-plain", plain_config(pdb, swarm))
                hubs += [ours_hub, plain_hub]
                ours_hub.start()
                plain_hub.start()
                ours = Runner("ours", ours_hub, {"preset": "small"})
                plain = Runner("plain", plain_hub, {})
                for name in ("bench-o", "bench-loss"):
                    ours.add_user(name)
                plain.add_user("bench-p")
                run_spawns(args, swarm, pdb, ours, plain, res, time.monotonic() + args.budget)
                plain_hub.stop()
                if not args.skip_loss:
                    run_loss(swarm, pdb, ours, res)
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
                    hub.stop()  # cleanup_servers: their services go first, then the swarm
            log("tearing the swarm down")
    except (Abort, Exception) as e:  # noqa: BLE001 - the swarm's own bring-up failed
        ok = False
        log(f"ABORTED: {type(e).__name__}: {e}")
        res.notes.append(f"aborted: {e}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if pdb is not None:
            pdb.close()
        keep_or_remove(root, ok=ok, keep=args.keep)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    report(figures(res), res.notes, started, table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
