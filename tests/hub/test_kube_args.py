"""SessionSpec -> a pod (and its Secret and NetworkPolicy): pure translation, checked as plain dicts,
then every manifest these tests build sent to the real API server (server-side dry run)."""

from __future__ import annotations

import base64
import json

import pytest

from jupyter_backendai.core.images import pull_object_name
from jupyter_backendai.hub.kube_args import (
    PIN_AFFINITY,
    PodConfig,
    label_value,
    network_policy_manifest,
    node_agents,
    parse_quantity,
    pod_manifest,
    pull_pod_manifest,
    pull_secret_manifest,
    ssh_secret_manifest,
    ssh_service_manifest,
)
from jupyter_backendai.hub.kube_images import pull_pod_outcome
from jupyter_backendai.hub.spec import FolderRef, SpecError
from jupyter_backendai.hub.swarm_args import NodeAgent
from testing.spec import LABELS, SID, spec

ROOT = "/srv/backendai-storage"
KEYS = {
    "ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey alice@session",
    "ssh_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----\n",
}


def config(**kw):
    kw.setdefault("namespace", "sessions")
    kw.setdefault("storage_root", ROOT)
    kw.setdefault("extra_labels", {"component": "singleuser-server"})
    return PodConfig(**kw)


def pod(s=None, node="node1", **kw):
    return pod_manifest(s or spec(), node, config(**kw))


def container(p):
    (c,) = p["spec"]["containers"]
    return c


def env(p):
    return {e["name"]: e["value"] for e in container(p)["env"]}


FOLDERS = [
    FolderRef("data", f"{ROOT}/local/ab/ab12", "rw"),
    FolderRef("papers", f"{ROOT}/local/cd/cd34", "ro"),
    FolderRef("scratch", f"{ROOT}/nfs/ef/ef56", "wd"),
]

# Every manifest the tests below check, by name: the dry-run test sends each to the API server.
CASES = {
    "plain": lambda: pod(),
    "limits": lambda: pod(spec(slots={"cpu": "0.3333", "mem": "1g"})),
    "whole-gpus": lambda: pod(
        spec(slots={"cpu": 1, "mem": "1g", "cuda.device": 2}, gpu_placement={"cuda.device": {"0": 1, "3": 1}})
    ),
    "gpu-shares": lambda: pod(
        spec(slots={"cpu": 1, "mem": "1g", "cuda.shares": "0.5"}, gpu_placement={"cuda.shares": {"1": "0.5"}}),
        gpu_shares_resources={"nvidia.com/gpucores": 100, "nvidia.com/gpumem-percentage": 100},
        gpu_shares_device_resource="nvidia.com/gpu",
    ),
    "gpu-shares-replicas": lambda: pod(
        spec(
            slots={"cpu": 1, "mem": "1g", "cuda.shares": "1.25"},
            gpu_placement={"cuda.shares": {"0": "0.75", "1": "0.5"}},
        ),
        gpu_shares_resources={"nvidia.com/gpu.shared": 4},
    ),
    "shm": lambda: pod(spec(shmem="64m")),
    "folders": lambda: pod(
        spec(folders=FOLDERS),
        storage_volumes={"nfs": {"persistentVolumeClaim": {"claimName": "backendai-nfs"}}},
    ),
    "ssh": lambda: pod(spec(ssh_port=2200, **KEYS), ssh_secret="backendai-ssh-x"),
    "affinity": lambda: pod(
        pin=PIN_AFFINITY, tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    ),
    "odd-names": lambda: pod(spec(user="Bob O'Neil", session_name="my notebook!", resource_group="gpu_a100")),
    "secret": lambda: ssh_secret_manifest(
        spec(ssh_port=2200, **KEYS), "backendai-ssh-x", config(), owner={"name": "backendai-session-x", "uid": SID}
    ),
    "ssh-service": lambda: ssh_service_manifest(
        spec(ssh_port=2200, **KEYS),
        "backendai-ssh-x",
        config(),
        node_port=30022,
        owner={"name": "backendai-session-x", "uid": SID},
    ),  # fmt: skip
    "pull": lambda: pull_pod_manifest(
        "127.0.0.1:5000/lab/x:1",
        "node1",
        name=pull_object_name("node1", "127.0.0.1:5000/lab/x:1", "ab12cd"),
        namespace="sessions",
        pull_secret="backendai-pull-x-auth",
    ),  # fmt: skip
    "pull-secret": lambda: pull_secret_manifest(
        "backendai-pull-x-auth", "sessions", "127.0.0.1:5000", "lab", "s3cret:pw"
    ),
    "network-policy": lambda: network_policy_manifest(
        spec(ssh_port=2200, **KEYS), config(), hub_cidrs=["10.231.2.1/32"], ssh_cidrs=["0.0.0.0/0"]
    ),
}


