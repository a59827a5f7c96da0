"""Admission decisions: every refusal code, raising to the image minimum, caps, queue vs refuse."""

from __future__ import annotations

import pytest

from jupyter_backendai.core.admission import AdmissionRequest, Code, Decision, ResourceGroupState, admit
from jupyter_backendai.core.policy import Cap, KeypairPolicy
from jupyter_backendai.core.slots import UNLIMITED, ResourceSlots

STUDENT = KeypairPolicy(
    name="student",
    total_resource_slots=ResourceSlots(cpu=4, mem="4g"),
    max_concurrent_sessions=3,
    max_containers_per_session=1,
)
OPEN = KeypairPolicy(name="open", max_containers_per_session=0)  # no slot limits, no count limits
IMAGE_MIN = ResourceSlots(cpu=1, mem="256m")
RG = ResourceGroupState("default", free={"cpu": 32, "mem": "64g"}, capacity={"cpu": 32, "mem": "64g"})


def request(**kw: object) -> AdmissionRequest:
    kw.setdefault("policy", STUDENT)
    kw.setdefault("requested", {"cpu": 2, "mem": "1g"})
    kw.setdefault("image_min", IMAGE_MIN)
    kw.setdefault("resource_group", RG)
    return AdmissionRequest(**kw)  # type: ignore[arg-type]


def refused(decision: Decision, code: str, reason: str) -> None:
    assert (decision.admitted, decision.queue, decision.refused) == (False, False, True)
    assert decision.code == code
    assert decision.reason == reason


# -- admitted ----------------------------------------------------------------------------------


def test_admits_a_request_within_every_limit() -> None:
    d = admit(request())
    assert d.admitted and not d.queue and not d.refused
    assert d.code is None and d.reason is None
    assert d.slots == ResourceSlots(cpu=2, mem="1g")
    assert d.total == ResourceSlots(cpu=2, mem="1g")
    assert d.raised == [] and d.note is None


def test_raises_a_request_below_the_image_minimum() -> None:
    d = admit(request(requested={"cpu": "0.5", "mem": "128m"}))
    assert d.admitted
    assert d.slots == ResourceSlots(cpu=1, mem="256m")
    assert d.raised == ["cpu", "mem"]
    assert d.note == "raised to the image's minimum: cpu 1, mem 256 MiB"


def test_raises_only_the_slots_below_the_minimum() -> None:
    d = admit(request(requested={"cpu": 2, "mem": "128m"}))
    assert d.slots == ResourceSlots(cpu=2, mem="256m")
    assert d.raised == ["mem"]
    assert d.note == "raised to the image's minimum: mem 256 MiB"


def test_fills_missing_and_zero_slots_from_the_image_minimum() -> None:
    d = admit(
        request(
            requested={"cpu": 2, "mem": 0},
            image_min={"cpu": 1, "mem": "512m", "cuda.shares": "0.5"},
            resource_group=None,
        )
    )
    assert d.admitted
    assert d.slots == ResourceSlots({"cpu": 2, "mem": "512m", "cuda.shares": "0.5"})
    assert d.raised == ["cuda.shares", "mem"]
    assert d.note == "raised to the image's minimum: cuda.shares 0.5, mem 512 MiB"


def test_unlimited_policy_slots_admit_any_amount() -> None:
    policy = KeypairPolicy(name="big", total_resource_slots={"cpu": "unlimited", "mem": UNLIMITED})
    d = admit(request(policy=policy, requested={"cpu": 30, "mem": "60g"}, keypair_using={"cpu": 100}))
    assert d.admitted


def test_a_slot_missing_from_the_limits_is_unlimited() -> None:
    # STUDENT names cpu and mem only: GPUs are not limited by it, nor by the caps.
    rg = ResourceGroupState("gpu", free={"cpu": 8, "mem": "32g", "cuda.device": 8})
    d = admit(
        request(
            requested={"cpu": 1, "mem": "1g", "cuda.device": 8},
            keypair_using={"cuda.device": 100},
            group=Cap("group", "research", {"cpu": 10}),
            group_using={"cuda.device": 100},
            domain=Cap("domain", "default", {"mem": "100g"}),
            domain_using={"cuda.device": 100},
            resource_group=rg,
        )
    )
    assert d.admitted


