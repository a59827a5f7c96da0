"""SessionSpec -> docker-py arguments: pure translation, checked value by value without an engine."""

from __future__ import annotations

import io
import tarfile
from decimal import Decimal

import pytest
from docker.types import DeviceRequest, HostConfig

from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.hub.docker_args import (
    CAP_ADD,
    create_kwargs,
    device_requests,
    docker_create_kwargs,
    files_archive,
    host_config_kwargs,
    log_config,
)
from jupyter_backendai.hub.spec import FolderRef, SessionSpec, SpecError
from testing.spec import GIB, LABELS, PRIVATE, PUBLIC, SID, spec

# --- limits -----------------------------------------------------------------------------------


def test_limits_translation():
    hc = host_config_kwargs(spec(shmem="512m"))
    assert hc["nano_cpus"] == 1500000000
    assert hc["mem_limit"] == 4294967296
    assert hc["memswap_limit"] == 4294967296  # no swap beyond the memory limit
    assert hc["shm_size"] == 536870912
    assert hc["pids_limit"] == 4096


def test_fractional_cpu_rounds_down_to_a_nanocpu():
    assert host_config_kwargs(spec(slots={"cpu": "0.3333333333", "mem": "1g"}))["nano_cpus"] == 333333333
    assert host_config_kwargs(spec(slots={"cpu": 8, "mem": "1g"}))["nano_cpus"] == 8000000000


def test_no_shmem_leaves_the_engine_default():
    assert "shm_size" not in host_config_kwargs(spec())


def test_pids_limit_can_be_lifted():
    assert "pids_limit" not in host_config_kwargs(spec(pids_limit=None))
    assert host_config_kwargs(spec(pids_limit=256))["pids_limit"] == 256


def test_below_docker_minimums_is_refused():
    with pytest.raises(SpecError, match=r"cpu 0.005 is below Docker's minimum of 0.01"):
        host_config_kwargs(spec(slots={"cpu": "0.005", "mem": "1g"}))
    with pytest.raises(SpecError, match=r"below Docker's minimum of 6 MiB"):
        host_config_kwargs(spec(slots={"cpu": 1, "mem": "1m"}))


# --- security ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"ssh_port": 10022, "ssh_public_key": PUBLIC, "ssh_private_key": PRIVATE},
        {"slots": {"cpu": 1, "mem": "1g", "cuda.shares": "0.5"}, "gpu_placement": {"cuda.shares": {"0": "0.5"}}},
    ],
)
def test_security_options_are_always_present(kw):
    s = spec(**kw)
    for network in ("host", "sessions"):
        hc = host_config_kwargs(s, network=network)
        assert hc["cap_drop"] == ["ALL"]
        assert hc["cap_add"] == [] == list(CAP_ADD)
        assert hc["security_opt"] == ["no-new-privileges"]
        assert hc["init"] is True
        assert "privileged" not in hc
        ck = create_kwargs(s, port=20000, network=network)
        assert ck["user"] == "1000:1000"


def test_user_and_working_dir():
    ck = create_kwargs(spec(), port=20000)
    assert (ck["user"], ck["working_dir"], ck["image"]) == ("1000:1000", "/home/work", "session:local")


# --- mounts -----------------------------------------------------------------------------------


def test_binds_read_only_and_read_write():
    s = spec(
        folders=[FolderRef("data", "/srv/vf/local/data", "ro"), FolderRef("work", "/srv/vf/local/work", "rw")],
        accessible=[FolderRef(".local", "/srv/vf/local/dotlocal", "wd"), FolderRef("other", "/srv/vf/local/other")],
    )
    assert host_config_kwargs(s)["binds"] == [
        "/srv/vf/local/data:/home/work/data:ro",
        "/srv/vf/local/work:/home/work/work:rw",
        "/srv/vf/local/dotlocal:/home/work/.local:rw",
    ]


def test_no_folders_no_binds():
    assert host_config_kwargs(spec())["binds"] == []


# --- create part ------------------------------------------------------------------------------


def test_create_kwargs_exact():
    s = spec(hub_env={"JUPYTERHUB_API_TOKEN": "tok"}, cmd=["jupyterhub-singleuser"], args=["--debug"])
    assert create_kwargs(s, port=23456) == {
        "image": "session:local",
        "command": ["jupyterhub-singleuser", "--debug", "--ip=127.0.0.1", "--port=23456"],
        "user": "1000:1000",
        "working_dir": "/home/work",
        "environment": {
            "JUPYTERHUB_API_TOKEN": "tok",
            "HOME": "/home/work",
            "USER": "work",
            "BACKENDAI_SESSION_ID": SID,
            "BACKENDAI_SESSION_NAME": "train-1",
            "BACKENDAI_ACCESS_KEY": "AKIATESTTESTTEST0000",
            "BACKENDAI_RESOURCE_GROUP": "default",
        },
        "labels": LABELS,
    }


