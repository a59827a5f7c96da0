"""Images on the nodes of a real Kubernetes cluster (testing/k8s/), through a real hub and manager.

* The real nodes' kubelets list their engines' images in their Node objects: the session image
  (on both engines) shows as installed on both agents, without a spawn.
* An administrator's install (Administration → Images → install) of an image of a real registry
  (testing/registry.py) onto both real nodes runs through the queue: a one-shot pod pinned to
  each node makes its kubelet pull it, then is deleted; an image the registry does not have
  ends ``failed`` with the kubelet's reason. node1's engine (the host's) reaches the registry
  on loopback; node2's engine lives in a network namespace of its own, where a relay on that
  namespace's loopback, at the same port, forwards to the registry served on the nodes'
  bridge: one reference pulls on both (and engines take plain HTTP from loopback registries).
  The image is a one-file image ``FROM scratch``: it has no ``true`` to run, and its container
  failing to start still proves the pull.
* Simulated nodes (nothing runs; their status lists the images the test gives them) stand in
  for the placement cases: with ``pull_policy = "never"`` a session goes only to the node whose
  status lists its image, and one whose image no node has is refused with the reason; with
  ``ifnotpresent`` a node that lacks the image gets it pulled (its pull pod) while the session
  is PULLING, and an image of a registry the database does not know is left to the kubelet.
* With ``pull_policy = "skip"`` the kubelet pulls for the session's pod itself, and its
  ``Pulling`` event is on the pending page.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from jupyter_backendai.core.images import normalize_reference
from jupyter_backendai.db import admin
from jupyter_backendai.db import images as image_db
from jupyter_backendai.db import models as m
from testing import wait_for
from testing.k8s import HOST_IP, IMAGE, NODE_LABEL, SIM_LABEL, Cluster
from testing.k8s import kube_hub as k8s_hub
from testing.registry import SlowLink, admin_call, docker
from testing.sessions import (
    ProductDB,
    add_students,
    progress_events,
    spawn,
    stop,
    wait_agents,
    wait_gone,
    wait_status,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

S = m.SessionStatus
PULL_LABEL = "ai.backend.image-pull"


@pytest.fixture(scope="module")
def registry(image_registry, k8s_cluster):
    """The run's registry at one address both real nodes' engines pull from: the host's loopback
    (node1), and node2's own loopback, relayed to the registry served on the nodes' bridge."""
    port = image_registry.address.rpartition(":")[2]
    with image_registry.also_on(HOST_IP) as bridge:
        relay = subprocess.Popen(
            ["ip", "netns", "exec", "ktc-node2", "socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
             f"TCP:{bridge}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            yield image_registry.address
        finally:
            relay.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                relay.wait(10)


def push_tiny(registry: str, tmp_path: Path, name: str, size_mib: int = 0) -> str:
    """A one-file image (``FROM scratch``) pushed to ``registry`` and removed from the host's engine."""
    context = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    context.mkdir()
    (context / "hello").write_bytes(name.encode() + os.urandom(size_mib * 1024 * 1024))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    remote = f"{registry}/lab/{name}-{uuid.uuid4().hex[:6]}:1"
    try:
        docker("build", "-q", "-t", remote, str(context))
        docker("push", remote)
    finally:
        subprocess.run(["docker", "rmi", "-f", remote], capture_output=True, timeout=120)
    return remote


@pytest.fixture
def pdb(tmp_path, registry):
    def setup(db):
        add_students(db, image=IMAGE)
        admin.add_registry(db, registry, f"http://{registry}")
        domain = db.get(m.Domain, "default")
        domain.allowed_docker_registries = [registry]

    with ProductDB(tmp_path) as pdb:
        pdb.setup(setup)
        pdb.user("root@example.com", role="superadmin")  # who administers the images
        pdb.user("alice@example.com", policy="student")
        yield pdb


