"""A node sync writes the agents' rows only when a node changed (or in a grace period, or every
FULL_SYNC_INTERVAL): a thousand nodes' rows read at every heartbeat competed with the starts.

The cluster is a dict of Node objects here (the node reflector's, as the API server sends them);
the database is real. tests/hub/test_sessions_kubernetes.py syncs a real cluster's nodes.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import types

import pytest
from traitlets import Dict, List, Unicode

from jupyter_backendai.db import models as m
from jupyter_backendai.hub import kube_nodes
from jupyter_backendai.hub.kube_nodes import KubeNodesMixin


def node(name: str, version: int, ready: bool = True) -> dict:
    return {
        "metadata": {"name": name, "resourceVersion": str(version), "labels": {}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": [{"type": "InternalIP", "address": "10.231.9.1"}],
        },
    }


class Nodes(KubeNodesMixin):
    """The node half of the Kubernetes spawner, on a database, with the settings it reads."""

    agent_scaling_group = Unicode("default")
    agent_capacity = Dict()
    gpu_resource = Unicode("nvidia.com/gpu")
    gpu_shares_resources = Dict()
    session_tolerations = List()
    backend_name = "kubernetes"
    ssh_public_host = ""
    agent_heartbeat_interval = 5.0

    def __init__(self, pdb, **kw):
        super().__init__(**kw)
        self.pdb, self.db_url, self.transactions = pdb, pdb.url, 0
        self.scheduler = types.SimpleNamespace(wake=lambda: None)
        self.log = logging.getLogger("test")

    async def run_db(self, fn, *args):
        self.transactions += 1
        with self.pdb() as db:
            result = fn(db, *args)
            db.commit()
            return result

    async def _sweep_pods(self):
        pass

    def _node_images_changed(self, nodes):
        return {}


@pytest.fixture
def cluster(monkeypatch):
    nodes = {"n1": node("n1", 1), "n2": node("n2", 1)}
    loaded = types.SimpleNamespace(done=lambda: True)  # the first list of nodes has come
    reflector = types.SimpleNamespace(nodes=nodes, error=None, first_load_future=loaded)
    monkeypatch.setattr(KubeNodesMixin, "_node_reflector", reflector)
    # The class keeps what the hub's spawners share: each test starts from nothing.
    monkeypatch.setattr(KubeNodesMixin, "_last_sync", None)
    monkeypatch.setattr(KubeNodesMixin, "_agent_memo", ("", {}))
    monkeypatch.setattr(KubeNodesMixin, "_not_ready_since", {})
    monkeypatch.setattr(KubeNodesMixin, "_cordoned", set())
    return nodes


def agents(pdb) -> dict[str, tuple]:
    with pdb() as db:
        return {a.id: (a.status, a.schedulable) for a in db.query(m.Agent).filter_by(version="kubernetes")}


def test_unchanged_nodes_are_not_written_again_until_the_full_sync(pdb, cluster, monkeypatch):
    nodes = Nodes(pdb)
    sync = lambda: asyncio.run(nodes._sync_nodes_now())  # noqa: E731
    clock = [1000.0]
    monkeypatch.setattr(kube_nodes.time, "monotonic", lambda: clock[0])

    sync()
    assert nodes.transactions == 1
    assert agents(pdb) == {"n1": (m.AgentStatus.ALIVE, True), "n2": (m.AgentStatus.ALIVE, True)}
    clock[0] += 5
    sync()
    sync()
    assert nodes.transactions == 1  # nothing changed: the database is left alone

    cluster["n2"] = copy.deepcopy(cluster["n2"])
    cluster["n2"]["metadata"]["resourceVersion"] = "2"
    cluster["n2"]["spec"]["unschedulable"] = True  # cordoned
    sync()
    assert nodes.transactions == 2
    assert agents(pdb)["n2"] == (m.AgentStatus.ALIVE, False)

    # An administrator (or another hub) changed a row meanwhile: the full sync puts it right.
    with pdb() as db:
        db.get(m.Agent, "n1").status = m.AgentStatus.LOST
        db.commit()
    clock[0] += kube_nodes.FULL_SYNC_INTERVAL - 1
    sync()
    assert nodes.transactions == 2 and agents(pdb)["n1"][0] == m.AgentStatus.LOST
    clock[0] += 1
    sync()
    assert nodes.transactions == 3 and agents(pdb)["n1"][0] == m.AgentStatus.ALIVE


def test_a_node_in_its_grace_period_is_synced_at_every_heartbeat_until_lost(pdb, cluster, monkeypatch):
    nodes = Nodes(pdb, node_lost_grace=10.0)
    clock = [1000.0]
    monkeypatch.setattr(kube_nodes.time, "monotonic", lambda: clock[0])
    asyncio.run(nodes._sync_nodes_now())
    cluster["n1"] = node("n1", 2, ready=False)
    for _ in range(3):
        clock[0] += 5
        asyncio.run(nodes._sync_nodes_now())
    assert nodes.transactions == 4  # the grace period is counted at each sync, not skipped
    assert agents(pdb)["n1"][0] == m.AgentStatus.LOST
    assert agents(pdb)["n2"][0] == m.AgentStatus.ALIVE


def test_a_nodes_agent_is_worked_out_again_only_when_its_object_changed(pdb, cluster, monkeypatch):
    nodes = Nodes(pdb)
    calls = []
    real = kube_nodes.node_agents
    monkeypatch.setattr(kube_nodes, "node_agents", lambda ns, **kw: calls.append(len(ns)) or real(ns, **kw))
    reflector = KubeNodesMixin._node_reflector
    nodes._agents(reflector)
    nodes._agents(reflector)
    assert calls == [1, 1]
    cluster["n1"] = node("n1", 7)
    assert [a.id for a in nodes._agents(reflector)] == ["n1", "n2"]
    assert calls == [1, 1, 1]
    nodes.node_group_label = "example.org/group"  # other settings: every node again
    nodes._agents(reflector)
    assert calls == [1, 1, 1, 1, 1]
