"""What nvidia-smi says, read as agent devices, slots, fGPU limits and usage (no GPU needed).

The outputs in ``tests/nvidia_smi/`` are written in nvidia-smi's format for the product's two
queries (``--format=csv,noheader,nounits``): one T4, an RTX 3090 beside an RTX 3060, eight
A100 80GB, two A100 in MIG mode (utilisation ``[N/A]``), four V100 of which one fell off the
bus, and the driver's failure messages. ``fake-nvidia-smi`` prints them, because the test
machines have no GPU.
"""

from __future__ import annotations

import os
import shutil
from decimal import Decimal as D
from pathlib import Path

import pytest

from jupyter_backendai.core import nvidia
from jupyter_backendai.core.gpu import GpuDevice, place_shares
from jupyter_backendai.core.nvidia import (
    ComputeApp,
    NvidiaSmiError,
    agent_devices,
    configured_devices,
    device_memory,
    device_shares,
    gpu_slots,
    parse_compute_apps,
    parse_query_gpu,
    session_gpu_usage,
)
from jupyter_backendai.hub import nvidia as hub_nvidia
from jupyter_backendai.hub.spec import gpu_env

RECORDED = Path(__file__).parent / "nvidia_smi"
MIB = 1024**2


def recorded(name: str) -> str:
    return (RECORDED / name).read_text()


def gpus(name: str) -> list[nvidia.GpuInfo]:
    found, problems = parse_query_gpu(recorded(name))
    assert problems == []
    return found


# --- the device query -----------------------------------------------------------------------------


def test_one_t4():
    (t4,) = gpus("query-gpu-1-t4.txt")
    assert (t4.index, t4.name, t4.memory_total, t4.memory_used, t4.utilization) == ("0", "Tesla T4", 15360 * MIB, 0, 0)
    assert t4.uuid == "GPU-4c1b7a4e-6f3d-2b9a-8e1c-5d7f0a9b3c21"


def test_two_models_keep_their_own_memory():
    big, small = gpus("query-gpu-2-rtx3090-rtx3060.txt")
    assert (big.name, big.memory_total, big.memory_used, big.utilization) == (
        "NVIDIA GeForce RTX 3090", 24 * 1024 * MIB, 18211 * MIB, 97.0,
    )  # fmt: skip
    assert (small.name, small.memory_total) == ("NVIDIA GeForce RTX 3060", 12 * 1024 * MIB)


def test_eight_a100():
    found = gpus("query-gpu-8-a100-80gb.txt")
    assert [g.index for g in found] == [str(i) for i in range(8)]
    assert {g.memory_total for g in found} == {80 * 1024 * MIB}
    assert [g.utilization for g in found] == [100, 98, 0, 0, 63, 61, 64, 0]
    assert len({g.uuid for g in found}) == 8


def test_values_the_driver_does_not_have_are_none():
    mig, plain = gpus("query-gpu-mig-a100.txt")
    assert mig.utilization is None and mig.memory_total == 40960 * MIB
    assert plain.utilization == 0


def test_a_lost_gpu_leaves_the_others_and_is_reported():
    found, problems = parse_query_gpu(recorded("query-gpu-lost-v100.txt"))
    assert [g.index for g in found] == ["0", "2"]
    assert problems == ["Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("error-no-driver.txt", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."),
        ("error-no-devices.txt", "No devices were found"),
        ("error-nvml-mismatch.txt", "Failed to initialize NVML: Driver/library version mismatch"),
    ],
)
def test_driver_failures_raise_with_the_drivers_message(name, message):
    with pytest.raises(NvidiaSmiError) as e:
        parse_query_gpu(recorded(name))
    assert str(e.value).startswith(message)


def test_no_output_is_no_gpu_and_bad_values_are_problems():
    assert parse_query_gpu("") == ([], [])
    with pytest.raises(NvidiaSmiError):
        parse_query_gpu("0, GPU-x, Tesla T4, lots, 0, 0\n")
    found, problems = parse_query_gpu("0, GPU-x, Tesla T4, 15360, 0, 0\n0, GPU-y, Tesla T4, 15360, 0, 0\n")
    assert len(found) == 1 and problems == ["0, GPU-y, Tesla T4, 15360, 0, 0"]  # an index twice
    with pytest.raises(NvidiaSmiError):
        parse_query_gpu("0, GPU-x, Tesla T4, 15360, 0, 140\n")  # not a percentage


