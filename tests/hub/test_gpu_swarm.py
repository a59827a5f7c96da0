"""GPU shares on a real Docker Swarm whose GPUs are FAKE: the test machines have no GPU.

Node 3's engine advertises two GPUs as swarm generic resources (dockerd's
``--node-generic-resource NVIDIA-GPU=<id>``, what a GPU node's engine is configured with); no
device stands behind them, and the engines have no NVIDIA runtime, so a session's container
runs with the variables that would select its devices (``NVIDIA_VISIBLE_DEVICES``) and no GPU.
Everything else is real: the three engines, the swarm manager's placement and generic-resource
accounting, the hub, the proxy, our scheduler and the database.

With ``gpu_shares_per_device = 2``: a whole GPU takes one device (and one generic resource), two
sessions of one share each fill the other device, a third waits PENDING (never two sessions on a
device beyond its shares), and runs on that device once one of them ends.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing import missing
from testing.sessions import ProductDB, spawn, stop, wait_agents, wait_gone, wait_ready, wait_status
from testing.swarm import (
    IMAGE,
    Swarm,
    container_on,
    node_of,
    running_swarm,
    swarm_hub,
    swarm_problem,
    task_node,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

S = m.SessionStatus
FAKE_GPUS = ("GPU-fake-0a1b", "GPU-fake-2c3d")
GPU_NODE = 3


@pytest.fixture(scope="module")
def gpu_swarm():
    """The tests' swarm of three engines, node 3's engine advertising two FAKE GPUs."""
    problem = swarm_problem()
    if problem:
        missing(problem, "docker")
    args = tuple(a for gpu in FAKE_GPUS for a in ("--node-generic-resource", f"NVIDIA-GPU={gpu}"))
    with running_swarm(engine_args={GPU_NODE: args}) as built:
        yield built


@pytest.fixture
def pdb(tmp_path):
    pdb = ProductDB(tmp_path)

    def setup(db: Any) -> None:
        admin.create_policy(
            db, "gpu", total_resource_slots={"cpu": 4, "mem": "4g", "cuda.device": 2, "cuda.shares": 4},
            max_concurrent_sessions=5,
        )  # fmt: skip
        admin.upsert_image(
            db, IMAGE, labels={"ai.backend.resource.min.cpu": "0.25", "ai.backend.resource.min.mem": "256m"},
            installed=True,
        )  # fmt: skip

    pdb.setup(setup)
    yield pdb
    pdb.close()


def service_of(swarm: Swarm, session_id) -> dict[str, Any]:
    out = swarm.manager.docker("service", "inspect", f"backendai-session-{session_id}").stdout
    return json.loads(out)[0]["Spec"]["TaskTemplate"]


def env_of(task_template: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in task_template["ContainerSpec"].get("Env") or [])


def test_gpu_shares_on_swarm_nodes_never_overfill_a_device(make_hub, pdb, gpu_swarm, tmp_path):
    swarm = gpu_swarm
    gpu_node = swarm.nodes[GPU_NODE - 1]
    pipes = tmp_path / "mps-pipes"  # on the nodes' shared file system, as on a real site
    pipes.mkdir()
    pdb.user("gina@example.com", policy="gpu")
    extra = f"c.SwarmSessionSpawner.gpu_shares_per_device = 2\nc.SwarmSessionSpawner.gpu_mps_pipe_directory = {str(pipes)!r}"
    hub = swarm_hub(make_hub, pdb, swarm, extra, capacity=None)
    small = {"cpu": "0.25", "mem": "256m"}
    assert spawn(hub, "gina", "w", **small, cuda_device="1").status_code in (201, 202)
    # The node's generic resources are its devices, each worth gpu_shares_per_device shares.
    found = wait_agents(pdb, lambda a: len(a) == 3)
    agent = found[gpu_node.node_id]
    assert sorted(d["id"] for d in agent.devices) == sorted(FAKE_GPUS)
    assert {d["capacity"] for d in agent.devices} == {2}
    assert agent.available_slots["cuda.device"] == 2 and agent.available_slots["cuda.shares"] == 4
    assert all(not a.devices for i, a in found.items() if i != gpu_node.node_id)
    wait_ready(hub, "gina", "w", timeout=150)
    for name in ("s1", "s2"):
        assert spawn(hub, "gina", name, **small, cuda_shares="1").status_code in (201, 202)
    for name in ("s1", "s2"):
        wait_ready(hub, "gina", name, timeout=150)
    rows = {name: wait_status(pdb, "gina", name, S.RUNNING) for name in ("w", "s1", "s2")}
    for row in rows.values():  # the only node with GPUs, and the swarm obeyed
        assert row.agent_id == gpu_node.node_id and task_node(swarm, row.id) == gpu_node.node_id

    # The whole GPU: one device of our choice, visible to the container, and one generic resource.
    (whole,) = rows["w"].gpu_placement["cuda.device"]
    task = service_of(swarm, rows["w"].id)
    assert task["Resources"]["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 1}}
    ]
    assert env_of(task)["NVIDIA_VISIBLE_DEVICES"] == whole
    # The shares: both on the other device, half of it each, no generic resource reserved.
    other = next(g for g in FAKE_GPUS if g != whole)
    for name in ("s1", "s2"):
        assert rows[name].gpu_placement == {"cuda.shares": {other: "1"}}, rows[name].gpu_placement
        task = service_of(swarm, rows[name].id)
        assert "GenericResources" not in (task["Resources"].get("Reservations") or {})
        env = env_of(task)
        assert env["NVIDIA_VISIBLE_DEVICES"] == other and env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"
        mounts = {mt["Target"]: mt.get("Source") for mt in task["ContainerSpec"]["Mounts"]}
        assert mounts["/tmp/nvidia-mps"] == str(pipes)
    # What the container itself sees, on its node.
    cid = container_on(node_of(swarm, rows["s1"].agent_id), rows["s1"].id)
    seen = gpu_node.docker("exec", cid, "sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES").stdout.strip()
    assert seen == other

    # Every share is taken: the next one waits, though the node has CPU and memory to spare ...
    assert spawn(hub, "gina", "s3", **small, cuda_shares="1").status_code == 202
    assert wait_status(pdb, "gina", "s3", S.PENDING)
    # ... and runs on the freed device once a session there ends.
    stop(hub, "gina", "s1")
    wait_ready(hub, "gina", "s3", timeout=150)
    s3 = wait_status(pdb, "gina", "s3", S.RUNNING)
    assert s3.gpu_placement == {"cuda.shares": {other: "1"}} and task_node(swarm, s3.id) == gpu_node.node_id
    for name in ("w", "s2", "s3"):
        stop(hub, "gina", name)
    for name in ("w", "s1", "s2", "s3"):
        wait_gone(hub, "gina", name)