def test_one_pod_pinned_to_the_chosen_node_never_restarted():
    p = CASES["plain"]()
    assert p["apiVersion"] == "v1" and p["kind"] == "Pod"
    assert p["metadata"]["name"] == f"backendai-session-{SID}"
    assert p["metadata"]["namespace"] == "sessions"
    assert p["spec"]["nodeName"] == "node1"
    assert "affinity" not in p["spec"]
    assert p["spec"]["restartPolicy"] == "Never"
    assert p["spec"]["shareProcessNamespace"] is True  # the pause process reaps zombies as PID 1


def test_pinned_by_required_node_affinity_on_the_node_name_with_tolerations():
    p = CASES["affinity"]()
    assert "nodeName" not in p["spec"]
    assert p["spec"]["affinity"] == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node1"]}]}
                ]
            }
        }
    }
    assert p["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_the_server_command_image_and_ports():
    c = container(CASES["plain"]())
    assert c["name"] == "notebook"
    assert c["image"] == "session:local"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["args"] == ["jupyterhub-singleuser", "--ip=0.0.0.0", "--port=8888"]
    assert "command" not in c  # the image's entrypoint stays
    assert c["workingDir"] == "/home/work"
    assert c["ports"] == [{"name": "notebook-port", "containerPort": 8888, "protocol": "TCP"}]
    assert env(CASES["plain"]())["BACKENDAI_SESSION_ID"] == SID


def test_requests_equal_limits_cpu_rounded_down_to_a_millicore():
    assert container(CASES["plain"]())["resources"] == {
        "requests": {"cpu": "1500m", "memory": str(4 * 1024**3)},
        "limits": {"cpu": "1500m", "memory": str(4 * 1024**3)},
    }
    r = container(CASES["limits"]())["resources"]
    assert r["requests"] == r["limits"] == {"cpu": "333m", "memory": str(1024**3)}


def test_whole_gpus_are_the_gpu_resource_and_the_device_plugin_chooses_them():
    p = CASES["whole-gpus"]()
    r = container(p)["resources"]
    assert r["limits"]["nvidia.com/gpu"] == r["requests"]["nvidia.com/gpu"] == "2"
    assert "NVIDIA_VISIBLE_DEVICES" not in env(p)  # ours would override the plugin's choice
    assert env(p)["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    p = pod(spec(slots={"cpu": 1, "mem": "1g", "cuda.device": 1}, gpu_placement={"cuda.device": {"0": 1}}),
            gpu_resource="amd.com/gpu")  # fmt: skip
    assert container(p)["resources"]["limits"]["amd.com/gpu"] == "1"


def test_gpu_shares_are_the_configured_resources_rounded_up_without_mps_settings():
    p = CASES["gpu-shares"]()
    limits = container(p)["resources"]["limits"]
    assert limits["nvidia.com/gpucores"] == "50"
    assert limits["nvidia.com/gpumem-percentage"] == "50"
    assert limits["nvidia.com/gpu"] == "1"  # the devices the share spans
    assert not {"CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "NVIDIA_VISIBLE_DEVICES"} & set(env(p))
    assert all(v["name"] != "/tmp/nvidia-mps" for v in p["spec"]["volumes"])  # no MPS pipe mount
    limits = container(CASES["gpu-shares-replicas"]())["resources"]["limits"]
    assert limits == {"cpu": "1000m", "memory": str(1024**3), "nvidia.com/gpu.shared": "5"}  # ceil(1.25 × 4)


def test_gpu_shares_without_a_configured_resource_are_refused():
    s = spec(slots={"cpu": 1, "mem": "1g", "cuda.shares": "0.5"}, gpu_placement={"cuda.shares": {"1": "0.5"}})
    with pytest.raises(SpecError, match="gpu_shares_resources"):
        pod(s)


def test_shared_memory_is_a_memory_backed_empty_dir_at_dev_shm():
    p = CASES["shm"]()
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": str(64 * 1024**2)}} in p["spec"]["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container(p)["volumeMounts"]
    assert all(v["name"] != "dshm" for v in CASES["plain"]()["spec"]["volumes"])  # the runtime's default


def test_runs_as_1000_without_privileges_capabilities_or_token():
    p = CASES["plain"]()
    assert container(p)["securityContext"] == {
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    psc = p["spec"]["securityContext"]
    assert (psc["runAsUser"], psc["runAsGroup"], psc["runAsNonRoot"], psc["fsGroup"]) == (1000, 1000, True, 1000)
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert psc["fsGroupChangePolicy"] == "OnRootMismatch"
    assert p["spec"]["automountServiceAccountToken"] is False
    assert p["spec"]["enableServiceLinks"] is False


def test_folders_are_sub_paths_of_one_volume_per_storage_host_read_only_for_ro():
    p = CASES["folders"]()
    assert p["spec"]["volumes"] == [
        {"name": "storage-local", "hostPath": {"path": f"{ROOT}/local", "type": "Directory"}},
        {"name": "storage-nfs", "persistentVolumeClaim": {"claimName": "backendai-nfs"}},
    ]
    assert container(p)["volumeMounts"] == [
        {"name": "storage-local", "mountPath": "/home/work/data", "subPath": "ab/ab12"},
        {"name": "storage-local", "mountPath": "/home/work/papers", "subPath": "cd/cd34", "readOnly": True},
        {"name": "storage-nfs", "mountPath": "/home/work/scratch", "subPath": "ef/ef56"},
    ]


def test_a_folder_outside_the_storage_root_is_refused():
    with pytest.raises(SpecError, match="storage root"):
        pod(spec(folders=[FolderRef("data", "/elsewhere/local/ab/x", "rw")]))


def test_labels_and_annotations_name_session_user_access_key_and_resource_group():
    p = CASES["plain"]()
    labels, annotations = p["metadata"]["labels"], p["metadata"]["annotations"]
    assert labels == {**LABELS, "component": "singleuser-server"}
    assert annotations == {k: v for k, v in labels.items() if k.startswith("ai.backend.")}


def test_values_that_are_not_valid_labels_are_made_valid_and_kept_exact_in_annotations():
    p = CASES["odd-names"]()
    labels, annotations = p["metadata"]["labels"], p["metadata"]["annotations"]
    assert annotations["ai.backend.user"] == "Bob O'Neil"
    assert annotations["ai.backend.session-name"] == "my notebook!"
    assert labels["ai.backend.user"].startswith("Bob-O-Neil-") and len(labels["ai.backend.user"]) <= 63
    assert labels["ai.backend.resource-group"] == "gpu_a100"  # valid as it is
    assert label_value("x" * 80) != label_value("x" * 81) and len(label_value("x" * 80)) <= 63
    assert label_value("!!!").startswith("x-")


def test_ssh_keys_come_from_the_sessions_own_secret_readable_by_the_session_user():
    p = CASES["ssh"]()
    (volume,) = [v for v in p["spec"]["volumes"] if v["name"] == "ssh-keys"]
    assert volume["secret"] == {
        "secretName": "backendai-ssh-x",
        "defaultMode": 0o440,
        "items": [
            {"key": "id_container", "path": "id_container"},
            {"key": "authorized_keys", "path": "authorized_keys"},
        ],
    }
    mounts = [m for m in container(p)["volumeMounts"] if m["name"] == "ssh-keys"]
    assert mounts == [
        {"name": "ssh-keys", "mountPath": "/home/work/id_container", "subPath": "id_container", "readOnly": True},
        {"name": "ssh-keys", "mountPath": "/etc/backendai/ssh/authorized_keys", "subPath": "authorized_keys",
         "readOnly": True},
    ]  # fmt: skip
    assert {"name": "ssh", "containerPort": 2200, "protocol": "TCP"} in container(p)["ports"]
    assert "PRIVATE KEY" not in json.dumps(p)  # never in the pod's env or labels
    with pytest.raises(SpecError, match="Secret"):
        pod(spec(ssh_port=2200, **KEYS))


def test_the_secret_holds_the_key_files_and_is_owned_by_the_pod():
    s = CASES["secret"]()
    assert s["kind"] == "Secret" and s["metadata"]["name"] == "backendai-ssh-x"
    assert base64.b64decode(s["data"]["id_container"]).decode() == KEYS["ssh_private_key"]
    assert base64.b64decode(s["data"]["authorized_keys"]).decode() == KEYS["ssh_public_key"] + "\n"
    assert s["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "backendai-session-x", "uid": SID, "blockOwnerDeletion": True}
    ]
    assert s["metadata"]["labels"]["ai.backend.session-id"] == SID


def test_users_reach_sshd_through_a_node_port_service_of_the_sessions_own():
    svc = CASES["ssh-service"]()
    assert svc["kind"] == "Service" and svc["metadata"]["name"] == "backendai-ssh-x"
    assert svc["spec"] == {
        "type": "NodePort",
        "selector": {"ai.backend.session-id": SID},
        "ports": [{"name": "ssh", "protocol": "TCP", "port": 2200, "targetPort": 2200, "nodePort": 30022}],
    }
    assert svc["metadata"]["ownerReferences"][0]["uid"] == SID  # deleted with the pod
    any_port = ssh_service_manifest(spec(ssh_port=2200, **KEYS), "backendai-ssh-x", config())
    assert "nodePort" not in any_port["spec"]["ports"][0]  # the API server allocates one
    with pytest.raises(SpecError, match="sshd"):
        ssh_service_manifest(spec(**KEYS), "backendai-ssh-x", config())


def test_the_network_policy_admits_the_hub_to_the_server_and_ssh_clients_to_sshd():
    n = CASES["network-policy"]()
    assert n["spec"]["podSelector"] == {"matchLabels": {"ai.backend.session-id": SID}}
    assert n["spec"]["policyTypes"] == ["Ingress"]
    assert n["spec"]["ingress"] == [
        {"from": [{"ipBlock": {"cidr": "10.231.2.1/32"}}], "ports": [{"protocol": "TCP", "port": 8888}]},
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 2200}]},
    ]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"node": "Node 1"}, "node name"),
        ({"node": "node1", "namespace": "Bad_NS"}, "namespace"),
        ({"node": "node1", "pin": "spread"}, "pin"),
        ({"node": "node1", "port": 80}, "port"),
    ],
)
def test_bad_settings_are_refused(kw, match):
    node = kw.pop("node")
    with pytest.raises(SpecError, match=match):
        pod(node=node, **kw)


