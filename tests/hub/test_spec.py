"""SessionSpec building: pure, so every rule is checked with exact values and no engine."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from jupyter_backendai.core.gpu import GpuDevice, place
from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.hub.spec import (
    DEFAULT_GPU_MEMORY,
    ID_CONTAINER,
    MPS_PIPE_DIRECTORY,
    SESSION_AUTHORIZED_KEYS,
    ContainerFile,
    FolderMount,
    FolderRef,
    HostMount,
    SpecError,
    check_folder_name,
    container_files,
    gpu_device_ids,
    gpu_env,
)
from testing.spec import ACCESS, GIB, PRIVATE, PUBLIC, SID, spec

SECRET = "s3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tS3CR3Tabcd"  # never an input: only checked to be absent


# --- identity, env, labels ---------------------------------------------------------------------


def test_labels_are_exact():
    s = spec()
    assert dict(s.labels) == {
        "ai.backend.session-id": SID,
        "ai.backend.session-name": "train-1",
        "ai.backend.user": "alice",
        "ai.backend.access-key": ACCESS,
        "ai.backend.resource-group": "default",
        "org.jupyter-backendai.managed": "true",
    }


def test_env_has_session_identity_and_hub_env():
    s = spec(hub_env={"JUPYTERHUB_API_TOKEN": "tok", "JUPYTERHUB_USER": "alice", "HOME": "/root", "USER": "root"})
    assert dict(s.env) == {
        "JUPYTERHUB_API_TOKEN": "tok",
        "JUPYTERHUB_USER": "alice",
        "HOME": "/home/work",  # the session's values win over the hub's
        "USER": "work",
        "BACKENDAI_SESSION_ID": SID,
        "BACKENDAI_SESSION_NAME": "train-1",
        "BACKENDAI_ACCESS_KEY": ACCESS,
        "BACKENDAI_RESOURCE_GROUP": "default",
    }


def test_uuid_session_id_is_stringified():
    sid = uuid.UUID(SID)
    s = spec(session_id=sid)
    assert s.session_id == SID
    assert s.env["BACKENDAI_SESSION_ID"] == SID
    assert s.labels["ai.backend.session-id"] == SID


def test_no_secret_in_env_or_labels():
    s = spec(ssh_port=10022, ssh_public_key=PUBLIC, ssh_private_key=PRIVATE, hub_env={"JUPYTERHUB_API_TOKEN": "t"})
    everything = " ".join([*s.env, *s.env.values(), *s.labels, *s.labels.values()])
    assert SECRET not in everything
    assert "PRIVATE KEY" not in everything
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in everything
    assert "SECRET" not in everything.upper()
    assert PRIVATE not in repr(s)  # a spec in a log line does not leak the key


@pytest.mark.parametrize("name", ["BACKENDAI_SECRET_KEY", "BACKEND_SECRET_KEY"])
def test_secret_key_env_is_refused(name):
    with pytest.raises(SpecError, match=f"env {name} would put a secret key"):
        spec(hub_env={name: SECRET})


def test_private_key_in_env_is_refused():
    with pytest.raises(SpecError, match="env KEY holds a private key"):
        spec(hub_env={"KEY": PRIVATE})
    with pytest.raises(SpecError, match="env K2 holds a private key"):
        spec(
            hub_env={"K2": "b3BlbnNzaC1rZXktdjEAAAAA"},
            ssh_public_key=PUBLIC,
            ssh_private_key="b3BlbnNzaC1rZXktdjEAAAAA",
        )


@pytest.mark.parametrize(
    "env, message",
    [
        ({"": "x"}, "env name '' is empty"),
        ({"A=B": "x"}, "contains '='"),
        ({"A": 1}, "env A must be a string"),
        ({"A": "x\x00y"}, "env A must be a string without NUL"),
    ],
)
def test_bad_env_is_refused(env, message):
    with pytest.raises(SpecError, match=message):
        spec(hub_env=env)


def test_spec_is_immutable():
    s = spec()
    with pytest.raises(TypeError):
        s.env["X"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        s.labels["X"] = "y"  # type: ignore[index]
    with pytest.raises(AttributeError):
        s.image = "other"  # type: ignore[misc]


def test_user_is_never_root():
    s = spec()
    assert (s.uid, s.gid, s.home) == (1000, 1000, "/home/work")
    with pytest.raises(SpecError, match="uid must be a positive number: sessions never run as root"):
        spec(uid=0)
    with pytest.raises(SpecError, match="gid must be a positive number"):
        spec(gid=0)


def test_command_and_args():
    assert spec().cmd == ("jupyterhub-singleuser",)
    s = spec(cmd=["start-singleuser.sh"], args=["--debug"])
    assert (s.cmd, s.args) == (("start-singleuser.sh",), ("--debug",))
    with pytest.raises(SpecError, match="the command is empty"):
        spec(cmd=[])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("image", "", "image must be a non-empty string"),
        ("image", "a b", "image 'a b' contains white space"),
        ("session_name", "x\ny", "contains a control character"),
        ("access_key", "", "access key must be a non-empty string"),
        ("pids_limit", 0, "pids limit must be a positive number"),
    ],
)
def test_bad_identity_is_refused(field, value, message):
    with pytest.raises(SpecError, match=message):
        spec(**{field: value})


# --- slots ------------------------------------------------------------------------------------


def test_slots_and_shmem():
    s = spec(shmem="1g")
    assert s.slots == ResourceSlots({"cpu": Decimal("1.5"), "mem": 4 * GIB})
    assert s.shmem == GIB
    assert spec().shmem is None
    assert spec(shmem=64 * 1024**2).shmem == 67108864


def test_shmem_over_mem_is_refused():
    with pytest.raises(SpecError, match=r"shmem 5 GiB exceeds mem 4 GiB: shared memory is charged"):
        spec(shmem="5g")
    assert spec(shmem="4g").shmem == 4 * GIB


def test_slots_below_image_minimum_are_refused_not_raised():
    with pytest.raises(SpecError, match=r"below the image's minimum: cpu 1.5 < 2"):
        spec(image_min={"cpu": 2, "mem": "1g"})
    assert spec(image_min={"cpu": "1.5", "mem": "256m"}).slots["cpu"] == Decimal("1.5")


@pytest.mark.parametrize(
    "slots, message",
    [
        ({"cpu": 1}, "the slots must hold mem"),
        ({"mem": "1g"}, "the slots must hold cpu"),
        ({}, "the slots must hold cpu and mem"),
        ({"cpu": "unlimited", "mem": "1g"}, "cannot get an unlimited amount of cpu"),
        ({"cpu": "-1", "mem": "1g"}, "cpu: '-1' is negative"),
    ],
)
def test_bad_slots_are_refused(slots, message):
    with pytest.raises(SpecError, match=message):
        spec(slots=slots)


# --- folders ----------------------------------------------------------------------------------


def test_chosen_folders_are_mounted_with_their_permission():
    s = spec(
        folders=[FolderRef("data", "/srv/vf/local/ab/data", "ro"), FolderRef("work", "/srv/vf/local/cd/work", "rw")]
    )
    assert s.mounts == (
        FolderMount("data", "/srv/vf/local/ab/data", "ro", automount=False),
        FolderMount("work", "/srv/vf/local/cd/work", "rw", automount=False),
    )
    assert [m.read_only for m in s.mounts] == [True, False]
    assert [m.target() for m in s.mounts] == ["/home/work/data", "/home/work/work"]
    assert s.ssh_authorized_keys_from is None


def test_wd_permission_mounts_read_write():
    m = spec(folders=[FolderRef("mine", "/srv/mine")]).mounts[0]
    assert (m.permission, m.read_only) == ("wd", False)


def test_dot_folders_are_automounted_without_duplicates():
    accessible = [
        FolderRef(".local", "/srv/vf/dotlocal", "wd"),
        FolderRef("data", "/srv/vf/data", "wd"),  # not a dot-folder: only when chosen
        FolderRef(".linuxbrew", "/srv/vf/brew", "wd"),
    ]
    s = spec(folders=[FolderRef(".local", "/srv/vf/dotlocal", "ro")], accessible=accessible)
    assert s.mounts == (
        FolderMount(".local", "/srv/vf/dotlocal", "ro", automount=True),  # once, as chosen
        FolderMount(".linuxbrew", "/srv/vf/brew", "wd", automount=True),
    )


def test_same_folder_chosen_twice_is_mounted_once():
    ref = FolderRef("data", "/srv/vf/data")
    assert spec(folders=[ref, ref]).mounts == (FolderMount("data", "/srv/vf/data", "wd"),)


def test_two_folders_on_one_mount_point_are_refused():
    with pytest.raises(SpecError, match=r"two different folders named 'data' would both mount at /home/work/data"):
        spec(folders=[FolderRef("data", "/srv/a/data"), FolderRef("data", "/srv/b/data")])
    with pytest.raises(SpecError, match=r"two different folders named '.local'"):
        spec(folders=[FolderRef(".local", "/srv/a")], accessible=[FolderRef(".local", "/srv/b")])


def test_ssh_folder_is_used_for_authorized_keys():
    s = spec(
        accessible=[FolderRef(".ssh", "/srv/vf/ssh")], ssh_port=10022, ssh_public_key=PUBLIC, ssh_private_key=PRIVATE
    )
    assert s.mounts == (FolderMount(".ssh", "/srv/vf/ssh", "wd", automount=True),)
    assert s.ssh_authorized_keys_from == ".ssh"
    assert s.env["BACKENDAI_SSH_AUTHORIZED_KEYS"] == f"{SESSION_AUTHORIZED_KEYS} /home/work/.ssh/authorized_keys"


def test_id_container_is_reserved():
    with pytest.raises(SpecError, match=r"folder 'id_container' cannot be mounted: it would hide .*rename the folder"):
        spec(folders=[FolderRef(ID_CONTAINER, "/srv/vf/x")])


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "folder name '' is empty"),
        (".", "folder name '.' is not allowed"),
        ("..", "folder name '..' is not allowed"),
        ("a/b", "contains '/': a folder name must be a single path component"),
        ("../etc", "contains '/'"),
        ("a\x00b", "contains a control character"),
        ("a\nb", "contains a control character"),
        ("a:b", "contains ':'"),
        ("x" * 256, "longer than 255 bytes"),
    ],
)
def test_bad_folder_names_are_refused(name, message):
    with pytest.raises(SpecError, match=message):
        check_folder_name(name)
    with pytest.raises(SpecError, match=message):
        FolderRef(name, "/srv/vf/x")


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


@pytest.mark.parametrize(
    "path, message",
    [
        ("relative/x", "must be an absolute path"),
        ("/srv/../etc", "is not normalised"),
        ("/srv//x", "is not normalised"),
        ("/srv/./x", "is not normalised"),
        ("/srv/a:b", "contains NUL or ':'"),
    ],
)
def test_bad_host_paths_are_refused(path, message):
    with pytest.raises(SpecError, match=message):
        FolderRef("x", path)


def test_bad_permission_is_refused():
    with pytest.raises(SpecError, match="permission 'rwx' is not one of ro, rw, wd"):
        FolderRef("x", "/srv/x", "rwx")


def test_permission_enum_is_accepted():
    from jupyter_backendai.db.models import FolderPermission

    assert FolderRef("x", "/srv/x", FolderPermission.READ_ONLY).permission == "ro"


# --- SSH --------------------------------------------------------------------------------------


def test_ssh_files_and_env():
    s = spec(ssh_port=10022, ssh_public_key=PUBLIC, ssh_private_key=PRIVATE)
    assert s.env["BACKENDAI_SSH_PORT"] == "10022"
    assert s.env["BACKENDAI_SSH_AUTHORIZED_KEYS"] == "/etc/backendai/ssh/authorized_keys"
    assert container_files(s) == (
        ContainerFile("/home/work/id_container", PRIVATE, 0o600),
        ContainerFile("/etc/backendai/ssh/authorized_keys", PUBLIC + "\n", 0o600),
    )


def test_keys_without_port_still_give_id_container():
    s = spec(ssh_public_key=PUBLIC, ssh_private_key=PRIVATE.rstrip("\n"))
    assert "BACKENDAI_SSH_PORT" not in s.env
    assert container_files(s)[0] == ContainerFile("/home/work/id_container", PRIVATE, 0o600)
    assert container_files(spec()) == ()


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"ssh_public_key": PUBLIC}, "both halves of the SSH key pair or neither"),
        ({"ssh_private_key": PRIVATE}, "both halves of the SSH key pair or neither"),
        ({"ssh_port": 10022}, "an SSH port needs the user's SSH key pair"),
        ({"ssh_port": 22, "ssh_public_key": PUBLIC, "ssh_private_key": PRIVATE}, "from 1024 to 65535"),
        ({"ssh_port": 70000, "ssh_public_key": PUBLIC, "ssh_private_key": PRIVATE}, "from 1024 to 65535"),
        ({"ssh_public_key": PRIVATE, "ssh_private_key": PRIVATE}, "the SSH public key is a private key"),
        ({"ssh_public_key": PUBLIC, "ssh_private_key": " "}, "the SSH private key is empty"),
        ({"ssh_public_key": "a\nb", "ssh_private_key": PRIVATE}, "the SSH public key must be one non-empty line"),
    ],
)
def test_bad_ssh_settings_are_refused(kw, message):
    with pytest.raises(SpecError, match=message) as info:
        spec(**kw)
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in str(info.value)  # errors never quote a private key


# --- GPU --------------------------------------------------------------------------------------
# No GPU exists on this machine: these tests check the generated spec and env, which is what
# the engine and NVIDIA's toolkit are given.


def test_no_gpu_no_gpu_env():
    s = spec()
    assert dict(s.gpu_placement) == {}
    assert gpu_device_ids(s) == []
    assert not any(k.startswith(("CUDA_", "NVIDIA_")) for k in s.env)
    assert s.extra_mounts == ()


def test_whole_gpus():
    """No GPU here: the spec's device ids and env are what is checked."""
    s = spec(slots={"cpu": 4, "mem": "16g", "cuda.device": 2}, gpu_placement={"cuda.device": {"3": 1, "1": "1"}})
    assert gpu_device_ids(s) == ["1", "3"]
    assert s.env["NVIDIA_VISIBLE_DEVICES"] == "1,3"
    assert s.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert not any(k.startswith("CUDA_MPS") for k in s.env)
    assert s.extra_mounts == ()


