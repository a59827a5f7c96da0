"""GPU accounting on the real Docker engine, with a FAKE nvidia-smi: the test machines have no GPU.

``tests/nvidia_smi/fake-nvidia-smi`` answers the product's two queries with outputs in
nvidia-smi's format (an RTX 3090 of 24 GiB beside an RTX 3060 of 12 GiB). Everything else is
real: the engine that the agent describes and that runs the containers, the hub, the
scheduler, the database and the manager's API. What cannot happen here is a container with a
GPU: this engine has no NVIDIA runtime, so a GPU session's container is created (with its
MPS limits, device request and pipe directory, which the test reads back) and then fails to
start with the engine's "could not select device driver".
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from traitlets.config import Config

from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as store
from jupyter_backendai.hub import nvidia as hub_nvidia
from jupyter_backendai.hub.docker import DockerSessionSpawner
from jupyter_backendai.hub.spawner import SessionSpawnerMixin
from jupyter_backendai.hub.spec import LABEL_SESSION_ID
from jupyter_backendai.hub.usage import record_usage
from testing.docker import IMAGE
from testing.sessions import ProductDB, hub_config, spawn, wait_status

pytestmark = pytest.mark.docker

RECORDED = Path(__file__).parents[1] / "core" / "nvidia_smi"
GIB = 1024**3
MIB = 1024**2
RTX3090 = "GPU-9e2f5c1d-3a7b-4c8e-b1d6-0f4a2e7c9b53"
S = m.SessionStatus


def fake_nvidia_smi_env(tmp_path: Path, gpus: str, apps: Path | None = None, status: int = 0) -> dict[str, str]:
    """PATH with the FAKE nvidia-smi first (no GPU here), and what it prints."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    shutil.copy(RECORDED / "fake-nvidia-smi", bin_dir / "nvidia-smi")
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_NVIDIA_SMI_GPUS": str(RECORDED / gpus),
        "FAKE_NVIDIA_SMI_EXIT": str(status),
    }
    if apps is not None:
        env["FAKE_NVIDIA_SMI_APPS"] = str(apps)
    return env


@pytest.fixture
def fake_gpus(tmp_path, monkeypatch):
    """The FAKE nvidia-smi on this process's PATH; returns a setter of what it prints."""

    def use(gpus: str, apps: Path | None = None, status: int = 0) -> None:
        for key in ("FAKE_NVIDIA_SMI_APPS",):
            monkeypatch.delenv(key, raising=False)
        for key, value in fake_nvidia_smi_env(tmp_path, gpus, apps, status).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(hub_nvidia, "_snapshot", None)

    return use


def docker_spawner(pdb: ProductDB, **traits) -> DockerSessionSpawner:
    c = Config()
    c.DockerSessionSpawner.db_url = pdb.url
    c.DockerSessionSpawner.storage_root = str(pdb.storage_root)
    for key, value in traits.items():
        setattr(c.DockerSessionSpawner, key, value)
    return DockerSessionSpawner(config=c)


def engine_info() -> dict:
    out = subprocess.run(["docker", "info", "--format", "{{json .}}"], capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout)


def agent_row(pdb: ProductDB, agent_id: str) -> m.Agent:
    with pdb() as db:
        return db.get(m.Agent, agent_id)


@pytest.fixture
def pdb(tmp_path):
    pdb = ProductDB(tmp_path)
    yield pdb
    pdb.close()


