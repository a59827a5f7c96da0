"""Images onto the nodes of a real Docker Swarm (testing/swarm.py), through a real hub and manager.

The registry of testing/registry.py is also served on the nodes' bridge, where the nodes'
engines pull from it (they take plain HTTP from that network: the fixture starts them with
``--insecure-registry`` for it). Each session's image is built offline from the session image
plus a layer of its own, so a node pulls something new.

* With ``pull_policy = "never"``: an image installed onto one node only (an administrator's install
  with ``agents``, pulled by a task pinned there) is shown installed on that node alone, and the
  scheduler puts its session there; an image no node has is refused with the reason.
* With pulling on (the default) and the nodes' engines reachable (``node_docker_urls``): a
  session is PULLING while its node pulls the image (its bytes on the pending page), then runs;
  the node is shown as having it, and so is a node the image was pulled onto by hand.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

import pytest

from jupyter_backendai.db import admin
from jupyter_backendai.db import models as m
from testing.registry import SlowLink, admin_call, push_session_variant
from testing.sessions import (
    ProductDB,
    add_students,
    progress_until,
    spawn,
    spawn_running,
    start_hub_with_manager,
    stop,
    wait_gone,
    wait_ready,
    wait_status,
)
from testing.swarm import BRIDGE_IP, IMAGE, Swarm, swarm_settings

pytestmark = [pytest.mark.docker, pytest.mark.slow]

S = m.SessionStatus
#: Bytes per second the slow link passes per connection: an 8 MiB layer takes about 4 s.
RATE = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def bridge_registry(image_registry, swarm, tmp_path_factory):
    """The run's registry, served on the nodes' bridge as well, behind a slow link there (so that a
    pull lasts long enough for its progress to be seen): (loopback address, the nodes' address).

    The nodes got the session image by ``docker load``, which leaves them no record of its
    layers' registry digests: they would download every base layer again (200 MiB through the
    slow link). One pull of a variant of it, past the slow link, gives them that record, so that
    a later variant's pull downloads only its own layer.
    """
    with image_registry.also_on(BRIDGE_IP) as address:
        warm = push_session_variant(image_registry.address, "base/warm:1", tmp_path_factory.mktemp("warm"), size_mib=0)
        for node in swarm.nodes:
            node.docker("pull", f"{address}/{warm.split('/', 1)[1]}", timeout=300)
        with SlowLink(address, rate=RATE, listen_host=BRIDGE_IP) as link:
            yield image_registry.address, link.address


@pytest.fixture
def pdb(tmp_path, bridge_registry):
    _loopback, bridge = bridge_registry

    def setup(db):
        add_students(db, slots={"cpu": 4, "mem": "4g"}, image=IMAGE, labels={"ai.backend.resource.min.cpu": "0.5"})
        admin.add_registry(db, bridge, f"http://{bridge}")
        domain = db.get(m.Domain, "default")
        domain.allowed_docker_registries = [bridge]

    with ProductDB(tmp_path) as pdb:
        pdb.setup(setup)
        pdb.user("root@example.com", role="superadmin")  # who administers the images
        pdb.user("alice@example.com", policy="student")
        yield pdb


def swarm_hub(make_hub, pdb: ProductDB, swarm: Swarm, extra: str = ""):
    """A hub on the swarm with the manager service; the nodes register at start and report their images."""
    settings = swarm_settings(swarm, f"""