def kube_hub(make_hub, pdb, cluster: Cluster, namespace: str, extra: str = "", selector: str = NODE_LABEL):
    """A hub on the cluster with the manager service; the nodes are agents from its start."""
    return k8s_hub(make_hub, pdb, cluster, namespace, extra, selector, manager=True, image_pull_policy=None)


def image_view(hub, pdb, ref: str) -> dict:
    r = admin_call(hub, pdb, "GET", f"/admin/images/{quote(ref, safe='/:')}")
    assert r.status_code == 200, r.text
    return r.json()


def install(hub, pdb, ref: str, agents: list[str]) -> None:
    answer = admin_call(hub, pdb, "POST", f"/admin/images/{quote(ref, safe='/:')}/install", {"agents": agents})
    assert answer.status_code == 202 and answer.json()["queued"] == agents, answer.text


def installed_on(pdb, agents: list[str]) -> dict[str, frozenset[str]]:
    with pdb() as db:
        return image_db.installed_on(db, agents)


def pull_pods(cluster: Cluster, namespace: str) -> list[str]:
    return [p["metadata"]["name"] for p in cluster.pods(namespace, PULL_LABEL)]


def test_nodes_report_their_images_and_an_install_pulls_onto_real_nodes(
    make_hub, pdb, k8s_cluster, k8s_namespace, registry, tmp_path
):
    tiny = push_tiny(registry, tmp_path, "tiny")
    missing = f"{registry}/lab/missing-{uuid.uuid4().hex[:6]}:1"
    for ref in (tiny, missing):
        pdb.setup(lambda db, ref=ref: admin.upsert_image(db, ref, labels={"ai.backend.test": "1"}))
    hub = kube_hub(make_hub, pdb, k8s_cluster, k8s_namespace)
    wait_agents(pdb, lambda a: {"node1", "node2"} <= set(a))
    # What the kubelets list: the session image is on both engines, without a spawn.
    have = wait_for(
        lambda: (lambda h: h if all(IMAGE in refs for refs in h.values()) else None)(
            installed_on(pdb, ["node1", "node2"])
        ),
        30, lambda: f"the session image not reported: {installed_on(pdb, ['node1', 'node2'])}",
    )  # fmt: skip
    assert all(normalize_reference(tiny) not in refs for refs in have.values())

    # An administrator's install onto both nodes: each node's kubelet pulls it for a pod of its own.
    install(hub, pdb, tiny, ["node1", "node2"])
    notes, deadline = [], time.monotonic() + 120
    while True:
        view = image_view(hub, pdb, tiny)
        notes += [i["message"] for i in view["installs"] if i["status"] == "pulling"]
        if len(view["installed_agents"]) == 2:
            break
        assert all(i["status"] != "failed" for i in view["installs"]), view["installs"]
        assert time.monotonic() < deadline, f"not installed: {view}\n{hub.log_tail(60)}"
        time.sleep(0.3)
    assert sorted(view["installed_agents"]) == ["node1", "node2"] and view["installed"] is True, view
    for node in ("node1", "node2"):
        assert k8s_cluster.docker(node, "image", "inspect", tiny, check=False).returncode == 0, node
    # What a pull showed meanwhile (a small image may be there before the first progress write).
    assert all(n == "starting" or " onto node node" in n for n in notes), notes
    wait_for(lambda: pull_pods(k8s_cluster, k8s_namespace) == [], 30, "the pull pods deleted")
    # Once its kubelet lists it, the node reports it too (the list is refreshed every 30 s or so).
    wait_for(
        lambda: all(normalize_reference(tiny) in r for r in installed_on(pdb, ["node1", "node2"]).values()), 90,
        "the pulled image not in the nodes' lists",
    )  # fmt: skip

    # An image the registry does not have: failed, with the kubelet's reason; its pod is gone.
    install(hub, pdb, missing, ["node1"])
    deadline = time.monotonic() + 90
    while True:
        (row,) = image_view(hub, pdb, missing)["installs"]
        if row["status"] == "failed":
            break
        assert time.monotonic() < deadline, f"not failed: {row}\n{hub.log_tail(60)}"
        time.sleep(0.3)
    assert row["message"].startswith(("ErrImagePull: ", "ImagePullBackOff: ")), row
    assert "not found" in row["message"] or "manifest unknown" in row["message"], row
    wait_for(lambda: pull_pods(k8s_cluster, k8s_namespace) == [], 30, "the failed pull's pod deleted")
    assert k8s_cluster.docker("node1", "image", "inspect", missing, check=False).returncode != 0
    assert "Traceback" not in hub.log_text()


