"""What a session's pod says of itself (hub/kube_status.py): pure readings of Pod objects as the
API server sends them, with plain dict asserts."""

from __future__ import annotations

from kubernetes_asyncio.client import ApiException

from jupyter_backendai.hub.kube_status import (
    api_reason,
    container_ended,
    container_ran,
    exit_reason,
    pod_ended,
    pod_problem,
)


def pod(phase="Running", reason=None, message=None, **state) -> dict:
    status = {"phase": phase, "containerStatuses": [{"name": "notebook", "state": state}]}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {"status": status}


TERMINATED = {"exitCode": 1, "reason": "Error", "containerID": "docker://abc"}


def test_a_running_pod_has_no_problem_and_has_not_ended():
    running = pod(running={"startedAt": "2026-01-01T00:00:00Z"})
    assert pod_problem(running) is None and pod_ended(running) is None
    assert container_ran(running)


def test_a_pod_its_kubelet_rejects_fails_with_the_reason_and_ran_nothing():
    rejected = {"status": {"phase": "Failed", "reason": "OutOfcpu", "message": "Node didn't have enough resource: cpu"}}
    assert pod_problem(rejected) == "failed: OutOfcpu: Node didn't have enough resource: cpu"
    assert pod_ended(rejected) == "OutOfcpu"
    assert not container_ran(rejected)


def test_containers_that_cannot_start_are_problems_waiting_ones_are_not():
    assert pod_problem(pod("Pending", waiting={"reason": "ContainerCreating"})) is None
    never = pod("Pending", waiting={"reason": "ErrImageNeverPull", "message": "image not present"})
    assert pod_problem(never) == "cannot start its container: ErrImageNeverPull: image not present"
    assert not container_ran(never)


def test_a_container_that_ended_has_a_log_and_its_exit_status():
    ended = pod("Failed", terminated=TERMINATED)
    assert pod_ended(ended) == 1
    assert container_ran(ended)
    assert pod_problem(ended) == "failed: Failed: exit code 1 (Error)"
    # Still Running by phase, the container already ended: it has ended too.
    assert pod_ended(pod("Running", terminated={**TERMINATED, "exitCode": 3})) == 3
    # A container that never got an id (it was never created) has no log.
    assert not container_ran(pod("Failed", terminated={"exitCode": 128, "reason": "ContainerCannotRun"}))


def test_a_pod_past_its_deadline_has_ended_before_its_container_has():
    """A stopped session's pod: its phase turns Failed (DeadlineExceeded) while the kubelet still
    stops its container, so the container is not ended yet (its last lines are still to come)."""
    past = pod("Failed", reason="DeadlineExceeded", running={"startedAt": "2026-01-01T00:00:00Z"})
    assert pod_ended(past) == "DeadlineExceeded"
    assert not container_ended(past)
    stopped = pod("Failed", reason="DeadlineExceeded", terminated={**TERMINATED, "exitCode": 0})
    assert container_ended(stopped) and pod_ended(stopped) == 0
    assert not container_ended({"status": {"phase": "Pending"}}) and not container_ended(None)


def test_exit_reasons_say_the_status_and_why():
    assert exit_reason(pod("Failed", terminated=TERMINATED), "node1") == (
        "the session's container exited with status 1 before its server listened"
    )
    oom = pod("Failed", terminated={**TERMINATED, "exitCode": 137, "reason": "OOMKilled"})
    assert exit_reason(oom, "node1") == (
        "the session's container exited with status 137 before its server listened "
        "(out of memory: its memory limit was reached)"
    )
    deadline = pod("Failed", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline",
                   terminated={**TERMINATED, "exitCode": 143})  # fmt: skip
    assert exit_reason(deadline, "node2") == (
        "the session's container exited with status 143 before its server listened (its pod on node node2 "
        "DeadlineExceeded: Pod was active on the node longer than the specified deadline)"
    )
    said = pod("Failed", terminated={**TERMINATED, "message": "no such file\n"})
    assert exit_reason(said, "node1").endswith("before its server listened: no such file")
    assert exit_reason({"status": {}}, None) == (
        "the session's container exited with status ? before its server listened"
    )


def test_the_api_servers_own_message_else_its_reason():
    e = ApiException(status=409, reason="Conflict")
    e.body = '{"kind": "Status", "message": "pods \\"x\\" already exists"}'
    assert api_reason(e) == 'pods "x" already exists'
    e.body = "not json"
    assert api_reason(e) == "Conflict"
    e.body = None
    assert api_reason(e) == "Conflict"