def test_below_the_minimum_cpu_or_memory_is_refused():
    with pytest.raises(SpecError, match="millicore"):
        pod(spec(slots={"cpu": "0.0004", "mem": "1g"}))
    with pytest.raises(SpecError, match="6 MiB"):
        pod(spec(slots={"cpu": 1, "mem": "1m"}))


# --- nodes as agents ------------------------------------------------------------------------------


def node(name, ready="True", unschedulable=False, labels=None, allocatable=None, taints=None, ip="10.231.2.12"):
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {
            "allocatable": allocatable or {"cpu": "2", "memory": "24531868Ki", "pods": "50"},
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}],
            "addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}],
        },
    }


def test_ready_nodes_are_alive_schedulable_agents_with_their_allocatable_resources():
    (a,) = node_agents([node("node2")])
    assert a == NodeAgent(
        id="node2", hostname="node2", addr="10.231.2.12", alive=True, schedulable=True, resource_group="default",
        capacity={"cpu": "2", "mem": str(24531868 * 1024)}, devices=[], state="Ready=True", public_host="10.231.2.12",
    )  # fmt: skip


def test_cordoned_or_tainted_nodes_are_unschedulable_not_ready_ones_lost():
    agents = {
        a.id: a
        for a in node_agents(
            [
                node("a", unschedulable=True),
                node("b", taints=[{"key": "dedicated", "effect": "NoSchedule"}]),
                node("c", taints=[{"key": "soft", "effect": "PreferNoSchedule"}]),
                node("d", taints=[{"key": "gpu", "effect": "NoSchedule"}]),
                node("e", ready="False"),
                node("f", ready="Unknown"),
            ],
            tolerated=["gpu"],
        )
    }
    assert [(agents[i].alive, agents[i].schedulable) for i in "abcd"] == [(True, False), (True, False),
                                                                          (True, True), (True, True)]  # fmt: skip
    assert [agents[i].alive for i in "ef"] == [False, False]
    assert agents["a"].state == "Ready=True cordoned"
    assert [agents[i].reason for i in "abcdef"] == [
        "node cordoned", "node tainted dedicated:NoSchedule", "", "", "node Ready=False", "node Ready=Unknown",
    ]  # fmt: skip


