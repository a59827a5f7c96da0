"""SessionSpec -> docker-py's create_service arguments: pure translation, checked as plain dicts."""

from __future__ import annotations

import pytest

from jupyter_backendai.hub.spec import FolderRef, SpecError
from jupyter_backendai.hub.swarm_args import (
    NodeAgent,
    engine_stats_usage,
    node_agents,
    probe_verdict,
    session_secrets,
    storage_probe_spec,
    swarm_service_spec,
)
from testing.spec import SID, spec

NODE = "dxb285dlpuqrd352j8l0nrcin"


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


def test_shared_gpus_get_the_mps_pipes_and_the_daemons_shm_instead_of_their_own(tmp_path):
    pipes, shm = tmp_path / "pipes", tmp_path / "shm"
    pipes.mkdir()
    shm.mkdir()
    s = spec(
        slots={"cpu": 1, "mem": "1g", "cuda.shares": "2"}, gpu_placement={"cuda.shares": {"GPU-b": "2"}},
        gpu_shares_per_device={"GPU-b": 4}, shmem="64m", mps_pipe_host_dir=str(pipes), mps_shm_host_dir=str(shm),
    )  # fmt: skip
    container = service(s)["task_template"]["ContainerSpec"]
    env = dict(e.split("=", 1) for e in container["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "GPU-b" and env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"
    targets = [(m["Target"], m["Type"], m.get("Source")) for m in container["Mounts"]]
    assert ("/tmp/nvidia-mps", "bind", str(pipes)) in targets
    # One /dev/shm: the daemon's (two mounts at one path would make the engine refuse the task).
    assert [t for t in targets if t[0] == "/dev/shm"] == [("/dev/shm", "bind", str(shm))]


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


def test_the_key_files_are_secrets_of_the_session_mounted_at_their_paths_for_the_session_user():
    s = spec(ssh_port=2200, **KEYS)
    secrets = session_secrets(s)
    assert [(x.name, x.target, x.mode) for x in secrets] == [
        (f"backendai-{SID}-0", "/home/work/id_container", 0o600),
        (f"backendai-{SID}-1", "/etc/backendai/ssh/authorized_keys", 0o600),
    ]
    assert secrets[0].data == KEYS["ssh_private_key"] and secrets[1].data == KEYS["ssh_public_key"] + "\n"
    assert all(x.labels == {"ai.backend.session-id": SID} for x in secrets)
    assert "BEGIN" not in repr(secrets)
    c = service(s, secrets={x.name: f"id{i}" for i, x in enumerate(secrets)})["task_template"]["ContainerSpec"]
    assert c["Secrets"] == [
        {"SecretID": "id0", "SecretName": f"backendai-{SID}-0",
         "File": {"Name": "/home/work/id_container", "UID": "1000", "GID": "1000", "Mode": 0o600}},
        {"SecretID": "id1", "SecretName": f"backendai-{SID}-1",
         "File": {"Name": "/etc/backendai/ssh/authorized_keys", "UID": "1000", "GID": "1000", "Mode": 0o600}},
    ]  # fmt: skip
    assert "BEGIN" not in str(c)  # the keys themselves never in the service's spec


def test_key_files_without_their_secrets_are_refused_and_no_keys_need_none():
    with pytest.raises(SpecError, match="secrets"):
        service(spec(ssh_port=2200, **KEYS))
    with pytest.raises(SpecError, match="-1"):
        service(spec(**KEYS), secrets={f"backendai-{SID}-0": "id0"})
    assert "Secrets" not in service()["task_template"]["ContainerSpec"]


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
        public_host="10.231.200.12", reason="",
    )  # fmt: skip


def test_drained_and_paused_nodes_are_unschedulable_down_ones_lost():
    agents = {a.id: a for a in node_agents([node("a", availability="drain"), node("b", availability="pause"),
                                            node("c", state="down"), node("d", state="disconnected")])}  # fmt: skip
    assert [(agents[i].alive, agents[i].schedulable) for i in "ab"] == [(True, False), (True, False)]
    assert [agents[i].alive for i in "cd"] == [False, False]
    assert [agents[i].reason for i in "abcd"] == [
        "node availability drain", "node availability pause", "node down", "node disconnected",
    ]  # fmt: skip


def test_public_host_from_the_mapping_then_the_label_then_the_address():
    label = {"ai.backend.public-host": "n.example.org"}
    agents = node_agents(
        [node("a", labels=label), node("b", labels=label), node("c", labels=label), node("d"),
         node("e", labels={"pub": "e.example.org"})],
        public_hosts={"a": "a.example.org", "host-b": "b.example.org"},
    )  # fmt: skip
    assert [x.public_host for x in agents] == [
        "a.example.org", "b.example.org", "n.example.org", "10.231.200.12", "10.231.200.12",
    ]  # fmt: skip
    (e,) = node_agents([node("e", labels={"pub": "e.example.org"})], public_host_label="pub")
    assert e.public_host == "e.example.org" and e.addr == "10.231.200.12"


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
    # gpu_shares_per_device: each device offers that many shares, as nvidia-smi's devices do.
    (c,) = node_agents([node("g", generic=named)], shares_per_device=4)
    assert c.devices == [{"id": "GPU-aa", "capacity": 4}, {"id": "GPU-bb", "capacity": 4}]
    assert (c.capacity["cuda.device"], c.capacity["cuda.shares"]) == ("2", "8")


# --- the storage probe ----------------------------------------------------------------------------


def test_the_storage_probe_is_one_task_on_the_node_reading_the_marker_read_only():
    kw = storage_probe_spec(NODE, image="session:local", storage_root="/srv/storage", token="ab12cd")
    task = kw["task_template"]
    assert task["Placement"] == {"Constraints": [f"node.id=={NODE}"]}
    assert task["RestartPolicy"]["Condition"] == "none"
    c = task["ContainerSpec"]
    assert c["Mounts"] == [{"Target": "/backendai-storage", "Source": "/srv/storage", "Type": "bind", "ReadOnly": True}]
    assert c["Command"] == ["sh", "-c", 'test "$(cat /backendai-storage/.backendai-probe/ab12cd)" = ab12cd']
    assert c["CapabilityDrop"] == ["ALL"]
    assert kw["labels"] == {"ai.backend.storage-probe": NODE}
    assert "Resources" not in task or not task["Resources"]
    with pytest.raises(SpecError, match="token"):
        storage_probe_spec(NODE, image="i", storage_root="/s", token="a; rm -rf /")
    with pytest.raises(SpecError, match="node id"):
        storage_probe_spec("a b", image="i", storage_root="/s", token="ab")


def task(state, err="", code=None):
    status = {"State": state, "Err": err}
    if code is not None:
        status["ContainerStatus"] = {"ExitCode": code}
    return {"Status": status}


@pytest.mark.parametrize(
    ("t", "verdict"),
    [
        (None, None),
        (task("running"), None),
        (task("preparing"), None),
        (task("complete", code=0), "ok"),
        (task("failed", "task: non-zero exit (1)", code=1), "missing"),
        (task("rejected", 'invalid mount config for type "bind": bind source path does not exist: /s'), "missing"),
        (task("rejected", "No such image: session:local"), "unknown"),
        (task("failed", "task: non-zero exit (127)", code=127), "unknown"),
        (task("pending", "no suitable node (1 node not available for new tasks)"), "unknown"),
    ],
)
def test_what_a_probe_task_says(t, verdict):
    result = probe_verdict(t)
    assert (result[0] if result else None) == verdict
    if verdict in ("missing", "unknown"):
        assert result[1]  # with the reason shown to administrators


def test_usage_from_the_engines_stats():
    stats = {
        "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}},
        "memory_stats": {"usage": 123456},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"op": "Read", "value": 10}, {"op": "Write", "value": 5}, {"op": "read", "value": 1},
        ]},
    }  # fmt: skip
    assert engine_stats_usage(stats) == (2.5, 123456, 11, 5)
    assert engine_stats_usage({}) == (0.0, 0, 0, 0)


