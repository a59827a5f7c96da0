"""Sessions on a real Kubernetes cluster (testing/k8s/) through a real hub.

The hub talks to the cluster's API server with its kubeconfig; every node is an agent, our
scheduler picks one, the session's pod is pinned there. Real pods of the session image run on
the two real nodes (node1 on the host's engine, node2 on an engine of its own); simulated nodes
stand in for GPU nodes and full clusters (their pods turn Running, nothing runs). The hub listens
on the nodes' bridge, where pods on both nodes reach its API.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing import wait_for
from testing.browser import hub_login, open_spawn_form, submit_spawn_form, wait_lab_with_folder
from testing.k8s import HOST_IP, IMAGE, NODE_LABEL, SIM_LABEL, Cluster, kube_hub
from testing.sessions import (
    PASSWORD,
    SSH_OPTIONS,
    ProductDB,
    add_students,
    agents,
    contents,
    downloaded_key,
    hub_config,
    progress_until,
    spawn,
    spawn_running,
    stop,
    wait_agents,
    wait_gone,
    wait_ready,
    wait_status,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

S = m.SessionStatus
GROUP_LABEL = "ai.backend.resource-group"


@pytest.fixture
def pdb(tmp_path):
    def setup(db):
        add_students(db, slots={"cpu": 4, "mem": "4g", "cuda.device": 8}, sessions=4, image=IMAGE)
        admin.create_preset(db, "gpu2", {"cpu": 1, "mem": "1g", "cuda.device": 2})
        admin.create_scaling_group(db, "gpu")
        admin.allow_scaling_group(db, "gpu", domains=["default"])

    with ProductDB(tmp_path) as pdb:
        pdb.setup(setup)
        yield pdb


def session_pod(cluster: Cluster, namespace: str, session_id) -> dict:
    pods = cluster.pods(namespace, f"ai.backend.session-id={session_id}")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def pod_exec(cluster: Cluster, namespace: str, pod: str, script: str) -> str:
    return cluster.kubectl("exec", "-n", namespace, pod, "-c", "notebook", "--", "sh", "-c", script).stdout


def test_nodes_are_agents_and_a_session_runs_as_a_pod_pinned_to_the_chosen_node(
    make_hub, pdb, k8s_cluster, k8s_namespace
):
    pdb.user("alice@example.com", policy="student")
    pdb.folder("alice", "data")
    hub = kube_hub(make_hub, pdb, k8s_cluster, k8s_namespace)
    r = spawn(hub, "alice", "one", preset="small", folders=["data"])
    assert r.status_code in (201, 202), r.text
    # Every real node is an agent: alive, in default, at its address, with its allocatable resources.
    found = wait_agents(pdb, lambda a: len(a) == 2)
    assert {a.id: a.addr for a in found.values()} == {"node1": HOST_IP, "node2": "10.231.2.12"}
    for a in found.values():
        assert a.status == m.AgentStatus.ALIVE and a.scaling_group == "default" and a.schedulable
        node = k8s_cluster.get("node", a.id)
        assert float(a.available_slots["cpu"]) == float(node["status"]["allocatable"]["cpu"])
    wait_ready(hub, "alice", "one", timeout=120)
    session = wait_status(pdb, "alice", "one", S.RUNNING)
    pod = session_pod(k8s_cluster, k8s_namespace, session.id)
    assert pod["spec"]["nodeName"] == session.agent_id  # Kubernetes obeyed our scheduler
    assert pod["metadata"]["uid"] == session.container_id
    name = pod["metadata"]["name"]
    out = pod_exec(
        k8s_cluster, k8s_namespace, name,
        "id -u; id -g; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; "
        "grep '^CapEff:' /proc/self/status | awk '{print $2}'; grep '^NoNewPrivs:' /proc/self/status | awk '{print $2}'; "
        "stat -f -c %T /dev/shm; stat -c '%a %U:%G' /home/work/id_container; head -c 10 /home/work/id_container; echo; "
        "test -e /var/run/secrets/kubernetes.io/serviceaccount && echo token || echo no-token; "
        "echo written > /home/work/data/from-k8s.txt && echo wrote",
    ).split()  # fmt: skip
    assert out[0] == out[1] == "1000", out
    assert out[2] == str(512 * 1024**2), out  # the limit is the cgroup's
    assert int(out[3]) / int(out[4]) == 1.0, out
    assert out[5] == "0000000000000000" and out[6] == "1", out  # no capabilities, no new privileges
    assert out[7] == "tmpfs", out  # a memory-backed emptyDir
    assert out[8:10] == ["440", "root:work"], out  # the private key, readable by the session user only
    assert out[10] == "-----BEGIN", out
    assert out[11:] == ["no-token", "wrote"], out
    (stored,) = list(pdb.storage_root.rglob("from-k8s.txt"))  # on the storage, through the sub-path
    assert stored.read_text() == "written\n"
    # The key files come from the session's own Secret, owned by the pod.
    secret = k8s_cluster.get("secret", f"backendai-ssh-{session.id}", "-n", k8s_namespace)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    # The hub and the proxy reach the server at the pod's IP.
    assert contents(hub, "alice", "one", "data").status_code == 200

    stop(hub, "alice", "one")
    wait_gone(hub, "alice", "one", timeout=90)
    assert wait_status(pdb, "alice", "one", S.TERMINATED)
    assert k8s_cluster.pods(k8s_namespace) == []  # gone when the stop returns: its slots are free
    wait_for(
        lambda: k8s_cluster.kubectl("get", "secret", f"backendai-ssh-{session.id}", "-n", k8s_namespace,
                                    check=False).returncode != 0,
        30, "the session's Secret deleted",
    )  # fmt: skip


RBAC = Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "rbac.yaml"


def rbac_kubeconfig(cluster: Cluster, namespace: str, path: Path) -> Path:
    """A kubeconfig of the documented service account (examples/kubernetes/rbac.yaml) in ``namespace``:
    the hub then has exactly the rights docs/kubernetes.md says it needs."""
    text = RBAC.read_text().replace("namespace: backendai", f"namespace: {namespace}")
    cluster.kubectl("apply", "-f", "-", input=text.replace("backendai-hub-nodes", f"backendai-hub-nodes-{namespace}"))

    def token_secret():
        account = cluster.get("serviceaccount", "backendai-hub", "-n", namespace)
        return (account.get("secrets") or [{}])[0].get("name")

    secret = wait_for(token_secret, 30, "the service account's token")
    token = base64.b64decode(cluster.get("secret", secret, "-n", namespace)["data"]["token"]).decode()
    ca = re.search(r'certificate-authority: "([^"]+)"', cluster.kubeconfig.read_text()).group(1)
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://127.0.0.1:16443", "certificate-authority": ca}}
                ],
                "users": [{"name": "hub", "user": {"token": token}}],
                "contexts": [{"name": "hub", "context": {"cluster": "c", "user": "hub", "namespace": namespace}}],
                "current-context": "hub",
            }
        )
    )
    return path


def test_ssh_through_a_node_port_with_the_documented_rbac_and_a_network_policy(
    make_hub, pdb, k8s_cluster, k8s_namespace, tmp_path
):
    from testing.hub import login

    pdb.user("sam@example.com", policy="student")
    pdb.setup(lambda db: setattr(admin.get_user(db, "sam"), "preferred_ssh_port", 30222))
    kubeconfig = rbac_kubeconfig(k8s_cluster, k8s_namespace, tmp_path / "hub-kubeconfig")
    try:
        hub = make_hub(
            hub_config(
                pdb,
                "backendai-kubernetes",
                f"""