def test_an_explicit_zero_limit_forbids_the_slot() -> None:
    policy = KeypairPolicy(name="cpu-only", total_resource_slots={"cpu": 4, "mem": "4g", "cuda.device": 0})
    d = admit(request(policy=policy, requested={"cpu": 1, "mem": "1g", "cuda.device": 1}))
    refused(d, Code.KEYPAIR_LIMIT, "cuda.device 1 exceeds the keypair policy 'cpu-only' limit of 0 (0 in use)")


def test_zero_count_limits_mean_unlimited() -> None:
    d = admit(request(policy=OPEN, containers=16, running_sessions=500, pending_sessions=500))
    assert d.admitted
    assert d.total == ResourceSlots(cpu=32, mem="16g")


def test_no_resource_group_means_no_capacity_check() -> None:
    assert admit(request(resource_group=None)).admitted


def test_multi_container_sessions_multiply_the_request() -> None:
    policy = KeypairPolicy(name="cluster", total_resource_slots={"cpu": 8}, max_containers_per_session=4)
    d = admit(request(policy=policy, requested={"cpu": 2, "mem": "1g"}, containers=4))
    assert d.admitted
    assert d.slots == ResourceSlots(cpu=2, mem="1g")
    assert d.total == ResourceSlots(cpu=8, mem="4g")
    d = admit(request(policy=policy, requested={"cpu": 2, "mem": "1g"}, containers=4, keypair_using={"cpu": 1}))
    refused(d, Code.KEYPAIR_LIMIT, "cpu 8 exceeds the keypair policy 'cluster' limit of 8 (1 in use)")


# -- refusals of the request itself ------------------------------------------------------------


def test_refuses_an_empty_request() -> None:
    refused(admit(request(requested={})), Code.EMPTY_REQUEST, "the request asks for no resources at all")
    d = admit(request(requested={"cpu": 0, "mem": 0}))
    refused(d, Code.EMPTY_REQUEST, "the request asks for no resources at all")
    assert d.raised == [] and d.note is None


def test_refuses_an_unlimited_request() -> None:
    d = admit(request(requested={"cpu": "unlimited", "mem": "1g"}))
    refused(d, Code.UNLIMITED_REQUEST, "a request cannot ask for an unlimited amount: cpu")


@pytest.mark.parametrize("containers", [0, -1])
def test_refuses_fewer_than_one_container(containers: int) -> None:
    d = admit(request(containers=containers))
    refused(d, Code.INVALID_CONTAINERS, f"a session needs at least 1 container, not {containers}")


def test_refuses_a_request_without_mem_when_the_image_sets_no_minimum() -> None:
    d = admit(request(requested={"cpu": 2}, image_min={}))
    refused(d, Code.MISSING_SLOT, "the request needs mem: it is missing and the image sets no minimum")


def test_refuses_a_request_without_cpu_and_mem() -> None:
    d = admit(request(requested={"cuda.device": 1}, image_min={}))
    refused(d, Code.MISSING_SLOT, "the request needs cpu and mem: they are missing and the image sets no minimum")


# -- refusals by counts ------------------------------------------------------------------------


def test_refuses_too_many_containers_per_session() -> None:
    d = admit(request(containers=4))
    refused(d, Code.CONTAINERS_PER_SESSION, "containers per session 4 exceeds the keypair policy 'student' limit of 1")


def test_refuses_past_max_concurrent_sessions() -> None:
    d = admit(request(running_sessions=3))
    refused(d, Code.CONCURRENT_SESSIONS, "max concurrent sessions 3 reached for keypair policy 'student'")


def test_pending_sessions_count_towards_concurrency() -> None:
    d = admit(request(running_sessions=1, pending_sessions=2))
    refused(d, Code.CONCURRENT_SESSIONS, "max concurrent sessions 3 reached for keypair policy 'student'")
    assert admit(request(running_sessions=1, pending_sessions=1)).admitted


# -- refusals by limits ------------------------------------------------------------------------


