"""The Kubernetes test cluster itself (testing/k8s/): real pods run on both real nodes
and the host reaches them at their pod IPs; pods bound to a simulated node turn Running."""

from __future__ import annotations

import ipaddress
import time

import pytest
import requests

from testing.k8s import IMAGE, POD_CIDRS, SIM_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def web_pod(name: str, node: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "cluster-test"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "web",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "command": [
                        "sh",
                        "-c",
                        "mkdir -p /tmp/w && echo $NODE > /tmp/w/index.html && "
                        "exec python3 -m http.server 8080 -d /tmp/w",
                    ],  # fmt: skip
                    "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    "resources": {"limits": {"cpu": "100m", "memory": "128Mi"}},
                }
            ],
        },
    }


def wait_running(cluster, namespace: str, names: list[str], timeout: float = 90) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        pods = {p["metadata"]["name"]: p for p in cluster.pods(namespace)}
        if all(pods.get(n, {}).get("status", {}).get("phase") == "Running" for n in names):
            return pods
        if time.monotonic() > deadline:
            raise AssertionError({n: pods.get(n, {}).get("status") for n in names})
        time.sleep(0.5)


def test_pods_run_on_both_real_nodes_and_on_a_simulated_one(k8s_cluster, k8s_namespace):
    sim = k8s_cluster.add_sim_node("sim-cluster-test", capacity={"nvidia.com/gpu": "2"})
    node = k8s_cluster.get("node", sim)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "2"
    assert node["metadata"]["labels"][SIM_LABEL] == "true"
    names = []
    for n in [*k8s_cluster.real_nodes, sim]:
        k8s_cluster.apply(web_pod(f"web-{n}", n), "-n", k8s_namespace)
        names.append(f"web-{n}")
    pods = wait_running(k8s_cluster, k8s_namespace, names)
    for n in k8s_cluster.real_nodes:
        ip = pods[f"web-{n}"]["status"]["podIP"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(POD_CIDRS[n])
        deadline = time.monotonic() + 30
        while True:  # the server inside needs a moment after the container started
            try:
                answer = requests.get(f"http://{ip}:8080/", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        assert answer.text.strip() == n
    # Nothing runs on a simulated node: its pod IP is on loopback.
    assert ipaddress.ip_address(pods[f"web-{sim}"]["status"]["podIP"]).is_loopback
    k8s_cluster.remove_node(sim)