# --- the process query ----------------------------------------------------------------------------


def test_compute_apps_under_mps():
    apps = parse_compute_apps(recorded("compute-apps-mps.txt"))
    assert apps[0] == ComputeApp(2291, "GPU-9e2f5c1d-3a7b-4c8e-b1d6-0f4a2e7c9b53", 30 * MIB)  # the MPS server
    assert [a.pid for a in apps] == [2291, 41877, 41990, 52013, 52101]
    assert apps[-1].used_memory is None  # [N/A]


def test_compute_apps_none():
    assert parse_compute_apps("") == []
    assert parse_compute_apps(recorded("compute-apps-none-old-driver.txt")) == []
    with pytest.raises(NvidiaSmiError, match="No devices were found"):
        parse_compute_apps(recorded("error-no-devices.txt"))


# --- agents: devices, shares, slots -------------------------------------------------------------------


def test_agent_devices_offer_the_configured_shares_and_their_real_memory():
    devices = agent_devices(gpus("query-gpu-2-rtx3090-rtx3060.txt"), shares_per_device=4)
    assert devices == [
        {"id": "0", "capacity": 4, "name": "NVIDIA GeForce RTX 3090", "memory": 24 * 1024**3,
         "uuid": "GPU-9e2f5c1d-3a7b-4c8e-b1d6-0f4a2e7c9b53"},
        {"id": "1", "capacity": 4, "name": "NVIDIA GeForce RTX 3060", "memory": 12 * 1024**3,
         "uuid": "GPU-1b6d8f3a-5c2e-4a9d-8f7b-3e1c6a0d2b84"},
    ]  # fmt: skip
    assert gpu_slots(devices) == {"cuda.device": 2, "cuda.shares": 8}
    assert device_memory(devices) == {"0": 24 * 1024**3, "1": 12 * 1024**3}
    assert device_shares(devices) == {"0": 4, "1": 4}
    eight = agent_devices(gpus("query-gpu-8-a100-80gb.txt"))
    assert gpu_slots(eight) == {"cuda.device": 8, "cuda.shares": 8}
    assert gpu_slots([]) == {}
    with pytest.raises(ValueError, match="positive"):
        agent_devices([], shares_per_device=0)


def test_configured_devices():
    devices = configured_devices([{"id": 0, "memory": "24g"}, {"id": "1", "capacity": 2}], shares_per_device=8)
    assert devices == [{"id": "0", "memory": 24 * 1024**3, "capacity": 8}, {"id": "1", "capacity": 2}]
    for bad, message in [
        ([{"memory": "24g"}], "needs an id"),
        ([{"id": "0"}, {"id": 0}], "listed twice"),
        ([{"id": "0", "memory": "lots"}], "memory must be a size"),
        ([{"id": "0", "memory": "unlimited"}], "memory must be a size"),
        ([{"id": "0", "capacity": -1}], "positive"),
    ]:
        with pytest.raises(ValueError, match=message):
            configured_devices(bad)


# --- fGPU limits from the real memory ----------------------------------------------------------------