c.KubeSessionSpawner.namespace = {k8s_namespace!r}
c.KubeSessionSpawner.agent_node_selector = {NODE_LABEL!r}
c.KubeSessionSpawner.image_pull_policy = "Never"
c.KubeSessionSpawner.network_policy = True
c.KubeSessionSpawner.hub_cidrs = [{HOST_IP + "/32"!r}]
c.JupyterHub.hub_ip = {HOST_IP!r}
""",
            ),
            env={"KUBECONFIG": str(kubeconfig)},
        )
        assert spawn(hub, "sam", "s", preset="small").status_code in (201, 202)
        wait_ready(hub, "sam", "s", timeout=120)
        session = wait_status(pdb, "sam", "s", S.RUNNING)
        assert session.ssh_port == 30222  # the preferred port, free in the NodePort range
        pod = session_pod(k8s_cluster, k8s_namespace, session.id)
        uid = pod["metadata"]["uid"]
        service = k8s_cluster.get("service", f"backendai-ssh-{session.id}", "-n", k8s_namespace)
        assert service["spec"]["type"] == "NodePort"
        assert service["spec"]["selector"] == {"ai.backend.session-id": str(session.id)}
        assert [(p["nodePort"], p["targetPort"]) for p in service["spec"]["ports"]] == [(30222, 2200)]
        assert service["metadata"]["ownerReferences"][0]["uid"] == uid
        policy = k8s_cluster.get("networkpolicy", pod["metadata"]["name"], "-n", k8s_namespace)
        assert policy["spec"]["podSelector"] == {"matchLabels": {"ai.backend.session-id": str(session.id)}}
        assert policy["spec"]["ingress"][0] == {
            "from": [{"ipBlock": {"cidr": f"{HOST_IP}/32"}}],
            "ports": [{"protocol": "TCP", "port": 8888}],
        }
        assert policy["metadata"]["ownerReferences"][0]["uid"] == uid
        # The home page shows where to connect: the node's address and the NodePort.
        node_addr = agents(pdb)[session.agent_id].addr
        browser = requests.Session()
        assert login(hub, "sam", PASSWORD, browser).status_code == 200
        home = browser.get(f"{hub.url}/hub/home", timeout=30).text
        assert f"ssh -i id_container -p 30222 work@{node_addr}" in home
        # This cluster runs no kube-proxy, so no node forwards the NodePort: connect to where it
        # forwards, the pod's sshd.
        opts = ["-i", str(downloaded_key(browser, hub, pdb, "sam", "s", tmp_path)), *SSH_OPTIONS]
        done = None
        deadline = time.monotonic() + 30
        while done is None or (done.returncode != 0 and time.monotonic() < deadline):
            done = subprocess.run(
                ["ssh", *opts, "-p", "2200", f"work@{pod['status']['podIP']}", "id -un; pwd"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            time.sleep(0.5)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["work", "/home/work"]

        stop(hub, "sam", "s")
        wait_gone(hub, "sam", "s", timeout=90)
        names = {"service": service["metadata"]["name"], "networkpolicy": policy["metadata"]["name"]}
        names["secret"] = f"backendai-ssh-{session.id}"
        for kind, name in names.items():
            wait_for(
                lambda kind=kind, name=name: k8s_cluster.kubectl(
                    "get", kind, name, "-n", k8s_namespace, check=False
                ).returncode != 0,
                30, f"the session's {kind} deleted",
            )  # fmt: skip
        assert "Traceback" not in hub.log_text()
    finally:
        k8s_cluster.kubectl(
            "delete", "clusterrole,clusterrolebinding", f"backendai-hub-nodes-{k8s_namespace}", check=False
        )


def test_sessions_land_where_our_scheduler_puts_them_and_a_full_cluster_queues(
    make_hub, pdb, k8s_cluster, k8s_namespace
):
    pdb.user("dave@example.com", policy="student")
    pdb.user("erin@example.com", policy="student")
    # One small session fills a node (as our scheduler sees it).
    hub = kube_hub(
        make_hub, pdb, k8s_cluster, k8s_namespace,
        extra='c.KubeSessionSpawner.agent_capacity = {"cpu": 1, "mem": "2g"}\nc.JupyterHub.cleanup_servers = False',
    )  # fmt: skip
    for name in ("s1", "s2"):
        assert spawn(hub, "dave", name, preset="small").status_code in (201, 202)
    for name in ("s1", "s2"):
        wait_ready(hub, "dave", name, timeout=120)
    rows = {name: wait_status(pdb, "dave", name, S.RUNNING) for name in ("s1", "s2")}
    assert {r.agent_id for r in rows.values()} == {"node1", "node2"}  # one per node
    for r in rows.values():
        assert session_pod(k8s_cluster, k8s_namespace, r.id)["spec"]["nodeName"] == r.agent_id

    # A hub restart keeps both sessions.
    hub.restart()
    for name in ("s1", "s2"):
        assert contents(hub, "dave", name, "").status_code == 200, name
        assert wait_status(pdb, "dave", name, S.RUNNING)

    # Every node is full: the next session waits with its place in the queue ...
    assert spawn(hub, "erin", "e", preset="small").status_code == 202
    assert wait_status(pdb, "erin", "e", S.PENDING)
    seen = progress_until(hub, "erin", "e", b"position")
    assert b"Waiting for resources in default: position 1 of 1" in seen, seen
    # ... and starts on the node that a session leaves.
    stop(hub, "dave", "s2")
    wait_ready(hub, "erin", "e", timeout=120)
    e = wait_status(pdb, "erin", "e", S.RUNNING)
    assert e.agent_id == rows["s2"].agent_id
    assert session_pod(k8s_cluster, k8s_namespace, e.id)["spec"]["nodeName"] == e.agent_id

    # A session the database says ended (as after a hub that crashed while ending it): its pod is
    # found and deleted, and the hub forgets the server.
    def end(db):
        row = db.get(m.Session, rows["s1"].id)
        row.status = S.TERMINATED

    pdb.setup(end)
    wait_for(lambda: not k8s_cluster.pods(k8s_namespace, f"ai.backend.session-id={rows['s1'].id}"), 60,
             "the ended session's pod deleted")  # fmt: skip
    wait_gone(hub, "dave", "s1", timeout=30)
    stop(hub, "erin", "e")
    wait_gone(hub, "erin", "e", timeout=90)


def test_gpu_counts_on_simulated_gpu_nodes_and_node_labels_cordons_and_deletions(
    make_hub, pdb, k8s_cluster, k8s_namespace
):
    """Simulated nodes (nothing runs on them, so no server ever answers: the spawns are ended by
    the test). Pods are pinned by node affinity here, so that the kube-scheduler checks the GPUs too."""
    pdb.user("gina@example.com", policy="student")
    pdb.user("hank@example.com", policy="student")
    gpu = {"nvidia.com/gpu": "2"}
    a = k8s_cluster.add_sim_node("sim-gpu-a", capacity=gpu, labels={GROUP_LABEL: "gpu"})
    b = k8s_cluster.add_sim_node("sim-gpu-b", capacity={"nvidia.com/gpu": "4"}, labels={GROUP_LABEL: "gpu"})
    c = k8s_cluster.add_sim_node("sim-cpu-c")
    try:
        hub = kube_hub(
            make_hub, pdb, k8s_cluster, k8s_namespace, selector=f"{SIM_LABEL}=true",
            # No server runs on a simulated node: the start ends when the pod runs.
            extra='c.KubeSessionSpawner.pin = "affinity"\nc.KubeSessionSpawner.watch_server_start = False',
        )  # fmt: skip
        for name in ("g1", "g2", "g3"):
            assert spawn(hub, "gina", name, preset="gpu2", scaling_group="gpu").status_code in (201, 202)
        found = wait_agents(pdb, lambda f: {a, b, c} <= set(f))
        assert (found[a].scaling_group, found[b].scaling_group, found[c].scaling_group) == ("gpu", "gpu", "default")
        assert found[a].available_slots["cuda.device"] == 2 and found[b].available_slots["cuda.device"] == 4
        assert [d["id"] for d in found[b].devices] == ["0", "1", "2", "3"]
        assert "cuda.device" not in found[c].available_slots
        rows = {n: wait_status(pdb, "gina", n, S.RUNNING, timeout=60) for n in ("g1", "g2", "g3")}
        on = sorted(r.agent_id for r in rows.values())
        assert on == [a, b, b], on  # 2 + 4 GPUs hold three sessions of two
        for r in rows.values():
            pod = session_pod(k8s_cluster, k8s_namespace, r.id)
            assert pod["spec"]["nodeName"] == r.agent_id  # bound there by the kube-scheduler
            assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
            assert pod["status"]["phase"] == "Running"
        # No GPU left: the next one queues.
        assert spawn(hub, "hank", "g4", preset="gpu2", scaling_group="gpu").status_code == 202
        assert wait_status(pdb, "hank", "g4", S.PENDING)
        time.sleep(1)
        assert pdb.session("hank", "g4").status == S.PENDING

        # A label moves a node into another resource group; a cordon makes it unschedulable.
        k8s_cluster.label_node(c, GROUP_LABEL, "gpu")
        wait_agents(pdb, lambda f: f[c].scaling_group == "gpu", timeout=15)
        k8s_cluster.kubectl("cordon", c)
        cordoned = wait_agents(pdb, lambda f: not f[c].schedulable and f[c].status == m.AgentStatus.ALIVE, timeout=15)
        assert cordoned[c].status_info == "node cordoned"
        k8s_cluster.kubectl("uncordon", c)
        wait_agents(pdb, lambda f: f[c].schedulable, timeout=15)
        # A deleted node is lost, and so is the session it held.
        g_on_a = next(n for n, r in rows.items() if r.agent_id == a)
        k8s_cluster.remove_node(a)
        wait_agents(pdb, lambda f: f[a].status == m.AgentStatus.LOST, timeout=15)
        lost = wait_status(pdb, "gina", g_on_a, S.ERROR, timeout=15)
        assert lost.status_info == "agent lost"
        # Its GPUs went with it: the queued session stays queued.
        assert pdb.session("hank", "g4").status == S.PENDING
        for user, name in [("gina", n) for n in rows] + [("hank", "g4")]:
            stop(hub, user, name)
        for user, name in [("gina", n) for n in rows] + [("hank", "g4")]:
            wait_gone(hub, user, name, timeout=90)
        wait_for(lambda: k8s_cluster.pods(k8s_namespace) == [], 60, "every pod deleted")
    finally:
        for name in (a, b, c):
            k8s_cluster.remove_node(name)


def test_an_unreachable_api_server_refuses_spawns_with_the_reason(make_hub, pdb, tmp_path, k8s_cluster):
    pdb.user("fred@example.com", policy="student")
    assert json.loads(k8s_cluster.kubectl("get", "--raw", "/api").stdout)["kind"] == "APIVersions"  # it answers ...
    # ... but this hub's kubeconfig names an address where nothing listens.
    from testing.hub import free_port

    kubeconfig = tmp_path / "kubeconfig"
    original = k8s_cluster.kubeconfig.read_text()
    kubeconfig.write_text(original.replace("https://127.0.0.1:16443", f"https://127.0.0.1:{free_port()}"))
    hub = make_hub(
        hub_config(pdb, "backendai-kubernetes", 'c.KubeSessionSpawner.namespace = "default"'),
        env={"KUBECONFIG": str(kubeconfig)},
    )
    r = spawn(hub, "fred", "x", preset="small")
    assert r.status_code == 503, r.text
    assert "the Kubernetes API server does not answer" in r.json()["message"]
    assert pdb.sessions("fred") == []  # refused before it was queued
    assert "Traceback" not in hub.log_text()


class Forwarder:
    """A TCP forwarder on 127.0.0.1 to the API server, that the test can cut and restore: the hub
    talks to the cluster through it, so that the API server is unreachable for the hub alone."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> Forwarder:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        """Refuse new connections and cut the open ones (the watches too)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def test_the_api_server_gone_for_a_while_refuses_spawns_and_kills_nothing(
    make_hub, pdb, k8s_cluster, k8s_namespace, tmp_path
):
    pdb.user("ivan@example.com", policy="student")
    forwarder = Forwarder(("127.0.0.1", 16443)).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        k8s_cluster.kubeconfig.read_text().replace("https://127.0.0.1:16443", f"https://127.0.0.1:{forwarder.port}")
    )
    try:
        hub = kube_hub(make_hub, pdb, k8s_cluster, k8s_namespace, kubeconfig=kubeconfig)
        a = spawn_running(hub, pdb, "ivan", "a", timeout=120, preset="small")

        forwarder.stop()
        time.sleep(8)  # several polls and heartbeats without an API server
        r = spawn(hub, "ivan", "b", preset="small")
        assert r.status_code == 503, r.text
        assert "the Kubernetes API server does not answer" in r.json()["message"]
        assert pdb.session("ivan", "a").status == S.RUNNING  # nothing was ended ...
        assert agents(pdb)[a.agent_id].status == m.AgentStatus.ALIVE  # ... and no node lost
        assert contents(hub, "ivan", "a", "").status_code == 200  # the session still serves
        assert session_pod(k8s_cluster, k8s_namespace, a.id)["status"]["phase"] == "Running"

        forwarder.start()  # the API server is back: spawns go through again
        deadline = time.monotonic() + 60
        while (r := spawn(hub, "ivan", "b", preset="small")).status_code == 503 and time.monotonic() < deadline:
            time.sleep(1)
        assert r.status_code in (201, 202), r.text
        wait_ready(hub, "ivan", "b", timeout=120)
        assert pdb.session("ivan", "a").status == S.RUNNING
        for name in ("a", "b"):
            stop(hub, "ivan", name)
        for name in ("a", "b"):
            wait_gone(hub, "ivan", name, timeout=90)
    finally:
        forwarder.stop()


