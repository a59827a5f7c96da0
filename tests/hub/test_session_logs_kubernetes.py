"""A Kubernetes session's output, end to end: a real hub (``backendai-kubernetes``, real proxy) with
the manager as its service, on the real cluster (testing/k8s/), holding only the rights of the
documented service account (examples/kubernetes/rbac.yaml), and Backend.AI's real client.

What the session's pod writes is in ``GET /session/{id}/logs`` while it runs (its log followed
through the API server) and after it ended (its pod gone), with the server's last lines (the
container ended first, the pod kept until its whole log was read); ``backend.ai session logs``
prints it; another user does not read it; a pod whose server dies while starting shows why and
its last lines on the spawn page.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing import wait_for
from testing.k8s import HOST_IP, IMAGE, NODE_LABEL, Cluster
from testing.sessions import (
    PASSWORD,
    HubWithManager,
    ProductDB,
    add_students,
    assert_output_kept,
    client_logs,
    failed_start,
    kept_logs,
    manager_hub_config,
    terminate,
    wait_for_manager,
    wait_logs,
    wait_status,
)
from tests.hub.test_sessions_kubernetes import rbac_kubeconfig, session_pod

pytestmark = [pytest.mark.docker, pytest.mark.slow]

S = m.SessionStatus


@pytest.fixture
def pdb(tmp_path):
    def setup(db: Any) -> None:
        add_students(db, image=IMAGE)
        admin.create_user(db, "admin@example.com", PASSWORD, role="superadmin", username="admin")
        admin.create_user(db, "alice@example.com", PASSWORD, policy="student")
        admin.create_user(db, "bob@example.com", PASSWORD, policy="student")

    with ProductDB(tmp_path) as pdb:
        pdb.setup(setup)
        yield pdb


@pytest.fixture
def backendai(make_hub, pdb, k8s_cluster: Cluster, k8s_namespace: str, tmp_path) -> HubWithManager:
    kubeconfig = rbac_kubeconfig(k8s_cluster, k8s_namespace, tmp_path / "hub-kubeconfig")
    extra = f"""
c.KubeSessionSpawner.namespace = {k8s_namespace!r}
c.KubeSessionSpawner.agent_node_selector = {NODE_LABEL!r}
c.KubeSessionSpawner.image_pull_policy = "Never"
c.Spawner.poll_interval = 2
# Pods on both nodes reach the hub's API on the nodes' bridge.
c.JupyterHub.hub_ip = {HOST_IP!r}
"""
    try:
        hub = make_hub(
            manager_hub_config(pdb, spawner="backendai-kubernetes", extra=extra), env={"KUBECONFIG": str(kubeconfig)}
        )
        wait_for_manager(hub)
        yield HubWithManager(hub, pdb)
    finally:
        k8s_cluster.kubectl(
            "delete", "clusterrole,clusterrolebinding", f"backendai-hub-nodes-{k8s_namespace}", check=False
        )


def test_output_of_a_pod_is_kept_after_the_pod_is_gone(
    backendai: HubWithManager, pdb: ProductDB, k8s_cluster: Cluster, k8s_namespace: str
) -> None:
    created = backendai.call("POST", "/session", "alice", {"image": IMAGE, "name": "talk", "preset": "small"})
    assert created.status_code == 201, created.text
    sid = created.json()["sessionId"]
    backendai.wait_status("alice", "talk", {"RUNNING"}, timeout=150)
    row = pdb.session("alice", "talk")
    pod = session_pod(k8s_cluster, k8s_namespace, row.id)
    assert pod["spec"]["nodeName"] == row.agent_id
    wait_logs(backendai, "alice", "talk", "Jupyter Server", timeout=30)
    # A line the session writes to its output (as a process in its terminal could): the server's
    # stdout (PID 1 is the pod's pause process, which shares the namespace). The pattern is split,
    # so that this shell's own command line does not match it.
    marker = f"hello from the pod {uuid.uuid4().hex}"
    script = (
        "j=jupyterhub; for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); "
        f'case "$c" in *python*"$j"-singleuser*) echo \'{marker}\' > $p/fd/1; exit 0;; esac; done; exit 1'
    )
    k8s_cluster.kubectl(
        "exec", "-n", k8s_namespace, pod["metadata"]["name"], "-c", "notebook", "--", "sh", "-c", script
    )
    live = wait_logs(backendai, "alice", "talk", marker)
    assert live["result"]["status"] == "RUNNING"
    printed = client_logs(backendai, "alice", sid)
    assert printed.returncode == 0 and marker in printed.stdout, printed.stdout + printed.stderr
    assert backendai.call("GET", f"/session/{sid}/logs", "bob").status_code == 404
    assert marker in backendai.call("GET", f"/session/{sid}/logs", "admin").json()["result"]["logs"]

    # Ended: the pod is gone, its output is still there, with the server's last words.
    terminate(backendai, "alice", sid)
    assert k8s_cluster.pods(k8s_namespace) == []  # gone when the stop returns
    after = assert_output_kept(backendai, "alice", sid, marker)
    assert after.count(marker) == 1  # read again whole at the end, not appended twice
    assert "Traceback" not in backendai.hub.log_text()


def test_a_pod_that_dies_while_starting_shows_why_on_the_spawn_page(
    backendai: HubWithManager, pdb: ProductDB, k8s_cluster: Cluster, k8s_namespace: str
) -> None:
    # A Python that cannot start: the server exits at once, saying why on its stderr.
    failed_start(backendai.hub, "alice", "broken", timeout=150)
    ended = wait_status(pdb, "alice", "broken", S.ERROR)
    assert ended.status_info.startswith("could not start: the session's container exited with status 1")
    assert "PYTHONHOME = '/nowhere'" in kept_logs(backendai, "alice", ended.id, "ERROR")
    # The hub cleans up after the failed spawn: the pod is deleted.
    wait_for(lambda: k8s_cluster.pods(k8s_namespace) == [], 30, "the failed session's pod is still there")