def test_resource_group_from_the_node_label():
    agents = node_agents(
        [node("a", labels={"rg": "gpu"}), node("b", labels={"ai.backend.resource-group": "x"}), node("c")],
        group_label="rg",
        default_group="main",
    )
    assert [a.resource_group for a in agents] == ["gpu", "main", "main"]
    assert node_agents([node("b", labels={"ai.backend.resource-group": "x"})])[0].resource_group == "x"


def test_the_public_host_from_the_label_else_the_external_ip_else_the_address():
    labelled = node("a", labels={"ai.backend.public-host": "gpu1.example.org"})
    external = node("b")
    external["status"]["addresses"].append({"type": "ExternalIP", "address": "203.0.113.7"})
    agents = node_agents([labelled, external, node("c")])
    assert [x.public_host for x in agents] == ["gpu1.example.org", "203.0.113.7", "10.231.2.12"]
    assert [x.addr for x in agents] == ["10.231.2.12"] * 3


def test_gpus_from_the_gpu_resource_or_from_shares_only():
    (a,) = node_agents([node("g", allocatable={"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "4"})])
    assert a.capacity == {"cpu": "32", "mem": str(256 * 1024**3), "cuda.shares": "4", "cuda.device": "4"}
    assert [d["id"] for d in a.devices] == ["0", "1", "2", "3"]
    (b,) = node_agents(
        [node("s", allocatable={"cpu": "8", "memory": "8Gi", "nvidia.com/gpu.shared": "40"})],
        gpu_shares_resources={"nvidia.com/gpu.shared": 10},
    )
    assert b.capacity["cuda.shares"] == "4" and "cuda.device" not in b.capacity


@pytest.mark.parametrize(
    ("text", "value"),
    [("2", 2), ("1500m", 1.5), ("23Gi", 23 * 1024**3), ("100M", 10**8), ("1e3", 1000), ("24531868Ki", 24531868 * 1024)],
)
def test_quantities(text, value):
    assert parse_quantity(text) == value


def test_a_bad_quantity_is_an_error():
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity("2 cores")


# --- pulling an image onto a node -----------------------------------------------------------------


def test_a_pull_is_a_one_shot_pod_pinned_to_the_node_unprivileged_and_tiny():
    p = CASES["pull"]()
    name = p["metadata"]["name"]
    assert name.startswith("backendai-pull-") and name.endswith("-ab12cd") and len(name) <= 63
    assert p["metadata"]["labels"] == {
        "org.jupyter-backendai.managed": "true",
        "ai.backend.image-pull": name.split("-")[2],
    }
    assert p["metadata"]["annotations"] == {"ai.backend.image-pull": "127.0.0.1:5000/lab/x:1"}
    tiny = {"cpu": "10m", "memory": "16Mi"}
    assert p["spec"] == {
        "nodeName": "node1",
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 0,
        "securityContext": {
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "imagePullSecrets": [{"name": "backendai-pull-x-auth"}],
        "containers": [
            {
                "name": "pull",
                "image": "127.0.0.1:5000/lab/x:1",
                "imagePullPolicy": "Always",  # an install fetches the registry's current image
                "command": ["true"],
                "resources": {"requests": tiny, "limits": tiny},
                "securityContext": {
                    "runAsUser": 1000,
                    "runAsGroup": 1000,
                    "runAsNonRoot": True,
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    # Without credentials, no pull secret; a name that is no Kubernetes name is refused.
    assert "imagePullSecrets" not in pull_pod_manifest("x:1", "node1", name="p", namespace="sessions")["spec"]
    with pytest.raises(SpecError, match="node name"):
        pull_pod_manifest("x:1", "Node_1", name="p", namespace="sessions")
    with pytest.raises(SpecError, match="image reference"):
        pull_pod_manifest("x 1", "node1", name="p", namespace="sessions")


def test_the_registrys_credentials_are_a_docker_config_json_secret():
    secret = CASES["pull-secret"]()
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["namespace"] == "sessions"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    auth = base64.b64encode(b"lab:s3cret:pw").decode()
    assert config == {"auths": {"127.0.0.1:5000": {"username": "lab", "password": "s3cret:pw", "auth": auth}}}


def _pull_pod(phase="Pending", waiting=None, running=False, terminated=None, reason=None):
    state = {}
    if waiting:
        state["waiting"] = {"reason": waiting[0], "message": waiting[1]}
    if running:
        state["running"] = {"startedAt": "2026-01-01T00:00:00Z"}
    if terminated is not None:
        state["terminated"] = {"exitCode": terminated}
    status = {"phase": phase, **({"reason": reason, "message": "no room"} if reason else {})}
    if state:
        status["containerStatuses"] = [{"name": "pull", "state": state}]
    return {"status": status}


def test_a_pull_pods_state_is_the_pulls():
    assert pull_pod_outcome(_pull_pod()) == ("pulling", "waiting for its kubelet")
    assert pull_pod_outcome(_pull_pod(waiting=("ContainerCreating", ""))) == (
        "pulling",
        "its kubelet is pulling the image",
    )
    # Made from the image: done, whether it ran, ended, or could not run (no ``true`` in it).
    assert pull_pod_outcome(_pull_pod(running=True)) == ("done", "")
    assert pull_pod_outcome(_pull_pod("Succeeded", terminated=0)) == ("done", "")
    assert pull_pod_outcome(_pull_pod("Failed", terminated=127)) == ("done", "")
    assert pull_pod_outcome(_pull_pod(waiting=("RunContainerError", "exec: true: not found"))) == ("done", "")
    failed = pull_pod_outcome(_pull_pod(waiting=("ErrImagePull", "manifest unknown")))
    assert failed == ("failed", "ErrImagePull: manifest unknown")
    assert pull_pod_outcome(_pull_pod(waiting=("ImagePullBackOff", "Back-off")))[0] == "failed"
    assert pull_pod_outcome(_pull_pod(waiting=("InvalidImageName", "bad")))[0] == "failed"
    # Rejected by the node before any container: failed with the kubelet's reason.
    assert pull_pod_outcome(_pull_pod("Failed", reason="OutOfcpu")) == (
        "failed",
        "the node rejected the pull's pod: OutOfcpu: no room",
    )


# --- the real API server accepts them ------------------------------------------------------------


def kept_as_sent(sent, kept, key: str = "") -> bool:
    if isinstance(sent, dict):
        # The server leaves out empty values ([], "").
        return isinstance(kept, dict) and all(
            kept_as_sent(v, kept[k], k) if k in kept else v in ([], {}, "") for k, v in sent.items()
        )
    if isinstance(sent, list):
        # Admission adds the default tolerations (not-ready, unreachable) after ours.
        n = len(sent)
        return (
            isinstance(kept, list)
            and (len(kept) == n or key == "tolerations")
            and all(kept_as_sent(a, b) for a, b in zip(sent, kept[:n], strict=True))
        )
    if sent == kept:
        return True
    try:
        return isinstance(sent, str) and isinstance(kept, str) and parse_quantity(sent) == parse_quantity(kept)
    except ValueError:
        return False


def test_the_api_server_accepts_every_manifest(k8s_cluster, k8s_namespace):
    """Every case above, with the test's namespace, sent as a server-side dry run (validation,
    defaulting and admission, nothing stored)."""
    for name, make in CASES.items():
        manifest = make()
        manifest["metadata"]["namespace"] = k8s_namespace
        done = k8s_cluster.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(manifest), check=False
        )
        assert done.returncode == 0, f"{name}: {done.stderr}"
        stored = json.loads(done.stdout)
        # What was sent is what the server keeps: nothing dropped as an unknown field, nothing
        # changed (quantities come back in canonical form: "67108864" as "64Mi").
        assert kept_as_sent(manifest, stored), f"{name}: sent {manifest}, kept {stored}"
    assert k8s_cluster.pods(k8s_namespace) == []  # a dry run stores nothing