def test_without_pulling_a_session_goes_only_to_the_node_that_lists_its_image(
    make_hub, pdb, k8s_cluster, k8s_namespace, registry
):
    here = f"{registry}/lab/here-{uuid.uuid4().hex[:6]}:1"
    nowhere = f"{registry}/lab/nowhere-{uuid.uuid4().hex[:6]}:1"
    for ref in (here, nowhere):
        pdb.setup(lambda db, ref=ref: admin.upsert_image(db, ref, labels={"ai.backend.test": "1"}, installed=True))
    # The node without the image has more room: a placement blind to images would go there.
    with_image = k8s_cluster.add_sim_node("sim-img-a", capacity={"cpu": "2", "memory": "8Gi"}, images=[here])
    without = k8s_cluster.add_sim_node("sim-img-b", capacity={"cpu": "16", "memory": "64Gi"}, images=[IMAGE])
    try:
        hub = kube_hub(
            make_hub, pdb, k8s_cluster, k8s_namespace, selector=f"{SIM_LABEL}=true",
            extra='c.KubeSessionSpawner.pull_policy = "never"\nc.KubeSessionSpawner.watch_server_start = False',
        )  # fmt: skip
        wait_agents(pdb, lambda a: {with_image, without} <= set(a))
        wait_for(
            lambda: installed_on(pdb, [with_image, without])
            == {with_image: {normalize_reference(here)}, without: {IMAGE}},
            30, lambda: f"the nodes' images not reported: {installed_on(pdb, [with_image, without])}",
        )  # fmt: skip
        # An image no node has: refused at once with the reason.
        r = spawn(hub, "alice", "nowhere", preset="small", image=nowhere)
        assert r.status_code == 400, r.text
        assert "on no agent of resource group 'default'" in r.json()["message"], r.text
        # One a node has: placed there, nothing pulled.
        for name in ("s1", "s2"):
            assert spawn(hub, "alice", name, preset="small", image=here).status_code in (201, 202)
        rows = [wait_status(pdb, "alice", name, S.RUNNING, timeout=60) for name in ("s1", "s2")]
        assert [r.agent_id for r in rows] == [with_image, with_image]
        assert all(S.PULLING not in [h.status for h in r.history] for r in rows)
        assert pull_pods(k8s_cluster, k8s_namespace) == []
        for name in ("s1", "s2"):
            stop(hub, "alice", name)
        for name in ("s1", "s2"):
            wait_gone(hub, "alice", name, timeout=90)
    finally:
        for name in (with_image, without):
            k8s_cluster.remove_node(name)


