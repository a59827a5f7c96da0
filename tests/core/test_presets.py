"""check-presets answers: the figures, JSON form, and which presets are allocatable."""

from __future__ import annotations

import json

import pytest

from jupyter_backendai.core.policy import Cap, KeypairPolicy
from jupyter_backendai.core.presets import Preset, ScalingGroupUsage, check_presets

GIB = 1024**3
SMALL = Preset("small", {"cpu": 1, "mem": "1g"})
MEDIUM = Preset("medium", {"cpu": 2, "mem": "4g"}, shared_memory="1g")  # type: ignore[arg-type]
LARGE = Preset("large", {"cpu": 8, "mem": "16g"})
GPU = Preset("gpu", {"cpu": 2, "mem": "8g", "cuda.shares": "0.5"})
POLICY = KeypairPolicy(name="student", total_resource_slots={"cpu": 4, "mem": "8g"})


def allocatable(answer: dict) -> dict[str, bool]:
    return {p["name"]: p["allocatable"] for p in answer["presets"]}


def test_full_answer() -> None:
    answer = check_presets(
        [SMALL, MEDIUM, LARGE],
        policy=POLICY,
        keypair_using={"cpu": 1, "mem": "2g"},
        group=Cap("group", "research", {"cpu": 10}),
        group_using={"cpu": 7, "mem": "20g"},
        scaling_groups={
            "default": ScalingGroupUsage(using={"cpu": 1, "mem": "2g"}, remaining={"cpu": 16, "mem": "64g"})
        },
    )
    assert answer == {
        "keypair_limits": {"cpu": "4", "mem": str(8 * GIB)},
        "keypair_using": {"cpu": "1", "mem": str(2 * GIB)},
        "keypair_remaining": {"cpu": "3", "mem": str(6 * GIB)},
        "group_limits": {"cpu": "10", "mem": "Infinity"},
        "group_using": {"cpu": "7", "mem": str(20 * GIB)},
        "group_remaining": {"cpu": "3", "mem": "Infinity"},
        "scaling_group_remaining": {"cpu": "16", "mem": str(64 * GIB)},
        "scaling_groups": {
            "default": {
                "using": {"cpu": "1", "mem": str(2 * GIB)},
                "remaining": {"cpu": "16", "mem": str(64 * GIB)},
            }
        },
        "presets": [
            {
                "name": "small",
                "resource_slots": {"cpu": "1", "mem": str(GIB)},
                "shared_memory": None,
                "allocatable": True,
            },
            {
                "name": "medium",
                "resource_slots": {"cpu": "2", "mem": str(4 * GIB)},
                "shared_memory": str(GIB),
                "allocatable": True,
            },
            {
                "name": "large",
                "resource_slots": {"cpu": "8", "mem": str(16 * GIB)},
                "shared_memory": None,
                "allocatable": False,
            },
        ],
    }
    assert json.loads(json.dumps(answer)) == answer


def test_not_allocatable_over_the_keypair_remaining() -> None:
    answer = check_presets(
        [SMALL, MEDIUM],
        policy=POLICY,
        keypair_using={"cpu": 3},
        scaling_groups={"default": ScalingGroupUsage(remaining={"cpu": 16, "mem": "64g"})},
    )
    assert allocatable(answer) == {"small": True, "medium": False}


def test_not_allocatable_over_the_group_remaining() -> None:
    answer = check_presets(
        [SMALL, MEDIUM],
        policy=POLICY,
        group=Cap("group", "research", {"mem": "10g"}),
        group_using={"mem": "8g"},
        scaling_groups={"default": ScalingGroupUsage(remaining={"cpu": 16, "mem": "64g"})},
    )
    assert allocatable(answer) == {"small": True, "medium": False}


def test_not_allocatable_over_the_domain_remaining() -> None:
    answer = check_presets(
        [SMALL, MEDIUM],
        policy=POLICY,
        domain=Cap("domain", "default", {"cpu": 100}),
        domain_using={"cpu": 99},
        scaling_groups={"default": ScalingGroupUsage(remaining={"cpu": 16, "mem": "64g"})},
    )
    assert allocatable(answer) == {"small": True, "medium": False}
    assert "domain_remaining" not in answer  # Backend.AI's answer has no domain figures


