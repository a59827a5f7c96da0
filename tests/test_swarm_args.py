"""SessionSpec -> docker-py's create_service arguments: pure translation, checked as plain dicts."""

from __future__ import annotations

import pytest

from jupyter_backendai.hub.spec import FolderRef, SpecError, build_spec
from jupyter_backendai.hub.swarm_args import NodeAgent, node_agents, swarm_service_spec

SID = "6f1c1a9e-3f0b-4c1e-9d43-0d3b5c7a2e11"
NODE = "dxb285dlpuqrd352j8l0nrcin"


def spec(**kw):
    args = dict(
        session_id=SID,
        session_name="train-1",
        user="alice",
        email="alice@example.org",
        access_key="AKIATESTTESTTEST0000",
        resource_group="default",
        image="session:local",
        slots={"cpu": "1.5", "mem": "4g"},
    )
    args.update(kw)
    return build_spec(**args)


def service(s=None, **kw):
    return swarm_service_spec(s or spec(), NODE, port=9000, ip="10.231.200.12", **kw)


def test_one_pinned_replica_that_is_never_restarted():
    kw = service()
    assert kw["name"] == f"backendai-session-{SID}"
    assert kw["mode"] == {"replicated": {"Replicas": 1}}
    task = kw["task_template"]
    assert task["Placement"] == {"Constraints": [f"node.id=={NODE}"]}
    assert task["RestartPolicy"]["Condition"] == "none"
    assert task["Networks"] == [{"Target": "host"}]
    assert kw["endpoint_spec"] == {"Mode": "dnsrr"}  # nothing published on the host network


def test_container_command_env_user_labels():
    c = service()["task_template"]["ContainerSpec"]
    assert c["Image"] == "session:local"
    assert c["Args"] == ["jupyterhub-singleuser", "--ip=10.231.200.12", "--port=9000"]
    assert c.get("Command") is None  # the image's entrypoint stays, as with create_container
    assert c["User"] == "1000:1000"
    assert c["Dir"] == "/home/work"
    assert f"BACKENDAI_SESSION_ID={SID}" in c["Env"]
    assert c["Labels"]["ai.backend.session-id"] == SID
    assert service()["labels"]["ai.backend.user"] == "alice"
    assert c["Init"] is True


def test_capabilities_all_dropped_none_added():
    c = service()["task_template"]["ContainerSpec"]
    assert c["CapabilityDrop"] == ["ALL"]
    assert "CapabilityAdd" not in c


def test_reservations_equal_limits_and_pids():
    res = service(spec(slots={"cpu": "0.3333333333", "mem": "1g"}))["task_template"]["Resources"]
    assert res == {
        "Limits": {"NanoCPUs": 333333333, "MemoryBytes": 1024**3, "Pids": 4096},
        "Reservations": {"NanoCPUs": 333333333, "MemoryBytes": 1024**3},
    }


def test_folders_are_bind_mounts_read_only_where_shared_ro_and_shm_a_tmpfs():
    s = spec(
        folders=[FolderRef("data", "/storage/local/ab/data", "rw"), FolderRef("papers", "/storage/local/cd", "ro")],
        shmem="64m",
    )
    assert service(s)["task_template"]["ContainerSpec"]["Mounts"] == [
        {"Target": "/home/work/data", "Source": "/storage/local/ab/data", "Type": "bind", "ReadOnly": False},
        {"Target": "/home/work/papers", "Source": "/storage/local/cd", "Type": "bind", "ReadOnly": True},
        {
            "Target": "/dev/shm",
            "Type": "tmpfs",
            "ReadOnly": False,
            "TmpfsOptions": {"Mode": 0o1777, "SizeBytes": 64 * 1024**2},
        },
    ]


def test_whole_gpus_are_generic_resources_and_the_chosen_devices_visible():
    s = spec(slots={"cpu": 1, "mem": "1g", "cuda.device": 2}, gpu_placement={"cuda.device": {"0": 1, "3": 1}})
    kw = service(s, gpu_resource="GPU")
    assert kw["task_template"]["Resources"]["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "GPU", "Value": 2}}
    ]
    assert "NVIDIA_VISIBLE_DEVICES=0,3" in kw["task_template"]["ContainerSpec"]["Env"]


