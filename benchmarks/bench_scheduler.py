"""How fast is one scheduling pass? 10,000 pending sessions, 1,000 users, 100 agents.

Run from the repository root: ``python benchmarks/bench_scheduler.py``. The cluster has room for
roughly half of the requests, so a pass both places and refuses. Each scheduler runs a few times
(bounded by a time budget) and the median pass is reported; a "decision" is one pending
session the scheduler considered, placed or left pending. The last line printed is one JSON
object with the figures, for CI to read.
"""

from __future__ import annotations

import json
import random
import signal
import statistics
import sys
import time
from decimal import Decimal

from jupyter_backendai.core.gpu import GpuDevice
from jupyter_backendai.core.scheduling import AgentState, PendingSession, ScheduleResult, schedule
from jupyter_backendai.core.slots import ResourceSlots

SEED = 20240611
SESSIONS = 10_000
USERS = 1_000
AGENTS = 100
REPEATS = 3
BUDGET_S = 60.0  # stop repeating once the whole run has taken this long
HARD_LIMIT_S = 300  # and give up altogether after this
GiB = 1024**3


def make_cluster(rng: random.Random) -> tuple[list[AgentState], dict[str, ResourceSlots]]:
    """Agents of mixed sizes, a third with 4 or 8 GPUs, each already partly busy."""
    agents = []
    usage: dict[str, ResourceSlots] = {}
    for i in range(AGENTS):
        cpu = rng.choice([64, 128, 192, 256])
        mem = cpu * rng.choice([2, 4, 8]) * GiB
        ngpu = rng.choice([0, 0, 4, 8])
        capacity = {"cpu": cpu, "mem": mem}
        gpus: list[GpuDevice] = []
        busy_cpu = rng.randrange(0, cpu // 4)
        busy_mem = rng.randrange(0, mem // 4 // GiB) * GiB
        occupied: dict[str, object] = {"cpu": busy_cpu, "mem": busy_mem}
        if ngpu:
            capacity["cuda.shares"] = ngpu
            gpus = [GpuDevice(str(d), Decimal(1), Decimal(rng.choice(["0", "0", "0.25", "0.5"]))) for d in range(ngpu)]
            occupied["cuda.shares"] = sum(g.shares_used for g in gpus)
        busy = ResourceSlots(occupied)
        agents.append(AgentState(f"agent-{i:03d}", ResourceSlots(capacity), busy, tuple(gpus)))
        owner = f"user-{rng.randrange(USERS):04d}"  # what is already running belongs to someone
        usage[owner] = usage.get(owner, ResourceSlots()) + busy
    return agents, usage


def make_pending(rng: random.Random) -> list[PendingSession]:
    """Mostly CPU sessions of many sizes; one in five asks for a GPU share (0.1 to 2 GPUs)."""
    pending = []
    for i in range(SESSIONS):
        request: dict[str, object] = {
            "cpu": rng.choice(["0.5", 1, 2, 4, 8]),
            "mem": rng.randint(1, 64) * GiB // 2,
        }
        if rng.random() < 0.2:
            request["cuda.shares"] = rng.choice(["0.1", "0.25", "0.33", "0.5", 1, "1.5", 2])
        user = f"user-{rng.randrange(USERS):04d}"
        pending.append(PendingSession(f"sess-{i:05d}", user, ResourceSlots(request), created=i))
    return pending


def check(result: ScheduleResult, agents: list[AgentState]) -> None:
    """No agent or GPU device ends up over its capacity (a cheap guard on the figures)."""
    by_id = {a.id: a for a in agents}
    occupied = {a.id: a.occupied for a in agents}
    device_used = {(a.id, d.id): d.shares_used for a in agents for d in a.gpus}
    for p in result.placements:
        occupied[p.agent_id] = occupied[p.agent_id] + p.slots
        for dev, amount in p.gpus.get("cuda.shares", {}).items():
            device_used[p.agent_id, dev] += amount
    for aid, occ in occupied.items():
        if not occ.fits_in(by_id[aid].capacity):
            raise SystemExit(f"agent {aid} over capacity: {occ} > {by_id[aid].capacity}")
    if any(used > 1 for used in device_used.values()):
        raise SystemExit("a GPU device is over capacity")


def drf_paper_example() -> tuple[int, int]:
    """Ghodsi et al. (2011): 9 CPUs, 18 GB; A's tasks <1 CPU, 4 GB>, B's <3 CPUs, 1 GB>."""
    pending = [PendingSession(f"A{i}", "A", ResourceSlots(cpu=1, mem="4g"), created=i) for i in range(50)]
    pending += [PendingSession(f"B{i}", "B", ResourceSlots(cpu=3, mem="1g"), created=50 + i) for i in range(50)]
    result = schedule(pending, [AgentState("node", ResourceSlots(cpu=9, mem="18g"))], scheduler="drf")
    got = [p.session_id[0] for p in result.placements]
    return got.count("A"), got.count("B")


def main() -> int:
    signal.alarm(HARD_LIMIT_S)
    started = time.perf_counter()
    rng = random.Random(SEED)
    agents, usage = make_cluster(rng)
    pending = make_pending(rng)
    runs = [
        ("fifo", "fifo", {"max_skips": None}),
        ("lifo", "lifo", {}),
        ("drf", "drf", {"user_usage": usage}),
        ("fifo_bounded", "fifo", {}),  # the default skip bound: stops early, so few decisions
    ]
    figures: dict[str, object] = {}
    header = f"{'scheduler':<24}{'decisions':>10}{'placed':>8}{'pending':>9}{'pass s':>9}{'decisions/s':>13}"
    print(f"{SESSIONS} pending sessions from {USERS} users onto {AGENTS} agents (concentrated), median of <= {REPEATS}")
    print(header)
    print("-" * len(header))
    for label, name, kwargs in runs:
        times = []
        result = None
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            result = schedule(pending, agents, scheduler=name, **kwargs)
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - started > BUDGET_S:
                break
        assert result is not None
        check(result, agents)
        seconds = statistics.median(times)
        rate = result.decisions / seconds
        shown = "fifo (max_skips=None)" if label == "fifo" else "fifo (max_skips=10)" if label != name else name
        print(
            f"{shown:<24}{result.decisions:>10}{len(result.placements):>8}{len(result.pending):>9}"
            f"{seconds:>9.3f}{rate:>13,.0f}"
        )
        figures[f"{label}_decisions"] = result.decisions
        figures[f"{label}_placed"] = len(result.placements)
        figures[f"{label}_pending"] = len(result.pending)
        figures[f"{label}_pass_s"] = round(seconds, 4)
        if label == name:  # the bounded FIFO stops early by design: its rate is not comparable
            figures[f"{label}_decisions_per_s"] = round(rate)
    a, b = drf_paper_example()
    ok = (a, b) == (3, 2)
    print("fifo (max_skips=10) stops once its blocked head has been passed over 10 times: few decisions, by design")
    print(f"DRF paper example (9 CPUs, 18 GB): A got {a} tasks, B got {b}: {'OK' if ok else 'WRONG, expected 3 and 2'}")
    figures["drf_example_ok"] = ok
    figures["total_s"] = round(time.perf_counter() - started, 2)
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
