"""Per-device GPU placement: whole devices, best fit, even splits, the quantum."""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest

from jupyter_backendai.core.gpu import (
    GpuDevice,
    apply_placement,
    device_order,
    place,
    place_shares,
    place_whole,
    round_up,
)


def devs(*used: str | int, taken: tuple[str, ...] = ()) -> list[GpuDevice]:
    """Devices "0", "1", ... with the given shares used (capacity 1 each)."""
    return [GpuDevice(str(i), D(1), D(str(u)), whole_used=str(i) in taken) for i, u in enumerate(used)]


# --- whole devices ---------------------------------------------------------------------------


def test_whole_devices_take_free_ones_lowest_id_first():
    devices = devs(0, "0.25", 0, 0, taken=("2",))
    assert place_whole(devices, 2) == {"0": D(1), "3": D(1)}


def test_whole_devices_refused_when_too_few_are_free():
    devices = devs(0, "0.25", 0, taken=("2",))
    assert place_whole(devices, 2) is None
    assert place_whole(devices, 1) == {"0": D(1)}


def test_whole_device_count_rounds_up_and_zero_is_empty():
    assert place_whole(devs(0, 0, 0), D("1.5")) == {"0": D(1), "1": D(1)}
    assert place_whole(devs(0), 0) == {}


def test_device_ids_sort_naturally():
    devices = [GpuDevice(i) for i in ("10", "2", "1")]
    assert [d.id for d in device_order(devices)] == ["1", "2", "10"]
    assert place_whole(devices, 2) == {"1": D(1), "2": D(1)}


# --- shares <= 1: one device, best fit ----------------------------------------------------------


def test_small_share_goes_to_the_best_fitting_device():
    devices = devs(0, "0.7", "0.4")  # free 1.0, 0.3, 0.6
    assert place_shares(devices, D("0.5")) == {"2": D("0.5")}
    assert place_shares(devices, D("0.3")) == {"1": D("0.3")}
    assert place_shares(devices, D("0.7")) == {"0": D("0.7")}
    assert place_shares(devices, D(1)) == {"0": D(1)}


def test_best_fit_ties_go_to_the_lowest_id():
    assert place_shares(devs("0.5", 0, "0.5"), D("0.5")) == {"0": D("0.5")}


def test_share_of_at_most_one_never_spans_devices():
    assert place_shares(devs("0.5", "0.5"), D("0.8")) is None


def test_whole_taken_device_offers_no_shares_and_shared_device_cannot_be_taken_whole():
    devices = devs(0, "0.1", taken=("0",))
    assert place_shares(devices, D("0.95")) is None
    assert place_shares(devices, D("0.9")) == {"1": D("0.9")}
    assert place_whole(devices, 1) is None


# --- shares > 1: even split ---------------------------------------------------------------------


def test_split_evenly_over_two_devices():
    assert place_shares(devs(0, 0, 0), D("1.5")) == {"0": D("0.75"), "1": D("0.75")}


def test_uneven_remainder_differs_by_one_quantum():
    assert place_shares(devs(0, 0), D("1.01")) == {"0": D("0.51"), "1": D("0.50")}


def test_even_split_prefers_the_best_fitting_devices():
    # free 1, 1, 0.75: the 0.75 device is the tightest fit for a 0.75 part.
    assert place_shares(devs(0, 0, "0.25"), D("1.5")) == {"0": D("0.75"), "2": D("0.75")}


def test_even_split_uses_more_devices_when_the_fewest_cannot_split_evenly():
    # free 1, 0.9, 0.9, 0.9: 2 = 1 + 1 is impossible; 0.67 + 0.67 + 0.66 fits.
    assert place_shares(devs(0, "0.1", "0.1", "0.1"), D(2)) == {"1": D("0.67"), "2": D("0.67"), "3": D("0.66")}


def test_uneven_split_when_no_even_split_exists():
    # free 1, 0.5, 0.3: no even split of 1.7 over 2 or 3 devices; most free first.
    assert place_shares(devs(0, "0.5", "0.7"), D("1.7")) == {"0": D(1), "1": D("0.5"), "2": D("0.2")}


def test_split_refused_when_all_devices_together_are_too_small():
    assert place_shares(devs("0.5", "0.5", "0.5"), D("1.6")) is None


def test_splits_always_sum_exactly_and_fit():
    rng = random.Random(7)
    for _ in range(300):
        devices = devs(*(D(rng.randrange(0, 101)) / 100 for _ in range(rng.randrange(1, 9))))
        request = D(rng.randrange(1, 500)) / 100
        got = place_shares(devices, request)
        free = {d.id: d.free_shares for d in devices}
        if got is None:
            continue
        assert sum(got.values()) == request
        assert all(free[k] >= v > 0 and v % D("0.01") == 0 for k, v in got.items())
        if request <= 1:
            assert len(got) == 1
        else:
            assert len(got) >= 2


# --- quantum ------------------------------------------------------------------------------------


def test_requests_round_up_to_the_quantum():
    assert round_up(D("0.333")) == D("0.34")
    assert round_up(D("0.333"), D("0.1")) == D("0.4")
    assert round_up(D("0.5"), D("0.25")) == D("0.5")
    assert place_shares(devs(0), D("0.333")) == {"0": D("0.34")}
    assert place_shares(devs(0, 0, 0), D("2.001")) == {"0": D("0.67"), "1": D("0.67"), "2": D("0.67")}


def test_quantum_changes_the_split_granularity():
    assert place_shares(devs(0, 0), D("1.1"), quantum=D("0.25")) == {"0": D("0.75"), "1": D("0.5")}


def test_device_free_share_rounds_down_to_the_quantum():
    # 0.335 free is only 0.33 in whole quanta.
    assert place_shares([GpuDevice("0", D(1), D("0.665"))], D("0.335")) is None
    assert place_shares([GpuDevice("0", D(1), D("0.665"))], D("0.33")) == {"0": D("0.33")}


def test_bad_quantum_is_refused():
    with pytest.raises(ValueError, match="quantum must be positive"):
        round_up(D(1), D(0))


# --- combined and applying -------------------------------------------------------------------


def test_place_combines_whole_devices_then_shares_on_the_rest():
    devices = devs(0, "0.5", 0)
    assert place(devices, whole=1, shares=D("0.5")) == {
        "cuda.device": {"0": D(1)},
        "cuda.shares": {"1": D("0.5")},
    }
    assert place(devices, whole=3) is None
    assert place(devices) == {}


def test_apply_placement_returns_new_states_and_leaves_inputs_alone():
    devices = devs(0, "0.5", 0)
    before = list(devices)
    after = apply_placement(devices, {"cuda.device": {"0": D(1)}, "cuda.shares": {"1": D("0.25")}})
    assert devices == before
    assert after == (
        GpuDevice("0", D(1), D(0), whole_used=True),
        GpuDevice("1", D(1), D("0.75")),
        GpuDevice("2", D(1), D(0)),
    )


def test_device_state_accepts_plain_numbers():
    d = GpuDevice("0", 2, "0.5")
    assert d.shares_capacity == D(2) and d.free_shares == D("1.5") and not d.is_free