def test_whole_gpus_from_core_placement():
    """No GPU here: the placement comes from core.gpu over made-up devices."""
    devices = [GpuDevice("0", shares_used=Decimal("0.5")), GpuDevice("1"), GpuDevice("2")]
    placement = place(devices, whole=2)
    s = spec(slots={"cpu": 4, "mem": "16g", "cuda.device": 2}, gpu_placement=placement)
    assert gpu_device_ids(s) == ["1", "2"]


def test_single_device_share_env():
    """No GPU here: the MPS variables generated for 0.5 of device 2 are what is checked."""
    s = spec(slots={"cpu": 2, "mem": "8g", "cuda.shares": "0.5"}, gpu_placement={"cuda.shares": {"2": "0.5"}})
    assert gpu_device_ids(s) == ["2"]
    gpu = {k: v for k, v in s.env.items() if k.startswith(("CUDA_", "NVIDIA_"))}
    assert gpu == {
        "NVIDIA_VISIBLE_DEVICES": "2",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_MPS_PIPE_DIRECTORY": "/tmp/nvidia-mps",
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "50",
        # 0.5 of the default 16 GiB, as the in-container ordinal 0
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=8192M",
    }
    assert s.extra_mounts == (HostMount("/tmp/nvidia-mps", MPS_PIPE_DIRECTORY, read_only=False),)