def test_refuses_cpu_over_the_keypair_policy() -> None:
    d = admit(request(requested={"cpu": 6, "mem": "1g"}, keypair_using={"cpu": 2}))
    refused(d, Code.KEYPAIR_LIMIT, "cpu 6 exceeds the keypair policy 'student' limit of 4 (2 in use)")


def test_refuses_when_what_is_in_use_pushes_over_the_keypair_policy() -> None:
    d = admit(request(requested={"cpu": 3, "mem": "1g"}, keypair_using={"cpu": 2}))
    refused(d, Code.KEYPAIR_LIMIT, "cpu 3 exceeds the keypair policy 'student' limit of 4 (2 in use)")
    assert admit(request(requested={"cpu": 2, "mem": "1g"}, keypair_using={"cpu": 2})).admitted  # exactly at it


def test_refuses_mem_over_the_keypair_policy_in_human_sizes() -> None:
    d = admit(request(requested={"cpu": 1, "mem": "8g"}, keypair_using={"mem": "1g"}))
    refused(d, Code.KEYPAIR_LIMIT, "mem 8 GiB exceeds the keypair policy 'student' limit of 4 GiB (1 GiB in use)")


def test_names_every_slot_over_the_keypair_policy() -> None:
    d = admit(request(requested={"cpu": 6, "mem": "8g"}))
    refused(
        d,
        Code.KEYPAIR_LIMIT,
        "cpu 6 exceeds the keypair policy 'student' limit of 4 (0 in use); "
        "mem 8 GiB exceeds the keypair policy 'student' limit of 4 GiB (0 B in use)",
    )


def test_the_keypair_policy_applies_to_the_raised_request() -> None:
    d = admit(request(requested={"cpu": 1, "mem": "1g"}, image_min={"cpu": 5, "mem": "1g"}))
    refused(d, Code.KEYPAIR_LIMIT, "cpu 5 exceeds the keypair policy 'student' limit of 4 (0 in use)")
    assert d.raised == ["cpu"]
    assert d.slots == ResourceSlots(cpu=5, mem="1g")


def test_refuses_over_the_group_cap() -> None:
    d = admit(request(group=Cap("group", "research", {"cpu": 10, "mem": "40g"}), group_using={"cpu": 9}))
    refused(d, Code.GROUP_LIMIT, "cpu 2 exceeds the group 'research' limit of 10 (9 in use)")


def test_refuses_over_the_domain_cap() -> None:
    d = admit(
        request(
            group=Cap("group", "research", {"cpu": 10}),
            group_using={"cpu": 2},
            domain=Cap("domain", "default", {"mem": "100g"}),
            domain_using={"mem": "99.5g"},
        )
    )
    refused(d, Code.DOMAIN_LIMIT, "mem 1 GiB exceeds the domain 'default' limit of 100 GiB (99.5 GiB in use)")


def test_the_keypair_policy_is_checked_before_the_caps() -> None:
    d = admit(
        request(
            requested={"cpu": 6, "mem": "1g"},
            group=Cap("group", "research", {"cpu": 1}),
            domain=Cap("domain", "default", {"cpu": 1}),
        )
    )
    assert d.code == Code.KEYPAIR_LIMIT
    d = admit(request(group=Cap("group", "research", {"cpu": 1}), domain=Cap("domain", "default", {"cpu": 1})))
    assert d.code == Code.GROUP_LIMIT


# -- the resource group: refuse vs queue -------------------------------------------------------


def test_refuses_more_than_the_resource_group_holds_in_total() -> None:
    rg = ResourceGroupState("default", free={"cpu": 2, "mem": "4g"}, capacity={"cpu": 2, "mem": "4g"})
    d = admit(request(policy=OPEN, requested={"cpu": 4, "mem": "1g"}, resource_group=rg))
    refused(d, Code.RESOURCE_GROUP_CAPACITY, "cpu 4 exceeds the resource group 'default' capacity of 2")