def test_environment_and_labels_are_plain_copies():
    s = spec()
    ck = create_kwargs(s, port=20000)
    assert type(ck["environment"]) is dict and type(ck["labels"]) is dict
    ck["environment"]["X"] = "y"
    assert "X" not in s.env


def test_host_network_exposes_no_ports_other_networks_do():
    s = spec(ssh_port=10022, ssh_public_key=PUBLIC, ssh_private_key=PRIVATE)
    assert "ports" not in create_kwargs(s, port=20000)
    assert host_config_kwargs(s)["network_mode"] == "host"
    ck = create_kwargs(s, port=20000, ip="0.0.0.0", network="sessions")
    assert ck["ports"] == [20000, 10022]
    assert ck["command"][-2:] == ["--ip=0.0.0.0", "--port=20000"]
    assert host_config_kwargs(s, network="sessions")["network_mode"] == "sessions"


@pytest.mark.parametrize("port", [0, 80, 1023, 65536, True, "8888"])
def test_bad_server_port_is_refused(port):
    with pytest.raises(SpecError, match="server port"):
        create_kwargs(spec(), port=port)


def test_docker_create_kwargs_combines_both():
    s = spec(shmem="1g")
    kw = docker_create_kwargs(s, port=20000)
    assert kw["host_config"] == host_config_kwargs(s)
    assert {k: v for k, v in kw.items() if k != "host_config"} == create_kwargs(s, port=20000)


def test_no_secret_in_create_arguments():
    kw = docker_create_kwargs(spec(ssh_port=10022, ssh_public_key=PUBLIC, ssh_private_key=PRIVATE), port=20000)
    assert "PRIVATE KEY" not in repr(kw)
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in repr(kw)


def test_host_config_is_accepted_by_docker_py():
    """docker-py's own HostConfig builds from the kwargs (API 1.41, no engine contacted)."""
    s = spec(
        shmem="1g",
        folders=[FolderRef("data", "/srv/vf/data", "ro")],
        slots={"cpu": 2, "mem": "8g", "cuda.device": 1},
        gpu_placement={"cuda.device": {"0": 1}},
    )
    hc = HostConfig(version="1.41", **host_config_kwargs(s))
    assert hc["NanoCpus"] == 2000000000
    assert hc["Memory"] == hc["MemorySwap"] == 8 * GIB
    assert hc["ShmSize"] == GIB
    assert hc["PidsLimit"] == 4096
    assert hc["CapDrop"] == ["ALL"]
    assert "CapAdd" not in hc
    assert hc["SecurityOpt"] == ["no-new-privileges"]
    assert hc["Binds"] == ["/srv/vf/data:/home/work/data:ro"]
    assert hc["NetworkMode"] == "host"
    assert hc["Init"] is True
    assert hc["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu"]], "Options": {}}
    ]


# --- GPUs ---------------------------------------------------------------------------------------
# No GPU exists on this machine: what is tested is the generated arguments (device requests,
# env, the MPS pipe mount), i.e. what Docker and NVIDIA's toolkit would be given.


def test_no_gpu_no_device_requests():
    assert device_requests(spec()) == []
    assert "device_requests" not in host_config_kwargs(spec())


def test_whole_gpu_device_requests():
    """No GPU here: the device request for whole GPUs 1 and 3 is checked, not a running container."""
    s = spec(slots={"cpu": 4, "mem": "16g", "cuda.device": 2}, gpu_placement={"cuda.device": {"3": 1, "1": 1}})
    hc = host_config_kwargs(s)
    assert hc["device_requests"] == [DeviceRequest(driver="nvidia", device_ids=["1", "3"], capabilities=[["gpu"]])]
    assert isinstance(hc["device_requests"][0], DeviceRequest)
    env = create_kwargs(s, port=20000)["environment"]
    assert env["NVIDIA_VISIBLE_DEVICES"] == "1,3"
    assert not any(k.startswith("CUDA_MPS") for k in env)
    assert not any("nvidia-mps" in b for b in hc["binds"])