def test_share_percentage_rounds_half_up_and_memory_floors():
    """No GPU here: 0.335 of a 10 GB device."""
    env = gpu_env({"cuda.shares": {"0": Decimal("0.335")}}, gpu_memory=10_000_000_000)
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "34"
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=3194M"  # floor(0.335 * 1e10 / 2**20)


def test_split_share_env_uses_smallest_share():
    """No GPU here: an uneven split of 1.5 (1.0 on device 0, 0.5 on device 1)."""
    s = spec(
        slots={"cpu": 2, "mem": "8g", "cuda.shares": "1.5"},
        gpu_placement={"cuda.shares": {"1": "0.5", "0": "1"}},
        gpu_memory={"0": 40 * GIB, "1": 24 * GIB},
    )
    assert gpu_device_ids(s) == ["0", "1"]
    assert s.env["NVIDIA_VISIBLE_DEVICES"] == "0,1"
    assert s.env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"
    assert s.env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=40960M,1=12288M"


def test_even_split_from_core_placement():
    """No GPU here: core.gpu splits 1.5 shares over two free devices as 0.75 + 0.75."""
    devices = [GpuDevice("0"), GpuDevice("1"), GpuDevice("2", shares_used=Decimal("0.9"))]
    placement = place(devices, shares=Decimal("1.5"))
    s = spec(slots={"cpu": 2, "mem": "8g", "cuda.shares": "1.5"}, gpu_placement=placement)
    assert s.env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "75"
    assert s.env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=12288M,1=12288M"


