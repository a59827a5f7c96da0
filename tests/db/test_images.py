"""Images on agents without an engine: references, pull progress, placement by image, the rows.

The engines' side (a real registry, pulls onto the hub's engine and onto swarm nodes) is in
tests/hub/test_images_docker.py and tests/hub/test_images_swarm.py.
"""

from __future__ import annotations

import pytest

from jupyter_backendai.core.images import (
    PullError,
    PullProgress,
    engine_references,
    image_missing,
    node_references,
    normalize_reference,
    pulls_when_missing,
    split_reference,
)
from jupyter_backendai.core.scheduling import AgentState, PendingSession, schedule
from jupyter_backendai.core.slots import ResourceSlots
from jupyter_backendai.db import admin
from jupyter_backendai.db import images as image_db
from jupyter_backendai.db import models as m
from jupyter_backendai.db import sessions as store
from jupyter_backendai.hub.images import pull_service_spec
from jupyter_backendai.hub.spec import SpecError

# --- references -----------------------------------------------------------------------------------


def test_references_are_compared_in_one_spelling():
    assert normalize_reference("docker.io/library/python:3.12") == "python:3.12"
    assert normalize_reference("index.docker.io/library/python") == "python:latest"
    assert normalize_reference("docker.io/jupyter/base:1") == "jupyter/base:1"
    assert normalize_reference("127.0.0.1:5000/lab/tiny") == "127.0.0.1:5000/lab/tiny:latest"
    assert normalize_reference("127.0.0.1:5000/lab/tiny:1") == "127.0.0.1:5000/lab/tiny:1"
    assert normalize_reference("x@sha256:abc") == "x@sha256:abc"
    assert split_reference("host:5000/a/b") == ("host:5000/a/b", "latest")
    assert split_reference("host:5000/a/b:2") == ("host:5000/a/b", "2")
    assert engine_references(["python:3.12", "<none>:<none>", None, "localhost:5000/x"]) == {
        "python:3.12",
        "localhost:5000/x:latest",
    }
    # A kubelet's list (dockershim: the engine's tags and digests; containerd: full names).
    node = [
        {"names": ["jupyter-backendai-session:local"]},
        {"names": ["127.0.0.1:5000/lab/x@sha256:ab12", "127.0.0.1:5000/lab/x:1"]},
        {"names": ["docker.io/library/python@sha256:cd34", "docker.io/library/python:3.12"]},
        {"names": ["<none>@<none>", "<none>:<none>"]},
        {},
    ]
    assert node_references(node) == {"jupyter-backendai-session:local", "127.0.0.1:5000/lab/x:1", "python:3.12"}
    assert node_references(None) == frozenset()
    assert pulls_when_missing("ifnotpresent") and pulls_when_missing("always")
    assert not pulls_when_missing("never") and not pulls_when_missing("skip")


def test_missing_image_errors_are_told_from_other_failures():
    assert image_missing("No such image: 10.231.200.1:5000/lab/x:1")
    assert image_missing("Error response from daemon: manifest for x:1 not found: manifest unknown")
    assert image_missing("pull access denied for x, repository does not exist or may require 'docker login'")
    assert not image_missing('starting container failed: exec: "true": executable file not found in $PATH')
    assert not image_missing("task: non-zero exit (1)")
    assert not image_missing("")


# --- pull progress ----------------------------------------------------------------------------------

