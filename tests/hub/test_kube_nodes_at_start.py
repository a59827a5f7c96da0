"""The Kubernetes backend's nodes from the hub's start (``BACKENDAI_BACKEND=kubernetes``), on the real
cluster (testing/k8s/) through a real hub: every node an agent before any spawn, following the
cluster from then on; and the backend asked for without a cluster says why.
"""

from __future__ import annotations

import json
import time

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing.k8s import HOST_IP, IMAGE, Cluster, kube_hub
from testing.sessions import ProductDB, agents, wait_agents

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: The node label of a node's resource group, as documented (docs/kubernetes.md).
GROUP_LABEL = "ai.backend.resource-group"

START_AT_HUB = """
from jupyter_backendai.hub.first_run import register_agent_at_start as _register_agent_at_start
_register_agent_at_start(c, "kubernetes")
"""


@pytest.fixture
def pdb(tmp_path):
    with ProductDB(tmp_path) as pdb:
        pdb.setup(lambda db: admin.create_scaling_group(db, "gpu"))
        yield pdb


def test_nodes_are_agents_from_the_hubs_start_without_a_spawn(make_hub, pdb, k8s_cluster: Cluster, k8s_namespace):
    hub = kube_hub(make_hub, pdb, k8s_cluster, k8s_namespace, extra=START_AT_HUB)
    # Within moments of the hub's start, without any spawn: both real nodes, alive, at their address.
    found = wait_agents(pdb, lambda a: {"node1", "node2"} <= set(a), 30)
    assert {n: found[n].addr for n in ("node1", "node2")} == {"node1": HOST_IP, "node2": "10.231.2.12"}
    for agent in found.values():
        assert agent.status == m.AgentStatus.ALIVE and agent.schedulable and agent.scaling_group == "default"
        assert agent.version == "kubernetes"
    # The node watch runs from then on: a label moves a node to another resource group, still without a spawn.
    k8s_cluster.label_node("node2", GROUP_LABEL, "gpu")
    try:
        wait_agents(pdb, lambda a: a["node2"].scaling_group == "gpu", timeout=15)
    finally:
        k8s_cluster.kubectl("label", "node", "node2", f"{GROUP_LABEL}-", check=False)
    wait_agents(pdb, lambda a: a["node2"].scaling_group == "default", timeout=15)
    assert "could not register" not in hub.log_text() and "Traceback" not in hub.log_text()


def test_without_the_registration_at_start_no_node_is_an_agent_before_a_spawn(
    make_hub, pdb, k8s_cluster: Cluster, k8s_namespace
):
    """The control of the test above: there, the registration at start is what makes the nodes agents."""
    hub = kube_hub(make_hub, pdb, k8s_cluster, k8s_namespace)
    time.sleep(5)
    assert agents(pdb) == {}
    assert "Traceback" not in hub.log_text()


def test_the_kubernetes_backend_is_chosen_only_with_a_cluster(pdb: ProductDB, monkeypatch, tmp_path):
    from jupyter_backendai.hub import first_run
    from testing.hub import free_port

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # A kubeconfig whose API server does not answer: the choice does not ask it (spawns would be
    # refused with the reason, the hub starts).
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
            "users": [{"name": "hub", "user": {"token": "t"}}],
            "contexts": [{"name": "hub", "context": {"cluster": "c", "user": "hub"}}],
            "current-context": "hub",
        })
    )  # fmt: skip
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    choice = first_run.choose(pdb.url, prefer="kubernetes", image=IMAGE)
    assert choice.backend == "kubernetes"
    assert choice.reason == f"sessions run as pods of a Kubernetes cluster, every node an agent (image {IMAGE})"
    assert pdb.setup(lambda db: admin.get_image(db, IMAGE).installed)  # offered on the spawn form

    # No cluster configured, or a kubeconfig that is not one: it says so rather than fall back.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    with pytest.raises(
        RuntimeError, match="the Kubernetes backend was asked for but no Kubernetes cluster is configured"
    ):
        first_run.choose(pdb.url, prefer="kubernetes", image=IMAGE)
    kubeconfig.write_text("not: [a kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(RuntimeError, match="the Kubernetes backend was asked for but the kubeconfig .* is not usable"):
        first_run.choose(pdb.url, prefer="kubernetes", image=IMAGE)