def test_the_agent_registers_the_gpus_nvidia_smi_reports(pdb, fake_gpus):
    info = engine_info()
    fake_gpus("query-gpu-2-rtx3090-rtx3060.txt")
    spawner = docker_spawner(pdb, agent_id="docker-gpu", gpu_shares_per_device=4)
    asyncio.run(spawner._register_agent())
    agent = agent_row(pdb, "docker-gpu")
    assert [(d["id"], d["name"], d["memory"], d["capacity"]) for d in agent.devices] == [
        ("0", "NVIDIA GeForce RTX 3090", 24 * GIB, 4),
        ("1", "NVIDIA GeForce RTX 3060", 12 * GIB, 4),
    ]
    # The engine's own CPUs and memory, and 4 shares per device: 1 share = a quarter GPU.
    assert agent.available_slots == ResourceSlots(
        {"cpu": info["NCPU"], "mem": info["MemTotal"], "cuda.device": 2, "cuda.shares": 8}
    )

    # nvidia-smi failing (no driver loaded): the agent offers no GPU rather than a wrong one.
    fake_gpus("error-no-driver.txt", status=9)
    asyncio.run(spawner._register_agent())
    agent = agent_row(pdb, "docker-gpu")
    assert agent.devices == [] and "cuda.shares" not in agent.available_slots

    # An administrator's list wins over nvidia-smi; its capacity defaults to the shares per device.
    fake_gpus("query-gpu-8-a100-80gb.txt")
    listed = docker_spawner(
        pdb, agent_id="docker-gpu", gpu_shares_per_device=2, gpu_devices=[{"id": "3", "memory": "40g"}, {"id": "5"}]
    )
    asyncio.run(listed._register_agent())
    agent = agent_row(pdb, "docker-gpu")
    assert agent.devices == [{"id": "3", "memory": 40 * GIB, "capacity": 2}, {"id": "5", "capacity": 2}]
    assert agent.available_slots["cuda.shares"] == 4 and agent.available_slots["cuda.device"] == 2
    with pytest.raises(ValueError, match="listed twice"):
        docker_spawner(pdb, gpu_devices=[{"id": "0"}, {"id": "0"}])


def _remove_session_objects(session_id: str) -> None:
    label = f"label={LABEL_SESSION_ID}={session_id}"
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=60)
    nets = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", label], capture_output=True, text=True
    ).stdout.split()  # fmt: skip
    if nets:
        subprocess.run(["docker", "network", "rm", *nets], capture_output=True, timeout=60)


def test_a_sessions_fgpu_limits_are_cut_from_the_memory_nvidia_smi_reports(make_hub, pdb, tmp_path):
    pipes, shm = tmp_path / "mps-pipes", tmp_path / "mps-shm"
    pipes.mkdir()
    shm.mkdir()

    def setup(db):
        admin.upsert_image(db, IMAGE, labels={"ai.backend.resource.min.cpu": "0.5"}, installed=True)

    pdb.setup(setup)
    pdb.user("gina@example.com")
    extra = f"""
c.DockerSessionSpawner.gpu_shares_per_device = 4
c.DockerSessionSpawner.gpu_mps_pipe_directory = {str(pipes)!r}
c.DockerSessionSpawner.gpu_mps_shm_directory = {str(shm)!r}
# Keep the container that cannot start here, to read its configuration back.
c.DockerSessionSpawner.remove = False
"""
    hub = make_hub(
        hub_config(pdb, "backendai-docker", extra),
        env=fake_nvidia_smi_env(tmp_path, "query-gpu-2-rtx3090-rtx3060.txt"),
    )
    session_id = None
    try:
        # Half an RTX 3090 is 2 of its 4 shares.
        r = spawn(hub, "gina", "g", cpu="1", mem="512m", cuda_shares="2")
        assert r.status_code in (201, 202, 500), r.text
        failed = wait_status(pdb, "gina", "g", S.ERROR, timeout=120)
        session_id = str(failed.id)
        assert failed.agent_id and failed.gpu_placement == {"cuda.shares": {"0": "2"}}
        agent = agent_row(pdb, failed.agent_id)
        assert agent.available_slots["cuda.shares"] == 8 and agent.devices[0]["memory"] == 24 * GIB
        # No NVIDIA runtime on this engine: the start fails, after the container was created.
        assert "could not select device driver" in failed.status_info, failed.status_info
        inspect = subprocess.run(
            ["docker", "inspect", f"backendai-session-{session_id}"], capture_output=True, text=True, timeout=30
        )
        assert inspect.returncode == 0, inspect.stderr
        container = json.loads(inspect.stdout)[0]
        env = dict(item.split("=", 1) for item in container["Config"]["Env"])
        assert env["NVIDIA_VISIBLE_DEVICES"] == "0"
        assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=12288M"  # half of 24 GiB, not of 16 GiB
        assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"
        assert env["CUDA_MPS_PIPE_DIRECTORY"] == "/tmp/nvidia-mps"
        assert f"{pipes}:/tmp/nvidia-mps:rw" in container["HostConfig"]["Binds"]
        assert f"{shm}:/dev/shm:rw" in container["HostConfig"]["Binds"]
        (request,) = container["HostConfig"]["DeviceRequests"]
        assert request["Driver"] == "nvidia" and request["DeviceIDs"] == ["0"]
    finally:
        if session_id:
            _remove_session_objects(session_id)


