"""One scheduling pass: FIFO/LIFO/DRF order, agent selection, GPU devices, reasons."""

from __future__ import annotations

import copy
import random
from decimal import Decimal as D

import pytest

from jupyter_backendai.core.gpu import GpuDevice, apply_placement, place, round_up
from jupyter_backendai.core.scheduling import (
    SCHEDULERS,
    AgentState,
    LeftPending,
    PendingSession,
    Placement,
    get_scheduler,
    schedule,
)
from jupyter_backendai.core.slots import ResourceSlots

GiB = 1024**3


def sess(sid: str, user: str = "u", created: float = 0, group: str | None = None, passed_over: int = 0, **slots):
    slots = {k.replace("_", "."): v for k, v in slots.items()}  # cuda_shares -> cuda.shares
    return PendingSession(sid, user, ResourceSlots(slots), created, group, passed_over)


def agent(aid: str, occupied: dict | None = None, gpus=(), group: str | None = None, schedulable=True, **cap):
    cap = {k.replace("_", "."): v for k, v in cap.items()}
    return AgentState(aid, ResourceSlots(cap), ResourceSlots(occupied or {}), tuple(gpus), schedulable, group)


def placed(result) -> list[str]:
    return [p.session_id for p in result.placements]


def where(result) -> dict[str, str]:
    return {p.session_id: p.agent_id for p in result.placements}


def reasons(result) -> dict[str, str]:
    return {p.session_id: p.reason for p in result.pending}


# --- FIFO -----------------------------------------------------------------------------------------


def test_fifo_serves_oldest_first_whatever_the_input_order():
    pending = [sess(f"s{i}", created=i, cpu=1) for i in (3, 1, 5, 2, 4)]
    result = schedule(pending, [agent("a", cpu=4)], scheduler="fifo")
    assert placed(result) == ["s1", "s2", "s3", "s4"]
    assert result.pending == (LeftPending("s5", "no agent has room: needs cpu 1, the largest free is cpu 0", 0),)
    assert result.decisions == 5


def _blocked_queue():
    # 5 cpus free of 10: "big" (6 cpus) could run on the empty agent, so it is worth waiting for.
    agents = [agent("a", occupied={"cpu": 5}, cpu=10)]
    pending = [sess("big", created=0, cpu=6)] + [sess(f"small{i}", created=i, cpu=1) for i in range(1, 6)]
    return pending, agents


def test_fifo_skips_a_blocked_head_for_smaller_sessions_up_to_the_bound():
    pending, agents = _blocked_queue()
    result = schedule(pending, agents, scheduler="fifo", max_skips=2)
    assert placed(result) == ["small1", "small2"]
    assert result.decisions == 3
    waiting = "waiting behind the head of the queue, session big (passed over 2 times, the limit is 2)"
    assert result.pending == (
        LeftPending("big", "no agent has room: needs cpu 6, the largest free is cpu 3", 2),
        LeftPending("small3", waiting, 0),
        LeftPending("small4", waiting, 0),
        LeftPending("small5", waiting, 0),
    )


def test_fifo_skip_count_carries_over_between_passes():
    pending, agents = _blocked_queue()
    pending[0] = sess("big", created=0, passed_over=1, cpu=6)
    result = schedule(pending, agents, scheduler="fifo", max_skips=2)
    assert placed(result) == ["small1"]
    assert reasons(result)["small2"].startswith("waiting behind the head of the queue, session big")
    assert result.pending[0].passed_over == 2


def test_fifo_strict_and_unbounded():
    pending, agents = _blocked_queue()
    assert placed(schedule(pending, agents, scheduler="fifo", max_skips=0)) == []
    assert placed(schedule(pending, agents, scheduler="fifo", max_skips=None)) == [f"small{i}" for i in range(1, 6)]


def test_fifo_is_not_blocked_by_a_session_no_agent_could_ever_hold():
    pending = [sess("huge", created=0, cpu=100)] + [sess(f"s{i}", created=i, cpu=1) for i in range(1, 4)]
    result = schedule(pending, [agent("a", cpu=10), agent("b", cpu=8)], scheduler="fifo", max_skips=0)
    assert placed(result) == ["s1", "s2", "s3"]
    assert reasons(result) == {"huge": "larger than any agent: needs cpu 100, the largest agent has cpu 10"}


# --- LIFO -----------------------------------------------------------------------------------------


def test_lifo_serves_newest_first():
    pending = [sess(f"s{i}", created=i, cpu=1) for i in range(1, 6)]
    result = schedule(pending, [agent("a", cpu=3)], scheduler="lifo")
    assert placed(result) == ["s5", "s4", "s3"]
    assert [p.session_id for p in result.pending] == ["s1", "s2"]
    assert [p.passed_over for p in result.pending] == [3, 3]
    assert result.decisions == 5