def test_mps_limits_are_cut_from_each_devices_own_memory():
    devices = agent_devices(gpus("query-gpu-2-rtx3090-rtx3060.txt"), shares_per_device=4)
    kw = {"gpu_memory": device_memory(devices), "shares_per_device": device_shares(devices)}
    on_3090 = gpu_env({"cuda.shares": {"0": D(2)}}, **kw)  # 2 of 4 shares: half the RTX 3090
    assert on_3090["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=12288M"
    assert on_3090["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"
    on_3060 = gpu_env({"cuda.shares": {"1": D(1)}}, **kw)  # a quarter of the RTX 3060
    assert on_3060["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=3072M"
    assert on_3060["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    both = gpu_env({"cuda.shares": {"0": D(3), "1": D(3)}}, **kw)
    assert both["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=18432M,1=9216M"


def test_eighth_of_an_a100():
    devices = agent_devices(gpus("query-gpu-8-a100-80gb.txt"), shares_per_device=8)
    env = gpu_env(
        {"cuda.shares": {"5": D("1.5")}}, gpu_memory=device_memory(devices), shares_per_device=device_shares(devices)
    )
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=15360M"  # 1.5/8 of 80 GiB
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "19"  # 18.75 rounded
    assert env["NVIDIA_VISIBLE_DEVICES"] == "5"


def test_shares_per_device_keep_a_request_of_one_device_or_less_on_one_device():
    four = [GpuDevice("0", D(4), D(1)), GpuDevice("1", D(4))]
    assert place_shares(four, D(3)) == {"0": D(3)}  # best fit: device 0 has exactly 3 free
    assert place_shares(four, D(4)) == {"1": D(4)}
    assert place_shares([GpuDevice("0", D(4), D(2)), GpuDevice("1", D(4), D(2))], D(4)) is None  # no device has 4
    assert place_shares([GpuDevice("0", D(4)), GpuDevice("1", D(4))], D(6)) == {"0": D(3), "1": D(3)}


# --- usage ---------------------------------------------------------------------------------------------


def test_usage_of_whole_devices_is_theirs():
    found = gpus("query-gpu-8-a100-80gb.txt")
    usage = session_gpu_usage({"cuda.device": {"0": 1, "1": 1}}, found)
    assert usage == {"gpu_percent": 198.0, "gpu_mem_bytes": 2 * 75210 * MIB}
    assert session_gpu_usage({"cuda.device": {"2": 1}}, found) == {"gpu_percent": 0.0, "gpu_mem_bytes": 4 * MIB}
    mig = gpus("query-gpu-mig-a100.txt")
    assert session_gpu_usage({"cuda.device": {"0": 1}}, mig) == {"gpu_percent": None, "gpu_mem_bytes": 0}


def test_usage_of_a_shared_device_is_its_processes_memory_only():
    found = gpus("query-gpu-2-rtx3090-rtx3060.txt")
    apps = parse_compute_apps(recorded("compute-apps-mps.txt"))
    placement = {"cuda.shares": {"0": D(2)}}
    mine = session_gpu_usage(placement, found, apps, pids=[41877, 41990, 1])
    assert mine == {"gpu_percent": None, "gpu_mem_bytes": (6144 + 2048) * MIB}
    # A process of the session on another device does not count on this one.
    assert session_gpu_usage(placement, found, apps, pids=[52101]) == {"gpu_percent": None, "gpu_mem_bytes": 0}
    assert session_gpu_usage(placement, found, apps, pids=[]) == {"gpu_percent": None, "gpu_mem_bytes": None}


def test_usage_of_a_device_nvidia_smi_no_longer_lists_is_unknown():
    found, _ = parse_query_gpu(recorded("query-gpu-lost-v100.txt"))
    assert session_gpu_usage({"cuda.device": {"1": 1}}, found) == {"gpu_percent": None, "gpu_mem_bytes": None}
    assert session_gpu_usage({}, found) == {"gpu_percent": None, "gpu_mem_bytes": None}


# --- running it: the fake nvidia-smi on PATH ----------------------------------------------------------


@pytest.fixture
def fake_nvidia_smi(tmp_path, monkeypatch):
    """Put the FAKE nvidia-smi (this machine has no GPU) first on PATH; returns a setter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(RECORDED / "fake-nvidia-smi", bin_dir / "nvidia-smi")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(hub_nvidia, "_snapshot", None)

    def use(gpus_file: str, apps_file: str | None = None, status: int = 0) -> None:
        monkeypatch.setenv("FAKE_NVIDIA_SMI_GPUS", str(RECORDED / gpus_file))
        if apps_file:
            monkeypatch.setenv("FAKE_NVIDIA_SMI_APPS", str(RECORDED / apps_file))
        monkeypatch.setenv("FAKE_NVIDIA_SMI_EXIT", str(status))
        monkeypatch.setattr(hub_nvidia, "_snapshot", None)

    return use


def test_queries_run_the_program_on_path(fake_nvidia_smi):
    fake_nvidia_smi("query-gpu-8-a100-80gb.txt", "compute-apps-mps.txt")
    assert [g.index for g in hub_nvidia.query_gpus()] == [str(i) for i in range(8)]
    assert len(hub_nvidia.query_compute_apps()) == 5
    found, apps = hub_nvidia.snapshot(with_apps=True)
    assert len(found) == 8 and len(apps) == 5


def test_a_failing_nvidia_smi_raises_its_message(fake_nvidia_smi):
    fake_nvidia_smi("error-no-driver.txt", status=9)
    with pytest.raises(NvidiaSmiError, match="couldn't communicate with the NVIDIA driver"):
        hub_nvidia.query_gpus()


def test_no_nvidia_smi_is_no_gpu(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert hub_nvidia.query_gpus() is None and hub_nvidia.query_compute_apps() is None