def test_refuses_a_slot_the_resource_group_does_not_have() -> None:
    rg = ResourceGroupState("cpu-nodes", free={"cpu": 8, "mem": "16g"}, capacity={"cpu": 8, "mem": "16g"})
    d = admit(request(policy=OPEN, requested={"cpu": 1, "mem": "1g", "cuda.device": 1}, resource_group=rg))
    refused(d, Code.RESOURCE_GROUP_CAPACITY, "cuda.device 1 exceeds the resource group 'cpu-nodes' capacity of 0")


def test_queues_when_not_enough_is_free_right_now() -> None:
    rg = ResourceGroupState("default", free={"cpu": 2, "mem": "8g"}, capacity={"cpu": 8, "mem": "8g"})
    d = admit(request(requested={"cpu": 4, "mem": "1g"}, resource_group=rg))
    assert (d.admitted, d.queue, d.refused) == (False, True, False)
    assert d.code == Code.RESOURCE_GROUP_BUSY
    assert d.reason == "the resource group 'default' has cpu 2 free, the request needs 4"
    assert d.slots == ResourceSlots(cpu=4, mem="1g")


def test_queues_without_a_known_capacity() -> None:
    rg = ResourceGroupState("default", free={"cpu": 1})
    d = admit(request(requested={"cpu": 2, "mem": "1g"}, resource_group=rg))
    assert d.queue and d.code == Code.RESOURCE_GROUP_BUSY
    assert d.reason == (
        "the resource group 'default' has cpu 1 free, the request needs 2; mem 0 B free, the request needs 1 GiB"
    )


def test_refuses_instead_of_queueing_past_max_pending_sessions() -> None:
    policy = KeypairPolicy(name="student", total_resource_slots={"cpu": 4}, max_pending_session_count=1)
    rg = ResourceGroupState("default", free={"cpu": 2, "mem": "8g"}, capacity={"cpu": 8, "mem": "8g"})
    d = admit(request(policy=policy, requested={"cpu": 4, "mem": "1g"}, resource_group=rg, pending_sessions=1))
    refused(
        d,
        Code.PENDING_SESSIONS,
        "max pending sessions 1 reached for keypair policy 'student' "
        "(the resource group 'default' has cpu 2 free, the request needs 4)",
    )
    assert admit(request(policy=policy, requested={"cpu": 4, "mem": "1g"}, resource_group=rg)).queue
    # the pending limit does not matter when the session can start right away
    assert admit(request(policy=policy, pending_sessions=1)).admitted


def test_zero_max_pending_sessions_means_never_queue() -> None:
    policy = KeypairPolicy(name="interactive", max_pending_session_count=0)
    rg = ResourceGroupState("default", free={"cpu": 1, "mem": "8g"})
    d = admit(request(policy=policy, resource_group=rg))
    assert d.code == Code.PENDING_SESSIONS and d.refused


def test_every_code_is_distinct() -> None:
    codes = [v for k, v in vars(Code).items() if k.isupper()]
    assert len(codes) == len(set(codes)) == 12


# -- inputs ------------------------------------------------------------------------------------


def test_request_rejects_a_cap_of_the_wrong_kind() -> None:
    with pytest.raises(ValueError, match="group must be a 'group' cap"):
        request(group=Cap("domain", "default", {}))
    with pytest.raises(ValueError, match="domain must be a 'domain' cap"):
        request(domain=Cap("group", "research", {}))


def test_request_rejects_negative_session_counts() -> None:
    with pytest.raises(ValueError, match="running_sessions must be a whole number"):
        request(running_sessions=-1)


def test_policy_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        KeypairPolicy(name="x", idle_timeout=-1)
    with pytest.raises(TypeError, match="not a string"):
        KeypairPolicy(name="x", allowed_vfolder_hosts="local")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a name"):
        KeypairPolicy(name="")
    with pytest.raises(ValueError, match="'group' or 'domain'"):
        Cap("project", "x", {})  # type: ignore[arg-type]
    policy = KeypairPolicy(name="x", total_resource_slots={"cpu": 2}, allowed_vfolder_hosts=["local", "nfs"])
    assert policy.allowed_vfolder_hosts == frozenset({"local", "nfs"})
    assert policy.limit("cpu") == 2 and policy.limit("mem") == UNLIMITED