def test_jupyterlab_in_chromium_from_the_spawn_form(make_hub, pdb, k8s_cluster, k8s_namespace, page):
    from testing.hub import screenshot

    pdb.user("lee@example.com", policy="student")
    pdb.folder("lee", "work")
    hub = kube_hub(make_hub, pdb, k8s_cluster, k8s_namespace, extra='c.Spawner.default_url = "/lab"')
    hub_login(page, hub, "lee", PASSWORD)
    page.wait_for_url(re.compile(r"/hub/home"))
    open_spawn_form(page, hub, "lee", "first")
    assert page.is_visible("input.bai-folder[value=work]")
    page.check("input.bai-folder[value=work]")
    submit_spawn_form(page, "lee", "first")
    # JupyterLab, served from the pod, shows the mounted folder.
    wait_lab_with_folder(page, "lee", "first", "work")
    screenshot(page, "kubernetes-jupyterlab")
    session = wait_status(pdb, "lee", "first", S.RUNNING)
    assert session_pod(k8s_cluster, k8s_namespace, session.id)["spec"]["nodeName"] == session.agent_id
    stop(hub, "lee", "first")
    wait_gone(hub, "lee", "first", timeout=90)


# Last in the module: it kills a real node (the fixture's teardown cleans up whatever is left).
def test_a_real_node_killed_is_lost_and_comes_back_without_orphan_pods(make_hub, pdb, k8s_cluster, k8s_namespace):
    pdb.user("carol@example.com", policy="student")
    # node1 cordoned: the session goes to node2, the node that can die here with its engine.
    k8s_cluster.kubectl("cordon", "node1")
    try:
        hub = kube_hub(make_hub, pdb, k8s_cluster, k8s_namespace)
        assert spawn(hub, "carol", "a", preset="small").status_code in (201, 202)
        wait_ready(hub, "carol", "a", timeout=120)
        a = wait_status(pdb, "carol", "a", S.RUNNING)
        assert a.agent_id == "node2"
        assert not agents(pdb)["node1"].schedulable

        k8s_cluster.kill_node("node2")
        started = time.monotonic()
        lost = wait_status(pdb, "carol", "a", S.ERROR, timeout=60)
        elapsed = time.monotonic() - started
        assert lost.status_info == "agent lost"
        node2 = agents(pdb)["node2"]
        assert node2.status == m.AgentStatus.LOST and node2.status_info.startswith("node Ready=")
        wait_gone(hub, "carol", "a", timeout=30)  # the hub noticed it on its next poll
        # The pod is gone from the API although no kubelet confirmed it.
        wait_for(lambda: k8s_cluster.pods(k8s_namespace) == [], 30, "the lost session's pod deleted")
        # NotReady after the controller-manager's 10 s grace period here (node-monitor-grace-period).
        assert elapsed < 30, elapsed

        # The node comes back: alive again, and its kubelet removes the lost session's containers.
        k8s_cluster.restore()
        wait_agents(pdb, lambda f: f["node2"].status == m.AgentStatus.ALIVE, timeout=60)
        wait_for(
            lambda: k8s_cluster.docker(
                "node2", "ps", "-aq", "--filter", f"label=io.kubernetes.pod.namespace={k8s_namespace}"
            ).stdout.strip() == "",
            90, "the lost session's containers removed from node2",
        )  # fmt: skip
        # And takes sessions again.
        assert spawn(hub, "carol", "b", preset="small").status_code in (201, 202)
        wait_ready(hub, "carol", "b", timeout=120)
        assert wait_status(pdb, "carol", "b", S.RUNNING).agent_id == "node2"
        stop(hub, "carol", "b")
        wait_gone(hub, "carol", "b", timeout=90)
    finally:
        k8s_cluster.kubectl("uncordon", "node1", check=False)
        if not k8s_cluster.node_ready("node2"):
            k8s_cluster.restore()