# --- plain images ---------------------------------------------------------------------------------


def _facts(**kw):
    from jupyter_backendai.hub.runtime_args import ImageFacts

    args = dict(image_id="sha256:" + "a" * 64, env={"PATH": "/bin", "PYTHONHOME": "/x"}, labels={}, has_server=False,
                passwd=None, group=None, home_uid=None)  # fmt: skip
    args.update(kw)
    return ImageFacts(**args)


def test_a_plain_image_gets_the_runtime_the_account_configs_and_a_home():
    from jupyter_backendai.hub.runtime_args import MOUNT, Runtime, image_plan
    from jupyter_backendai.hub.swarm_args import account_configs, plain_image_service_spec

    s = spec()
    facts = _facts()
    plan = image_plan(facts)
    runtime = Runtime(host_dir="/srv/rt/v1-x", python=f"{MOUNT}/usr/bin/python3", venv=f"{MOUNT}/opt/venv")
    configs = account_configs(s, plan)
    assert [(c.target, c.mode) for c in configs] == [("/etc/passwd", 0o444), ("/etc/group", 0o444)]
    assert "work:x:1000:1000:work:/home/work:/bin/sh" in configs[0].data
    ids = {c.name: f"id-{i}" for i, c in enumerate(configs)}
    base = service(s, secrets={x.name: "sec" for x in session_secrets(s)})
    kw = plain_image_service_spec(base, s, facts=facts, plan=plan, runtime=runtime, home="/srv/homes/x", configs=ids)
    container = kw["task_template"]["ContainerSpec"]
    assert container["Command"] == [f"{MOUNT}/opt/venv/bin/jupyterhub-singleuser"]
    assert container["Args"][-2:] == ["--ip=10.231.200.12", "--port=9000"]
    assert "jupyterhub-singleuser" not in " ".join(container["Args"])
    env = dict(e.split("=", 1) for e in container["Env"])
    assert env["PATH"].startswith(f"/home/work/.local/bin:{MOUNT}/opt/venv/bin:") and env["PYTHONHOME"] == ""
    mounts = {m["Target"]: (m["Source"], m.get("ReadOnly", False)) for m in container["Mounts"]}
    assert mounts[MOUNT] == ("/srv/rt/v1-x", True) and mounts["/home/work"] == ("/srv/homes/x", False)
    assert [(c["File"]["Name"], c["ConfigID"]) for c in container["Configs"]] == [
        ("/etc/passwd", "id-0"),
        ("/etc/group", "id-1"),
    ]
    assert base["task_template"]["ContainerSpec"]["Command"] is None  # the input is left as it was
    with pytest.raises(SpecError, match="only as configs"):
        plain_image_service_spec(base, s, facts=facts, plan=plan, runtime=runtime, home="/h", configs={})
    with pytest.raises(SpecError, match="no home was made"):
        plain_image_service_spec(base, s, facts=facts, plan=plan, runtime=runtime, configs=ids)