def test_a_node_that_lacks_the_image_pulls_it_while_the_session_is_pulling(
    make_hub, pdb, k8s_cluster, k8s_namespace, registry
):
    """On a simulated node (its pods turn Running, nothing is pulled): the hub's part of a pull at spawn."""
    ref = f"{registry}/lab/at-spawn-{uuid.uuid4().hex[:6]}:1"
    # Of a registry the database does not know (allowed to the domain, not among the registries).
    elsewhere = "127.0.0.1:1/lab/elsewhere:1"

    def setup(db):
        for image in (ref, elsewhere):
            admin.upsert_image(db, image, labels={"ai.backend.test": "1"}, installed=True)
        domain = db.get(m.Domain, "default")
        domain.allowed_docker_registries = [*domain.allowed_docker_registries, "127.0.0.1:1"]

    pdb.setup(setup)
    node = k8s_cluster.add_sim_node("sim-pull-a", images=[IMAGE])
    try:
        hub = kube_hub(
            make_hub, pdb, k8s_cluster, k8s_namespace, selector=f"{SIM_LABEL}=true",
            extra="c.KubeSessionSpawner.watch_server_start = False",
        )  # fmt: skip
        wait_agents(pdb, lambda a: node in a)
        wait_for(lambda: installed_on(pdb, [node]) == {node: {IMAGE}}, 30, "the node's images not reported")
        # The session image is listed there: no pull, no API call; the other is pulled first.
        assert spawn(hub, "alice", "listed", preset="small", image=IMAGE).status_code in (201, 202)
        listed = wait_status(pdb, "alice", "listed", S.RUNNING, timeout=60)
        assert S.PULLING not in [h.status for h in listed.history]
        assert spawn(hub, "alice", "pulled", preset="small", image=ref).status_code in (201, 202)
        # (No server answers on a simulated node: the hub ends such a session after its http_timeout.)
        session = wait_status(pdb, "alice", "pulled", S.RUNNING, timeout=60)
        statuses = [h.status for h in session.history]
        assert statuses.index(S.PULLING) < statuses.index(S.CREATING) < statuses.index(S.RUNNING), statuses
        assert f"pulling image {ref} onto agent {node}" in [h.reason for h in session.history]
        # Pulled there: installed on that node (its list never says so: a simulated node's is fixed).
        assert normalize_reference(ref) in installed_on(pdb, [node])[node]
        assert pull_pods(k8s_cluster, k8s_namespace) == []
        stop(hub, "alice", "listed")  # the student's two CPUs: room for the next
        wait_gone(hub, "alice", "listed", timeout=90)
        # The hub cannot pull that one: the kubelet may (by image_pull_policy, with its pull secrets).
        r = spawn(hub, "alice", "elsewhere", preset="small", image=elsewhere)
        assert r.status_code in (201, 202), r.text
        left = wait_status(pdb, "alice", "elsewhere", S.RUNNING, timeout=60)
        assert S.PULLING not in [h.status for h in left.history]
        for name in ("pulled", "elsewhere"):
            stop(hub, "alice", name)
        for name in ("pulled", "elsewhere"):
            wait_gone(hub, "alice", name, timeout=90)
    finally:
        k8s_cluster.remove_node(node)


def test_the_kubelets_own_pull_of_the_sessions_image_shows_on_the_pending_page(
    make_hub, pdb, k8s_cluster, k8s_namespace, registry, tmp_path
):
    """With ``pull_policy = "skip"`` the kubelet pulls for the session's pod (``IfNotPresent``); its
    ``Pulling`` event is the pending page's. Through a slow link (1 MiB/s) so that the pull is seen;
    the image has no server, so the spawn then fails with the kubelet's reason."""
    pushed = push_tiny(registry, tmp_path, "slow", size_mib=6)
    with SlowLink(registry, rate=1024 * 1024) as link:
        ref = pushed.replace(registry, link.address, 1)

        def setup(db):
            admin.upsert_image(db, ref, labels={"ai.backend.test": "1"}, installed=True)
            domain = db.get(m.Domain, "default")
            domain.allowed_docker_registries = [*domain.allowed_docker_registries, link.address]

        pdb.setup(setup)
        hub = kube_hub(
            make_hub, pdb, k8s_cluster, k8s_namespace, selector=f"{NODE_LABEL}=node1",
            extra='c.KubeSessionSpawner.pull_policy = "skip"',
        )  # fmt: skip
        r = spawn(hub, "alice", "kubelet", preset="small", image=ref)
        assert r.status_code in (201, 202), r.text
        events = progress_events(hub, "alice", "kubelet", timeout=120)
    messages = [e.get("message") or "" for e in events]
    assert f'node node1: Pulling image "{ref}"' in messages, messages
    assert events[-1].get("failed"), events[-1]
    session = wait_status(pdb, "alice", "kubelet", S.ERROR, timeout=30)
    assert S.PULLING not in [h.status for h in session.history]  # the hub pulled nothing itself