def _running_session(pdb: ProductDB, username: str, agent_id: str, placement: dict, slots: dict) -> uuid.UUID:
    def setup(db):
        user = admin.get_user(db, username)
        keypair = next(k for k in user.keypairs if k.is_active)
        row = m.Session(
            name=f"{username}-gpu-{len(placement)}{next(iter(placement))}",
            server_name="",
            user_id=user.id,
            access_key=keypair.access_key,
            domain_name=user.domain_name,
            scaling_group=admin.DEFAULT,
            agent_id=agent_id,
            image=IMAGE,
            requested_slots=ResourceSlots.parse(slots),
            occupied_slots=ResourceSlots.parse(slots),
            gpu_placement=placement,
        )
        db.add(row)
        db.flush()
        store.set_status(db, row, S.RUNNING, "test")
        return row.id

    return pdb.setup(setup)


def test_gpu_usage_is_sampled_and_reported_by_the_api(manager, tmp_path, fake_gpus):
    pdb = manager.pdb
    fake_gpus("query-gpu-2-rtx3090-rtx3060.txt")
    spawner = docker_spawner(pdb, agent_id="docker-gpu", gpu_shares_per_device=4)
    asyncio.run(spawner._register_agent())
    shared = _running_session(
        pdb, "alice", "docker-gpu", {"cuda.shares": {"0": "2"}}, {"cpu": 1, "mem": "1g", "cuda.shares": 2}
    )
    whole = _running_session(
        pdb, "alice", "docker-gpu", {"cuda.device": {"1": "1"}}, {"cpu": 1, "mem": "1g", "cuda.device": 1}
    )
    # A real container stands for the shared session; nvidia-smi (fake) lists its main process
    # on the RTX 3090 beside a process that is not the session's (this test's own).
    name = f"backendai-gpu-usage-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        ["docker", "run", "-d", "--pull", "never", "--network", "none", "--name", name,
         "--label", f"{LABEL_SESSION_ID}={shared}", "--entrypoint", "sleep", IMAGE, "300"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    container_id = run.stdout.strip()
    try:
        pid = int(
            subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Pid}}", container_id], capture_output=True, text=True
            ).stdout
        )
        apps = tmp_path / "compute-apps.txt"
        apps.write_text(f"{pid}, {RTX3090}, 3072\n{os.getpid()}, {RTX3090}, 999\n")
        fake_gpus("query-gpu-2-rtx3090-rtx3060.txt", apps)

        spawner.session_id, spawner.object_id = shared, container_id
        sample = asyncio.run(spawner.sample_usage())
        assert sample["gpu_mem_bytes"] == 3072 * MIB and sample["gpu_percent"] is None
        assert sample["mem_bytes"] > 0  # the engine's stats of the same container
        asyncio.run(spawner.run_db(record_usage, shared, sample, None))

        # The whole RTX 3060 is the other session's: its utilisation and memory are its own.
        other = docker_spawner(pdb, agent_id="docker-gpu")
        other.session_id = whole
        gpu = asyncio.run(other.sample_gpu())
        assert gpu == {"gpu_percent": 0.0, "gpu_mem_bytes": 5 * MIB}
        asyncio.run(other.run_db(record_usage, whole, {"cpu_percent": 1.0, **gpu}, None))
    finally:
        subprocess.run(["docker", "rm", "-f", container_id], capture_output=True, timeout=60)
        SessionSpawnerMixin._agent_registered = False

    listed = {i["id"]: i for i in manager.call("GET", "/session?page_size=10", "alice").json()["items"]}
    assert listed[str(shared)]["usage"]["gpu_mem_bytes"] == 3072 * MIB
    assert listed[str(whole)]["usage"]["gpu_percent"] == 0.0
    q = "query($id: UUID!) { compute_session(id: $id) { containers { live_stat } } }"
    answer = manager.call("POST", "/admin/gql", "alice", json_body={"query": q, "variables": {"id": str(shared)}})
    stat = json.loads(answer.json()["data"]["compute_session"]["containers"][0]["live_stat"])
    assert stat["cuda_mem"] == 3072 * MIB and stat["cuda_util"] is None
    assert Decimal(str(stat["mem"])) > 0