c.SwarmSessionSpawner.image_poll_interval = 0.5
from jupyter_backendai.hub.first_run import register_agent_at_start as _register
_register(c, "swarm")
{extra}
""")  # fmt: skip
    return start_hub_with_manager(make_hub, pdb, spawner="backendai-swarm", extra=settings)


def image_view(hub, pdb, ref: str) -> dict:
    r = admin_call(hub, pdb, "GET", f"/admin/images/{quote(ref, safe='/:')}")
    assert r.status_code == 200, r.text
    return r.json()


def alive_nodes(pdb, swarm: Swarm) -> None:
    deadline = time.monotonic() + 60
    while True:
        with pdb() as db:
            alive = {a.id for a in db.query(m.Agent).all() if a.status == m.AgentStatus.ALIVE and a.schedulable}
        if alive >= set(swarm.node_ids().values()):
            return
        assert time.monotonic() < deadline, f"the nodes did not all register: {alive}"
        time.sleep(0.5)


def on_node(node, ref: str) -> bool:
    return node.docker("image", "inspect", ref, check=False).returncode == 0


def variant(bridge_registry, tmp_path, name: str, size_mib: int = 4) -> str:
    loopback, bridge = bridge_registry
    repo = f"lab/{name}-{uuid.uuid4().hex[:6]}:1"
    push_session_variant(loopback, repo, tmp_path, size_mib=size_mib)
    return f"{bridge}/{repo}"


def test_without_pulling_the_session_goes_to_the_node_that_has_its_image(
    make_hub, pdb, swarm, bridge_registry, tmp_path
):
    ref = variant(bridge_registry, tmp_path, "one-node")
    pdb.setup(lambda db: admin.upsert_image(db, ref, labels={"ai.backend.test": "1"}))
    hub = swarm_hub(make_hub, pdb, swarm, 'c.SwarmSessionSpawner.pull_policy = "never"')
    alive_nodes(pdb, swarm)
    # Onto one node only, as an administrator installs it: a task pinned there makes it pull.
    target = swarm.nodes[1]
    path = f"/admin/images/{quote(ref, safe='/:')}/install"
    answer = admin_call(hub, pdb, "POST", path, {"agents": [target.node_id]})
    assert answer.status_code == 202 and answer.json()["queued"] == [target.node_id], answer.text
    deadline = time.monotonic() + 120
    notes = []
    while True:
        view = image_view(hub, pdb, ref)
        notes += [i["message"] for i in view["installs"] if i["status"] == "pulling"]
        if view["installed_agents"]:
            break
        assert all(i["status"] != "failed" for i in view["installs"]), view["installs"]
        assert time.monotonic() < deadline, f"not installed: {view}\n{hub.log_tail(60)}"
        time.sleep(0.3)
    assert view["installed_agents"] == [target.node_id] and view["installed"] is True, view
    assert any(f"onto node {target.node_id}" in n for n in notes), notes
    assert [on_node(n, ref) for n in swarm.nodes] == [n is target for n in swarm.nodes]
    assert swarm.manager.docker("service", "ls", "-q", "--filter", "label=ai.backend.image-pull").stdout == ""

    # The session goes where its image is, with nothing pulled.
    session = spawn_running(hub, pdb, "alice", "here", timeout=120, preset="small", image=ref)
    assert session.agent_id == target.node_id
    assert S.PULLING not in [h.status for h in session.history]

    # An image no node has: refused with the reason, nothing pulled anywhere.
    other = f"{ref.rsplit(':', 1)[0]}:2"
    pdb.setup(lambda db: admin.upsert_image(db, other, labels={"ai.backend.test": "1"}, installed=True))
    r = spawn(hub, "alice", "nowhere", preset="small", image=other)
    assert r.status_code == 400, r.text
    assert "on no agent of resource group 'default'" in r.json()["message"], r.text
    stop(hub, "alice", "here")
    wait_gone(hub, "alice", "here")


def test_a_node_without_the_image_pulls_it_while_the_session_is_pulling(
    make_hub, pdb, swarm, bridge_registry, tmp_path
):
    ref = variant(bridge_registry, tmp_path, "at-spawn", size_mib=8)
    pdb.setup(lambda db: admin.upsert_image(db, ref, labels={"ai.backend.test": "1"}, installed=True))
    # The hub reaches every node's engine (as it does for usage samples): pulls report their bytes,
    # and the nodes report the images they have.
    engines = {n.node_id: n.sock for n in swarm.nodes}
    hub = swarm_hub(make_hub, pdb, swarm, f"c.SwarmSessionSpawner.node_docker_urls = {engines!r}")
    alive_nodes(pdb, swarm)
    assert not any(on_node(n, ref) for n in swarm.nodes)
    r = spawn(hub, "alice", "pulls", preset="small", image=ref)
    assert r.status_code in (201, 202), r.text
    seen = progress_until(hub, "alice", "pulls", b'"ready": true', b'"failed": true', timeout=180)
    assert f"pulling {ref}: ".encode() in seen and b"layers" in seen and b"MiB" in seen, seen
    wait_ready(hub, "alice", "pulls", timeout=180)
    session = wait_status(pdb, "alice", "pulls", S.RUNNING)
    statuses = [h.status for h in session.history]
    assert statuses.index(S.PULLING) < statuses.index(S.CREATING) < statuses.index(S.RUNNING), statuses
    chosen = next(n for n in swarm.nodes if n.node_id == session.agent_id)
    assert [on_node(n, ref) for n in swarm.nodes] == [n is chosen for n in swarm.nodes]
    assert image_view(hub, pdb, ref)["installed_agents"] == [chosen.node_id]

    # Put on another node by hand: that node's engine reports it at a heartbeat.
    other = next(n for n in swarm.nodes if n is not chosen)
    other.docker("pull", ref, timeout=120)
    deadline = time.monotonic() + 30
    while set(image_view(hub, pdb, ref)["installed_agents"]) != {chosen.node_id, other.node_id}:
        assert time.monotonic() < deadline, image_view(hub, pdb, ref)
        time.sleep(0.5)
    stop(hub, "alice", "pulls")
    wait_gone(hub, "alice", "pulls")