# --- DRF ------------------------------------------------------------------------------------------


def _paper_example():
    # Ghodsi et al. 2011: 9 CPUs, 18 GB; A's tasks <1 CPU, 4 GB>, B's <3 CPUs, 1 GB>.
    pending = [sess(f"A{i}", "A", created=i, cpu=1, mem="4g") for i in range(20)]
    pending += [sess(f"B{i}", "B", created=100 + i, cpu=3, mem="1g") for i in range(20)]
    return pending, [agent("node", cpu=9, mem="18g")]


def test_drf_paper_example_gives_a_three_tasks_and_b_two():
    pending, agents = _paper_example()
    result = schedule(pending, agents, scheduler="drf")
    assert placed(result) == ["A0", "B0", "A1", "B1", "A2"]
    assert len(result.pending) == 35
    assert result.decisions == 40


def test_fifo_on_the_paper_example_is_not_fair():
    pending, agents = _paper_example()
    assert placed(schedule(pending, agents, scheduler="fifo", max_skips=None)) == ["A0", "A1", "A2", "A3", "B0"]


def test_drf_counts_what_users_already_run():
    # A already holds 4 of 10 cpus (share 0.4); B holds nothing.
    agents = [agent("a", occupied={"cpu": 4}, cpu=10, mem="10g")]
    pending = [sess("A1", "A", created=0, cpu=1), sess("B1", "B", created=1, cpu=1), sess("B2", "B", created=2, cpu=1)]
    usage = {"A": ResourceSlots(cpu=4)}
    assert placed(schedule(pending, agents, scheduler="drf", user_usage=usage)) == ["B1", "B2", "A1"]
    # Shares are updated after every placement: A at 0.05 (memory) waits for B1, then B at 0.1 waits for A1.
    usage = {"A": ResourceSlots(mem=D("0.5") * GiB)}
    assert placed(schedule(pending, agents, scheduler="drf", user_usage=usage)) == ["B1", "A1", "B2"]


def test_drf_uses_the_dominant_slot():
    # C holds 50% of memory but no cpu: dominant share 0.5 > D's 0.3 cpu.
    agents = [agent("a", cpu=10, mem="10g")]
    pending = [sess("C1", "C", created=0, cpu=1), sess("D1", "D", created=1, cpu=1)]
    usage = {"C": ResourceSlots(mem="5g"), "D": ResourceSlots(cpu=3)}
    assert placed(schedule(pending, agents, scheduler="drf", user_usage=usage)) == ["D1", "C1"]


# --- agent selection --------------------------------------------------------------------------


def _three_agents():
    return [
        agent("b", occupied={"cpu": 2}, cpu=8),  # free 6
        agent("a", occupied={"cpu": 6}, cpu=8),  # free 2
        agent("c", cpu=8),  # free 8
    ]


def test_concentrated_fills_the_fullest_agent_that_fits():
    pending = [sess("x", created=0, cpu=2), sess("y", created=1, cpu=3), sess("z", created=2, cpu=7)]
    assert where(schedule(pending, _three_agents(), selection="concentrated")) == {"x": "a", "y": "b", "z": "c"}


def test_dispersed_uses_the_emptiest_agent():
    pending = [sess("x", created=0, cpu=2), sess("y", created=1, cpu=3), sess("z", created=2, cpu=6)]
    result = schedule(pending, _three_agents(), selection="dispersed")
    # x -> c (8 free, then 6); y -> b (6 free; c has 6 too, b's id is lower), z -> c.
    assert where(result) == {"x": "c", "y": "b", "z": "c"}


def test_equal_agents_go_by_id():
    agents = [agent("n2", cpu=4), agent("n1", cpu=4)]
    for selection in ("concentrated", "dispersed"):
        assert where(schedule([sess("x", cpu=1)], agents, selection=selection)) == {"x": "n1"}


def test_cpu_sessions_prefer_agents_without_gpus():
    gpus = [GpuDevice("0")]
    agents = [agent("gpu", gpus=gpus, cpu=16, cuda_shares=1), agent("plain", occupied={"cpu": 12}, cpu=16)]
    for selection in ("concentrated", "dispersed"):
        result = schedule(
            [sess("cpu-only", created=0, cpu=2), sess("gpu", created=1, cpu=2, cuda_shares="0.5")],
            agents,
            selection=selection,
        )
        assert where(result) == {"cpu-only": "plain", "gpu": "gpu"}, selection


# --- GPUs -------------------------------------------------------------------------------------------


def _gpu_agent(used=("0", "0"), **extra):
    gpus = [GpuDevice(str(i), D(1), D(u)) for i, u in enumerate(used)]
    occupied = {"cuda.shares": sum(D(u) for u in used)}
    return agent("g", occupied=occupied, gpus=gpus, cpu=16, cuda_shares=len(used), **extra)