def test_single_device_share_arguments():
    """No GPU here: 0.25 of device 0 gives a device request, the MPS env and the pipe mount."""
    s = spec(slots={"cpu": 1, "mem": "2g", "cuda.shares": "0.25"}, gpu_placement={"cuda.shares": {"0": "0.25"}})
    hc = host_config_kwargs(s)
    assert hc["device_requests"] == [DeviceRequest(driver="nvidia", device_ids=["0"], capabilities=[["gpu"]])]
    assert hc["binds"] == ["/tmp/nvidia-mps:/tmp/nvidia-mps:rw"]
    env = create_kwargs(s, port=20000)["environment"]
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == "/tmp/nvidia-mps"
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=4096M"


def test_split_share_arguments():
    """No GPU here: 1.01 shares split 0.51 + 0.50 over devices 2 and 5 (24 GiB each)."""
    s = spec(
        slots={"cpu": 1, "mem": "2g", "cuda.shares": "1.01"},
        gpu_placement={"cuda.shares": {"5": Decimal("0.50"), "2": Decimal("0.51")}},
        gpu_memory=24 * GIB,
        mps_pipe_host_dir="/run/nvidia-mps",
        folders=[FolderRef("data", "/srv/vf/data")],
    )
    hc = host_config_kwargs(s)
    assert hc["device_requests"] == [DeviceRequest(driver="nvidia", device_ids=["2", "5"], capabilities=[["gpu"]])]
    assert hc["binds"] == ["/srv/vf/data:/home/work/data:rw", "/run/nvidia-mps:/tmp/nvidia-mps:rw"]
    env = create_kwargs(s, port=20000)["environment"]
    assert env["NVIDIA_VISIBLE_DEVICES"] == "2,5"
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"  # the smallest share of the split
    # 0.51 * 24 GiB = 12533.76 MiB -> 12533M for ordinal 0 (device 2); 0.50 -> 12288M for device 5
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=12533M,1=12288M"


# --- files --------------------------------------------------------------------------------------


def _members(data: bytes) -> dict[str, tuple[str, int, int, int, bytes | None]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            content = tar.extractfile(m).read() if m.isfile() else None
            out[m.name] = ("dir" if m.isdir() else "file", m.mode, m.uid, m.gid, content)
    return out


def test_files_archive():
    s = spec(ssh_public_key=PUBLIC, ssh_private_key=PRIVATE)
    assert _members(files_archive(s)) == {
        "home/work/id_container": ("file", 0o600, 1000, 1000, PRIVATE.encode()),
        "etc/backendai": ("dir", 0o755, 1000, 1000, None),
        "etc/backendai/ssh": ("dir", 0o700, 1000, 1000, None),
        "etc/backendai/ssh/authorized_keys": ("file", 0o600, 1000, 1000, (PUBLIC + "\n").encode()),
    }
    assert files_archive(s) == files_archive(s)  # deterministic


def test_files_archive_without_keys_is_empty():
    assert _members(files_archive(spec())) == {}


def test_spec_built_directly_translates_too():
    """A SessionSpec made by hand (other backends' tests do that) still translates."""
    s = SessionSpec(
        session_id="x",
        session_name="n",
        user="u",
        email="",
        access_key="AK",
        resource_group="rg",
        image="img:1",
        slots=ResourceSlots({"cpu": 1, "mem": "1g"}),
    )
    kw = docker_create_kwargs(s, port=30000)
    assert kw["host_config"]["nano_cpus"] == 1000000000
    assert kw["command"] == ["jupyterhub-singleuser", "--ip=127.0.0.1", "--port=30000"]


# --- the engine's log ---------------------------------------------------------------------------


def test_the_engines_log_is_bounded_near_what_the_hub_keeps():
    bounded = log_config(10 * 1024**2)
    assert bounded == {"type": "json-file", "config": {"max-size": str(10 * 1024**2), "max-file": "2"}}
    # docker-py takes it as it is.
    assert HostConfig(version="1.41", log_config=bounded)["LogConfig"]["Config"]["max-file"] == "2"
    assert log_config(5 * 1024**2, "local")["type"] == "local"
    # A tiny keep still leaves the engine a useful file; no driver: the engine's own is kept.
    assert log_config(10)["config"]["max-size"] == str(1024**2)
    assert log_config(10, "") is None


def test_an_unbounded_log_driver_is_refused():
    with pytest.raises(SpecError, match="only json-file and local"):
        log_config(1024, "fluentd")