def test_shares_per_device_scales_percentage_and_memory():
    """No GPU here: an operator defines 1 GPU = 2 shares; 0.5 share is a quarter of a GPU."""
    env = gpu_env({"cuda.shares": {"0": Decimal("0.5")}}, shares_per_device=2, gpu_memory=16 * GIB)
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=4096M"


def test_tiny_share_is_at_least_one_percent():
    env = gpu_env({"cuda.shares": {"0": Decimal("0.001")}})
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "1"
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=16M"
    assert DEFAULT_GPU_MEMORY == 16 * GIB


def test_mps_pipe_dir_is_a_parameter():
    s = spec(
        slots={"cpu": 1, "mem": "1g", "cuda.shares": "0.2"},
        gpu_placement={"cuda.shares": {"0": "0.2"}},
        mps_pipe_host_dir="/run/nvidia-mps",
    )
    assert s.extra_mounts == (HostMount("/run/nvidia-mps", "/tmp/nvidia-mps", read_only=False),)
    assert s.env["CUDA_MPS_PIPE_DIRECTORY"] == "/tmp/nvidia-mps"


@pytest.mark.parametrize(
    "slots, placement, message",
    [
        ({"cuda.device": 1}, {}, "cuda.device: the slots ask for 1 GPUs, the placement has 0"),
        ({}, {"cuda.device": {"0": 1}}, "the slots ask for 0 GPUs, the placement has 1"),
        ({"cuda.device": 1}, {"cuda.device": {"0": "0.5"}}, "a whole GPU is 1"),
        ({"cuda.shares": "0.5"}, {"cuda.shares": {"0": "0.4"}}, "the slots ask for 0.5, the placement holds 0.4"),
        ({}, {"cuda.shares": {"0": "0.4"}}, "the slots ask for 0, the placement holds 0.4"),
        (
            {"cuda.device": 1, "cuda.shares": "0.5"},
            {"cuda.device": {"0": 1}, "cuda.shares": {"1": "0.5"}},
            "either whole GPUs .* or GPU shares .*, not both",
        ),
        ({"cuda.shares": "0.5"}, {"rocm.device": {"0": 1}}, "unknown slots"),
        ({"cuda.shares": "0.5"}, {"cuda.shares": {"0,1": "0.5"}}, "'0,1' is not a device id"),
        ({"cuda.shares": "0.5"}, {"cuda.shares": {"0": "0"}}, "device '0' gets '0'"),
    ],
)
def test_inconsistent_gpu_placement_is_refused(slots, placement, message):
    with pytest.raises(SpecError, match=message):
        spec(slots={"cpu": 1, "mem": "1g", **slots}, gpu_placement=placement)


def test_bad_gpu_memory_is_refused():
    with pytest.raises(SpecError, match="GPU memory of device '0' must be a positive number of bytes"):
        gpu_env({"cuda.shares": {"0": Decimal("0.5")}}, gpu_memory=0)