def test_gpu_shares_are_placed_per_device():
    pending = [sess("x", created=0, cuda_shares="0.3"), sess("y", created=1, cuda_shares="1.5")]
    result = schedule(pending, [_gpu_agent()])
    assert result.placements == (
        Placement("x", "g", ResourceSlots({"cuda.shares": "0.3"}), {"cuda.shares": {"0": D("0.3")}}),
        Placement("y", "g", ResourceSlots({"cuda.shares": "1.5"}), {"cuda.shares": {"0": D("0.5"), "1": D(1)}}),
    )


def test_gpu_request_is_rounded_up_to_the_quantum():
    result = schedule([sess("x", cuda_shares="0.333")], [_gpu_agent()])
    assert result.placements[0].slots == ResourceSlots({"cuda.shares": "0.34"})
    assert result.placements[0].gpus == {"cuda.shares": {"0": D("0.34")}}
    result = schedule([sess("x", cuda_shares="0.333")], [_gpu_agent()], quantum=D("0.25"))
    assert result.placements[0].gpus == {"cuda.shares": {"0": D("0.5")}}


def test_gpu_room_on_the_agent_but_not_on_any_device():
    # 0.8 shares free in total, but 0.4 per device: a 0.5 request has nowhere to go.
    result = schedule([sess("x", cuda_shares="0.5")], [_gpu_agent(used=("0.6", "0.6"))])
    assert placed(result) == []
    assert reasons(result) == {"x": "no agent with room has GPU devices free to place cuda.shares 0.5"}


def test_whole_gpus_skip_devices_holding_shares():
    gpus = [GpuDevice("0", D(1), D("0.5")), GpuDevice("1"), GpuDevice("2")]
    a = agent("g", occupied={"cuda.shares": "0.5"}, gpus=gpus, cpu=8, cuda_device=3, cuda_shares=3)
    result = schedule([sess("x", cuda_device=2)], [a])
    assert result.placements[0].gpus == {"cuda.device": {"1": D(1), "2": D(1)}}
    result = schedule([sess("x", cuda_device=3)], [a])
    assert reasons(result) == {"x": "no agent with room has GPU devices free to place cuda.device 3"}


def test_devices_used_earlier_in_the_pass_are_not_reused():
    pending = [sess(f"s{i}", created=i, cuda_shares="0.6") for i in range(3)]
    result = schedule(pending, [_gpu_agent()])
    assert [p.gpus for p in result.placements] == [{"cuda.shares": {"0": D("0.6")}}, {"cuda.shares": {"1": D("0.6")}}]
    assert reasons(result) == {"s2": "no agent with room has GPU devices free to place cuda.shares 0.6"}


# --- reasons, groups, odds and ends ------------------------------------------------------------


def test_reason_names_every_short_slot():
    agents = [agent("a", occupied={"cpu": 2, "mem": 6 * GiB}, cpu=4, mem="8g")]
    result = schedule([sess("x", cpu=4, mem="4g")], agents)
    assert reasons(result) == {"x": "no agent has room: needs cpu 4, mem 4 GiB, the largest free is cpu 2, mem 2 GiB"}


def test_fragmented_room_is_explained():
    agents = [agent("a", occupied={"mem": 6 * GiB}, cpu=4, mem="8g"), agent("b", occupied={"cpu": 3}, cpu=4, mem="8g")]
    result = schedule([sess("x", cpu=2, mem="4g")], agents)
    assert reasons(result) == {"x": "no single agent has room for cpu 2, mem 4 GiB together"}


def test_resource_groups_and_unschedulable_agents():
    agents = [agent("a", cpu=4, group="g1"), agent("b", cpu=4, group="g2"), agent("c", cpu=4, schedulable=False)]
    pending = [sess("x", created=0, group="g2", cpu=1), sess("y", created=1, group="nope", cpu=1)]
    result = schedule(pending, agents)
    assert where(result) == {"x": "b"}
    assert reasons(result) == {"y": "no schedulable agent in resource group 'nope'"}
    assert reasons(schedule([sess("z", cpu=1)], [agents[2]])) == {"z": "no schedulable agent"}


def test_unlimited_capacity_takes_anything():
    result = schedule([sess("x", cpu=1000)], [agent("a", cpu="unlimited")])
    assert where(result) == {"x": "a"}