def test_not_allocatable_over_the_resource_group_remaining() -> None:
    answer = check_presets(
        [SMALL, MEDIUM, GPU],
        policy=KeypairPolicy(name="open"),
        scaling_groups={"default": ScalingGroupUsage(remaining={"cpu": 2, "mem": "2g"})},
    )
    assert allocatable(answer) == {"small": True, "medium": False, "gpu": False}
    # a slot the group does not have is reported as 0 remaining, a limit nobody set as Infinity
    assert answer["scaling_group_remaining"] == {"cpu": "2", "cuda.shares": "0", "mem": str(2 * GIB)}
    assert answer["keypair_limits"] == {"cpu": "Infinity", "cuda.shares": "Infinity", "mem": "Infinity"}


def test_a_preset_must_fit_in_one_resource_group() -> None:
    groups = {
        "a": ScalingGroupUsage(remaining={"cpu": 1, "mem": "8g"}),
        "b": ScalingGroupUsage(remaining={"cpu": 8, "mem": "1g"}),
    }
    answer = check_presets([SMALL, MEDIUM], policy=KeypairPolicy(name="open"), scaling_groups=groups)
    # medium (2 cpu, 4g) would fit in a+b summed, but in neither alone
    assert allocatable(answer) == {"small": True, "medium": False}
    assert answer["scaling_group_remaining"] == {"cpu": "9", "mem": str(9 * GIB)}
    groups["c"] = ScalingGroupUsage(remaining={"cpu": 2, "mem": "4g"})
    assert allocatable(check_presets([MEDIUM], policy=KeypairPolicy(name="open"), scaling_groups=groups)) == {
        "medium": True
    }


def test_scaling_group_narrows_the_answer() -> None:
    groups = {
        "small-nodes": ScalingGroupUsage(remaining={"cpu": 1, "mem": "2g"}),
        "big-nodes": ScalingGroupUsage(remaining={"cpu": 64, "mem": "256g"}),
    }
    answer = check_presets([MEDIUM], policy=POLICY, scaling_groups=groups, scaling_group="small-nodes")
    assert list(answer["scaling_groups"]) == ["small-nodes"]
    assert allocatable(answer) == {"medium": False}
    answer = check_presets([MEDIUM], policy=POLICY, scaling_groups=groups, scaling_group="big-nodes")
    assert allocatable(answer) == {"medium": True}
    with pytest.raises(ValueError, match="unknown resource group 'gpu-nodes'"):
        check_presets([MEDIUM], policy=POLICY, scaling_groups=groups, scaling_group="gpu-nodes")


def test_nothing_is_allocatable_without_a_resource_group() -> None:
    answer = check_presets([SMALL], policy=POLICY)
    assert allocatable(answer) == {"small": False}
    assert answer["scaling_groups"] == {}
    assert answer["scaling_group_remaining"] == {"cpu": "0", "mem": "0"}


def test_usage_over_a_lowered_limit_leaves_zero_remaining() -> None:
    answer = check_presets(
        [SMALL],
        policy=POLICY,
        keypair_using={"cpu": 6},
        scaling_groups={"default": ScalingGroupUsage(remaining={"cpu": 16, "mem": "64g"})},
    )
    assert answer["keypair_remaining"]["cpu"] == "0"
    assert allocatable(answer) == {"small": False}


def test_known_slots_are_reported_even_when_unused() -> None:
    answer = check_presets([SMALL], policy=POLICY, known_slots=["cuda.device"])
    assert answer["keypair_limits"] == {"cpu": "4", "cuda.device": "Infinity", "mem": str(8 * GIB)}
    assert answer["keypair_using"] == {"cpu": "0", "cuda.device": "0", "mem": "0"}


def test_preset_validation() -> None:
    assert Preset("p", {"cpu": 1}, shared_memory="64m").shared_memory == 64 * 1024**2  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot allocate an unlimited amount: cpu"):
        Preset("p", {"cpu": "unlimited"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shared memory cannot be unlimited"):
        Preset("p", {"cpu": 1}, shared_memory="unlimited")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a name"):
        Preset("", {"cpu": 1})  # type: ignore[arg-type]