def test_shared_gpus_reserve_no_generic_resource():
    s = spec(slots={"cpu": 1, "mem": "1g", "cuda.shares": "0.5"}, gpu_placement={"cuda.shares": {"1": "0.5"}})
    res = service(s)["task_template"]["Resources"]["Reservations"]
    assert "GenericResources" not in res


@pytest.mark.parametrize(
    ("slots", "match"), [({"cpu": "0.001", "mem": "1g"}, "minimum"), ({"cpu": 1, "mem": "1m"}, "minimum")]
)
def test_below_the_engines_minimum_is_refused(slots, match):
    with pytest.raises(SpecError, match=match):
        service(spec(slots=slots))


@pytest.mark.parametrize("node", ["", "a b", "x==y", "a,b"])
def test_a_node_id_that_would_change_the_constraint_is_refused(node):
    with pytest.raises(SpecError, match="node id"):
        swarm_service_spec(spec(), node, port=9000, ip="10.0.0.1")


KEYS = {"ssh_public_key": "ssh-ed25519 AAAA a@b", "ssh_private_key": "-----BEGIN-----\nx\n-----END-----\n"}


def test_sshd_cannot_get_its_keys_into_a_service():
    with pytest.raises(SpecError, match="SSH"):
        service(spec(ssh_port=2200, **KEYS))


def test_without_sshd_the_key_files_are_left_out():
    c = service(spec(**KEYS))["task_template"]["ContainerSpec"]
    assert "BEGIN" not in str(c) and "Secrets" not in c and "Configs" not in c


# --- nodes as agents ------------------------------------------------------------------------------


def node(node_id, state="ready", availability="active", labels=None, generic=None, addr="10.231.200.12", manager=None):
    n = {
        "ID": node_id,
        "Spec": {"Labels": labels or {}, "Role": "worker", "Availability": availability},
        "Description": {
            "Hostname": f"host-{node_id}",
            "Resources": {"NanoCPUs": 4_000_000_000, "MemoryBytes": 8 * 1024**3, "GenericResources": generic or []},
        },
        "Status": {"State": state, "Addr": addr},
    }
    if manager:
        n["ManagerStatus"] = {"Leader": True, "Addr": manager}
    return n


def test_ready_active_nodes_are_alive_schedulable_agents_with_their_capacity():
    (a,) = node_agents([node("n1")])
    assert a == NodeAgent(
        id="n1", hostname="host-n1", addr="10.231.200.12", alive=True, schedulable=True, resource_group="default",
        capacity={"cpu": "4", "mem": str(8 * 1024**3)}, devices=[], state="ready/active",
    )  # fmt: skip


def test_drained_and_paused_nodes_are_unschedulable_down_ones_lost():
    agents = {a.id: a for a in node_agents([node("a", availability="drain"), node("b", availability="pause"),
                                            node("c", state="down"), node("d", state="disconnected")])}  # fmt: skip
    assert [(agents[i].alive, agents[i].schedulable) for i in "ab"] == [(True, False), (True, False)]
    assert [agents[i].alive for i in "cd"] == [False, False]


def test_resource_group_from_the_configured_node_label():
    agents = node_agents(
        [node("a", labels={"rg": "gpu"}), node("b", labels={"ai.backend.resource-group": "x"}), node("c")],
        group_label="rg",
        default_group="main",
    )
    assert [a.resource_group for a in agents] == ["gpu", "main", "main"]


def test_a_manager_reporting_0_0_0_0_is_reached_at_its_advertised_address():
    (a,) = node_agents([node("m", addr="0.0.0.0", manager="10.231.200.11:2377")])
    assert a.addr == "10.231.200.11"


def test_gpus_from_named_and_discrete_generic_resources():
    named = [{"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-aa"}},
             {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-bb"}},
             {"NamedResourceSpec": {"Kind": "FPGA", "Value": "f0"}}]  # fmt: skip
    (a,) = node_agents([node("g", generic=named)])
    assert a.devices == [{"id": "GPU-aa", "capacity": 1}, {"id": "GPU-bb", "capacity": 1}]
    assert a.capacity["cuda.device"] == a.capacity["cuda.shares"] == "2"
    (b,) = node_agents([node("h", generic=[{"DiscreteResourceSpec": {"Kind": "GPU", "Value": 2}}])], gpu_resource="GPU")
    assert [d["id"] for d in b.devices] == ["0", "1"]