def test_inputs_are_not_mutated():
    pending, agents = _paper_example()
    agents = [*agents, _gpu_agent()]
    pending = [*pending, sess("g1", "G", created=200, cuda_shares="1.5"), sess("g2", "G", created=201, cuda_shares=1)]
    usage = {"A": ResourceSlots(cpu=1)}
    snapshot = copy.deepcopy((pending, agents, usage))
    for name in SCHEDULERS:
        result = schedule(pending, agents, scheduler=name, user_usage=usage)
        assert result.placements
    assert (pending, agents, usage) == snapshot


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"^unknown scheduler 'rr': choose one of drf, fifo, lifo$"):
        get_scheduler("rr")
    with pytest.raises(ValueError, match="unknown scheduler 'RR'"):
        schedule([], [], scheduler="RR")
    with pytest.raises(ValueError, match=r"^unknown agent selection 'packed': choose one of concentrated, dispersed$"):
        schedule([], [], selection="packed")
    assert get_scheduler("drf") is SCHEDULERS["drf"]


def test_empty_pass():
    result = schedule([], [agent("a", cpu=1)], scheduler="drf")
    assert (result.placements, result.pending, result.decisions) == ((), (), 0)


# --- against a plain reference ----------------------------------------------------------------


def _reference_first_fit(pending, agents, selection):
    """The selection rule spelled out with ResourceSlots, without any of the pass's shortcuts."""
    accel = ("cuda.device", "cuda.shares")
    names = ["cuda.device", "cuda.shares", "cpu", "mem"]
    free = {a.id: a.capacity - a.occupied for a in agents}
    devices = {a.id: tuple(a.gpus) for a in agents}
    sign = -1 if selection == "dispersed" else 1
    out = []
    for p in sorted(pending, key=lambda p: p.created):
        req = p.requested
        if req.get("cuda.shares"):
            req = ResourceSlots({**req, "cuda.shares": round_up(req["cuda.shares"])})
        wants_gpu = any(req.get(n) for n in accel)

        def key(a, wants_gpu=wants_gpu):
            amounts = [sign * free[a.id].get(n) for n in names if wants_gpu or n not in accel]
            has_gpu = any(a.capacity.get(n) for n in accel)
            return ([] if wants_gpu else [has_gpu]) + amounts + [a.id]

        for a in sorted((a for a in agents if req.fits_in(free[a.id])), key=key):
            alloc = place(devices[a.id], req.get("cuda.device"), req.get("cuda.shares"))
            if alloc is not None:
                free[a.id] = free[a.id] - req
                devices[a.id] = apply_placement(devices[a.id], alloc)
                out.append((p.id, a.id, alloc))
                break
    return out


@pytest.mark.parametrize("selection", ["concentrated", "dispersed"])
def test_the_fast_pass_matches_a_plain_reference(selection):
    rng = random.Random(11)
    for _ in range(40):
        agents = []
        for i in range(rng.randrange(1, 7)):
            ngpu = rng.choice([0, 0, 2, 4])
            gpus = [GpuDevice(str(d), D(1), D(rng.choice(["0", "0.5", "0.9"]))) for d in range(ngpu)]
            cap = {"cpu": rng.choice([4, 8, 16]), "mem": rng.choice([8, 16]) * GiB}
            occ = {"cpu": rng.randrange(0, 4), "mem": rng.randrange(0, 8) * GiB}
            if ngpu:
                cap["cuda.shares"] = ngpu
                occ["cuda.shares"] = sum(g.shares_used for g in gpus)
            agents.append(agent(f"n{i}", occupied=occ, gpus=gpus, **cap))
        pending = []
        for i in range(rng.randrange(1, 60)):
            req = {"cpu": rng.choice(["0.5", 1, 2, 3, 6]), "mem": rng.randrange(1, 12) * GiB}
            if rng.random() < 0.3:
                req["cuda.shares"] = rng.choice(["0.2", "0.333", "0.5", 1, "1.5"])
            pending.append(sess(f"s{i}", f"u{rng.randrange(5)}", created=rng.randrange(100), **req))
        got = schedule(pending, agents, scheduler="fifo", selection=selection, max_skips=None)
        assert [(p.session_id, p.agent_id, p.gpus) for p in got.placements] == _reference_first_fit(
            pending, agents, selection
        )
        assert got.decisions == len(pending) == len(got.placements) + len(got.pending)


def test_a_backends_block_is_lifted_by_the_backend_and_an_administrators_choice_stands():
    from jupyter_backendai.core.scheduling import backend_schedulable

    marked: set[str] = set()
    assert backend_schedulable(marked, "new", blocked=False, known=False) is True
    assert backend_schedulable(marked, "n1", blocked=False, known=True) is None  # the admin's flag
    assert backend_schedulable(marked, "n1", blocked=True, known=True) is False  # cordoned
    assert marked == {"n1"}
    assert backend_schedulable(marked, "n1", blocked=False, known=True) is True  # uncordoned
    assert marked == set()
    assert backend_schedulable(marked, "n1", blocked=False, known=True) is None