# Events as Docker 20.10 streams them for a two-layer image, one layer already on the engine.
PULL_EVENTS = [
    {"status": "Pulling from lab/tiny", "id": "1"},
    {"status": "Already exists", "progressDetail": {}, "id": "aaa"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"},
    {"status": "Downloading", "progressDetail": {"current": 1024, "total": 4096}, "id": "bbb"},
    {"status": "Downloading", "progressDetail": {"current": 4096, "total": 4096}, "id": "bbb"},
    {"status": "Verifying Checksum", "progressDetail": {}, "id": "bbb"},
    {"status": "Download complete", "progressDetail": {}, "id": "bbb"},
    {"status": "Extracting", "progressDetail": {"current": 4096, "total": 4096}, "id": "bbb"},
    {"status": "Pull complete", "progressDetail": {}, "id": "bbb"},
    {"status": "Digest: sha256:0123"},
    {"status": "Status: Downloaded newer image for 127.0.0.1:5000/lab/tiny:1"},
]


def test_pull_progress_sums_the_layers():
    p = PullProgress("127.0.0.1:5000/lab/tiny:1")
    assert p.percent == 0 and p.text().endswith("contacting the registry")
    seen = []
    for event in PULL_EVENTS[:5]:
        p.feed(event)
        seen.append((p.current, p.total, p.percent))
    assert seen[3] == (1024, 4096, 27)  # 90 % x a quarter downloaded + 10 % x one layer of two in
    assert seen[4][:2] == (4096, 4096) and seen[4][2] < 100
    assert p.text() == "pulling 127.0.0.1:5000/lab/tiny:1: 1 of 2 layers, 4.0 KiB of 4.0 KiB"
    for event in PULL_EVENTS[5:9]:
        p.feed(event)
    assert p.percent == 99 and not p.finished  # every layer in, the engine has not said it is done
    for event in PULL_EVENTS[9:]:
        p.feed(event)
    assert p.finished and p.percent == 100 and p.text() == "pulled 127.0.0.1:5000/lab/tiny:1"
    assert not p.feed("not an event")


def test_a_pull_error_event_raises_with_the_registry_reason():
    p = PullProgress("x:1")
    with pytest.raises(PullError, match="manifest unknown"):
        p.feed({"errorDetail": {"message": "manifest for x:1 not found: manifest unknown"}, "error": ""})


# --- placement by image --------------------------------------------------------------------------------


def _agents(images: dict[str, frozenset[str] | None]) -> list[AgentState]:
    return [
        AgentState(id=name, capacity=ResourceSlots(cpu=4, mem="4g"), resource_group="default", images=have)
        for name, have in images.items()
    ]


def test_sessions_go_only_to_agents_with_their_image_when_images_are_not_pulled():
    agents = _agents({"a1": frozenset({"x:1"}), "a2": frozenset({"y:1"}), "a3": frozenset()})
    pending = [
        PendingSession("s1", "ak", ResourceSlots(cpu=1, mem="1g"), created=1, resource_group="default", image="y:1"),
        PendingSession("s2", "ak", ResourceSlots(cpu=1, mem="1g"), created=2, resource_group="default", image="x:1"),
        PendingSession("s3", "ak", ResourceSlots(cpu=1, mem="1g"), created=3, resource_group="default", image="z:1"),
        PendingSession("s4", "ak", ResourceSlots(cpu=1, mem="1g"), created=4, resource_group="default"),
    ]
    result = schedule(pending, agents, scheduler="lifo")
    placed = {p.session_id: p.agent_id for p in result.placements}
    assert placed["s1"] == "a2" and placed["s2"] == "a1"
    assert "s4" in placed  # no image named: any agent
    (left,) = result.pending
    assert left.session_id == "s3"
    assert left.reason == (
        "no schedulable agent in resource group 'default' has the image 'z:1' (images are not pulled onto agents)"
    )


def test_an_agent_that_does_not_report_images_takes_any_and_a_full_one_is_named():
    agents = _agents({"a1": None})
    one = PendingSession("s1", "ak", ResourceSlots(cpu=1), created=1, resource_group="default", image="z:1")
    assert [p.agent_id for p in schedule([one], agents).placements] == ["a1"]
    # The agent with the image is full: the reason says so (about the agents that have it).
    agents = [
        AgentState(
            "a1", ResourceSlots(cpu=1), ResourceSlots(cpu=1), resource_group="default", images=frozenset({"x:1"})
        ),
        AgentState("a2", ResourceSlots(cpu=4), resource_group="default", images=frozenset()),
    ]
    s = PendingSession("s1", "ak", ResourceSlots(cpu=1), created=1, resource_group="default", image="x:1")
    (left,) = schedule([s], agents).pending
    assert left.reason.startswith("no agent in resource group 'default' that has the image 'x:1' has room"), left


# --- the pull task on a swarm node ------------------------------------------------------------------------


def test_the_pull_task_is_pinned_unprivileged_and_never_restarted():
    kw = pull_service_spec("10.231.200.1:5000/lab/tiny:1", "nodeabc")
    task = kw["task_template"]
    assert task["Placement"]["Constraints"] == ["node.id==nodeabc"]
    assert task["RestartPolicy"]["Condition"] == "none"
    spec = task["ContainerSpec"]
    assert spec["Image"] == "10.231.200.1:5000/lab/tiny:1" and spec["User"] == "1000"
    assert spec["CapabilityDrop"] == ["ALL"] and spec["Command"] == ["true"]
    assert kw["name"].startswith("backendai-pull-") and kw["labels"] == {"ai.backend.image-pull": spec["Image"]}
    with pytest.raises(SpecError):
        pull_service_spec("x:1", "node==evil")


# --- the rows -----------------------------------------------------------------------------------------------


def _agent(db, agent_id: str, version: str = "docker", group: str = "default") -> m.Agent:
    return store.register_agent(
        db, agent_id, scaling_group=group, capacity=ResourceSlots(cpu=2, mem="2g"), version=version
    )


def test_agents_report_images_installs_are_queued_and_settled(db):
    admin.add_registry(db, "127.0.0.1:5000", "http://127.0.0.1:5000")
    tiny, _ = admin.upsert_image(db, "127.0.0.1:5000/lab/tiny:1", labels={"ai.backend.x": "1"})
    local, _ = admin.upsert_image(db, "session:local", labels={})
    _agent(db, "d1")
    _agent(db, "d2")
    _agent(db, "l1", version="local")
    assert not tiny.installed

    # A heartbeat reports what the engine has: known images only, and they become installed.
    image_db.report_agent_images(db, "d1", ["session:local", "busybox:latest", "127.0.0.1:5000/lab/tiny:1"])
    assert image_db.installed_on(db, ["d1", "d2"]) == {
        "d1": frozenset({"session:local", "127.0.0.1:5000/lab/tiny:1"}),
        "d2": frozenset(),
    }
    assert tiny.installed and local.installed is True
    # Gone from the engine: gone from the rows (the image stays offered: a spawn pulls it).
    image_db.report_agent_images(db, "d1", ["session:local"])
    assert image_db.installed_on(db, ["d1"])["d1"] == {"session:local"} and tiny.installed
    # A list that may leave images out (a kubelet's, capped at its largest) drops nothing.
    image_db.report_agent_images(db, "d2", ["session:local"])
    image_db.report_agent_images(db, "d2", [], complete=False)
    assert image_db.installed_on(db, ["d2"])["d2"] == {"session:local"}
    image_db.report_agent_images(db, "d2", [])
    assert image_db.installed_on(db, ["d2"])["d2"] == frozenset()

    # An install goes to the alive agents that run images; the local backend's are left out.
    targets = image_db.install_targets(db)
    assert [a.id for a in targets] == ["d1", "d2"]
    queued, already = image_db.queue_install(db, tiny, targets)
    assert (queued, already) == (["d1", "d2"], [])
    assert image_db.queue_install(db, tiny, targets) == ([], ["d1", "d2"])
    assert image_db.queued_installs(db, "docker") == [("d1", tiny.reference), ("d2", tiny.reference)]
    image_db.set_install(db, "d1", tiny.reference, "pulling", current=10, total=40, message="pulling")
    image_db.set_install(db, "d2", tiny.reference, "failed", message="manifest unknown")
    view = image_db.agents_view(image_db.installs_by_reference(db, [tiny.reference])[tiny.reference])
    assert view["installed_agents"] == []
    assert [(i["agent"], i["status"], i["progress"]) for i in view["installs"]] == [
        ("d1", "pulling", {"current": 10, "total": 40}),
        ("d2", "failed", None),
    ]
    # A failed install is queued again; a hub that restarts marks the pull it lost as failed.
    assert image_db.queue_install(db, tiny, targets) == (["d2"], ["d1"])
    image_db.interrupted_pulls(db, "docker")
    assert db.get(m.AgentImage, ("d1", tiny.reference)).status == "failed"
    # The engine has it after all (pulled by hand): the heartbeat settles the queued one.
    image_db.report_agent_images(db, "d2", [tiny.reference])
    assert db.get(m.AgentImage, ("d2", tiny.reference)).status == "installed"

    # Where an install cannot go, and images that cannot be pulled.
    with pytest.raises(admin.NotFound, match="no agent 'nope'"):
        image_db.install_targets(db, agent_ids=["nope"])
    with pytest.raises(admin.AdminError, match="local processes"):
        image_db.install_targets(db, agent_ids=["l1"])
    with pytest.raises(admin.NotFound, match="no resource group"):
        image_db.install_targets(db, scaling_group="nope")
    admin.create_scaling_group(db, "empty")
    with pytest.raises(admin.Conflict, match="no alive agent in resource group 'empty'"):
        image_db.install_targets(db, scaling_group="empty")
    with pytest.raises(admin.AdminError, match="names no registry"):
        image_db.pull_source(db, "session:local")
    with pytest.raises(admin.AdminError, match="not among the registries"):
        image_db.pull_source(db, "other.example.org/x:1")
    assert image_db.pull_source(db, tiny.reference).auth_config is None
