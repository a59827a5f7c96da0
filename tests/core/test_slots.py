from decimal import Decimal

import pytest

from jupyter_backendai.core.slots import UNLIMITED, ResourceSlots, SlotError, format_amount, parse_amount

GiB = 1024**3


@pytest.mark.parametrize(
    ("slot", "text", "expected"),
    [
        ("cpu", "2", Decimal(2)),
        ("cpu", "0.5", Decimal("0.5")),
        ("cpu", " 1.25 ", Decimal("1.25")),
        ("cpu", 3, Decimal(3)),
        ("cpu", 0.1, Decimal("0.1")),
        ("mem", "4g", 4 * GiB),
        ("mem", "4G", 4 * GiB),
        ("mem", "4GB", 4 * GiB),
        ("mem", "4Gi", 4 * GiB),
        ("mem", "512m", 512 * 1024**2),
        ("mem", "1.5GiB", 3 * GiB // 2),
        ("mem", "100k", 102400),
        ("mem", "1073741824", GiB),
        ("mem", "10b", 10),
        ("mem", "0.3k", 307),  # rounded down to whole bytes
        ("shmem", "64m", 64 * 1024**2),
        ("cuda.shares", "0.25", Decimal("0.25")),
        ("cuda.device", "2", Decimal(2)),
        ("tpu.device", "1", Decimal(1)),
        ("cpu", "unlimited", UNLIMITED),
        ("mem", "Unlimited", UNLIMITED),
        ("cpu", "Infinity", UNLIMITED),  # Backend.AI's JSON form
    ],
)
def test_parse(slot, text, expected):
    assert parse_amount(slot, text) == expected


@pytest.mark.parametrize(
    ("slot", "value", "message"),
    [
        ("cpu", "-1", "cpu: '-1' is negative"),
        ("cpu", -1, "cpu: -1 is negative"),
        ("mem", "-4g", "mem: '-4g' is not a size"),
        ("cpu", "nan", "cpu: 'nan' is not a number"),
        ("cpu", float("nan"), "cpu: nan is not a finite amount"),
        ("cpu", "inf", "cpu: 'inf' is not a number"),
        ("cpu", float("inf"), "cpu: inf is not a finite amount"),
        ("cpu", Decimal("NaN"), "cpu: Decimal('NaN') is not a valid amount"),
        ("cpu", Decimal("-Infinity"), "cpu: Decimal('-Infinity') is not a valid amount"),
        ("cpu", "", "cpu: an empty value is not an amount"),
        ("cpu", "   ", "cpu: an empty value is not an amount"),
        ("cpu", "abc", "cpu: 'abc' is not a number"),
        ("cpu", "4g", "cpu: '4g' is not a number"),
        ("cpu", "1e3", "cpu: '1e3' is not a number"),
        ("mem", "4x", "mem: '4x' is not a size"),
        ("mem", "4i", "mem: '4i' is not a size"),
        ("mem", "g", "mem: 'g' is not a size"),
        ("cpu", None, "cpu: None is not an amount"),
        ("cpu", True, "cpu: True is not an amount"),
        ("cpu", [1], "cpu: [1] is not an amount"),
    ],
)
def test_parse_refuses_with_slot_and_value(slot, value, message):
    with pytest.raises(SlotError) as e:
        parse_amount(slot, value)
    assert str(e.value).startswith(message)


@pytest.mark.parametrize("name", ["", "CPU", "cuda..shares", "1cpu", "cpu shares", 5])
def test_bad_slot_names(name):
    with pytest.raises(SlotError, match="invalid slot name"):
        ResourceSlots({name: 1})


def test_parse_refuses_non_mapping():
    with pytest.raises(SlotError, match="mapping"):
        ResourceSlots.parse(["cpu", 1])


@pytest.mark.parametrize(
    ("slot", "amount", "text"),
    [
        ("mem", 4 * GiB, "4 GiB"),
        ("mem", 3 * GiB // 2, "1.5 GiB"),
        ("mem", 512 * 1024**2, "512 MiB"),
        ("mem", 100, "100 B"),
        ("mem", 0, "0 B"),
        ("mem", 4 * GiB + 1, "4 GiB (4294967297 B)"),
        ("mem", GiB - 1, "1023.99 MiB (1073741823 B)"),
        ("cpu", Decimal("0.50"), "0.5"),
        ("cpu", Decimal(4), "4"),
        ("cpu", UNLIMITED, "unlimited"),
        ("mem", UNLIMITED, "unlimited"),
    ],
)
def test_format(slot, amount, text):
    assert format_amount(slot, Decimal(amount)) == text


def test_arithmetic_is_exact():
    a = ResourceSlots(cpu="0.1", mem="1g")
    b = ResourceSlots({"cpu": "0.2", "cuda.shares": "0.5"})
    total = a + b
    assert total == {"cpu": Decimal("0.3"), "mem": GiB, "cuda.shares": Decimal("0.5")}
    assert total - b == a
    assert (total - b).get("cuda.shares") == 0
    assert a.scale(3) == ResourceSlots(cpu="0.3", mem="3g")


def test_subtracting_more_than_there_is_fails():
    with pytest.raises(SlotError, match="cpu: cannot take 3 from 2"):
        ResourceSlots(cpu=2) - ResourceSlots(cpu=3)
    assert ResourceSlots(cpu=2).minus_clamped(ResourceSlots(cpu=3)) == ResourceSlots(cpu=0)


def test_unlimited_arithmetic():
    limits = ResourceSlots(cpu="unlimited", mem="8g")
    left = limits - ResourceSlots(cpu=100, mem="2g")
    assert left["cpu"] == UNLIMITED and left["mem"] == 6 * GiB
    with pytest.raises(SlotError):
        ResourceSlots(cpu=1) - ResourceSlots(cpu="unlimited")
    assert ResourceSlots(cpu=1).min(limits) == {"cpu": 1, "mem": 8 * GiB}


def test_fits_in_and_within():
    request = ResourceSlots(cpu=2, mem="4g")
    assert request.fits_in(ResourceSlots(cpu=2, mem="4g"))
    assert not request.fits_in(ResourceSlots(cpu=2))  # missing capacity is zero
    assert request.within(ResourceSlots(cpu=2))  # missing limit is no limit
    assert not request.within(ResourceSlots(cpu=1))
    assert request.exceeding(ResourceSlots(cpu=1, mem="1g")) == ["cpu", "mem"]
    assert ResourceSlots(cpu=0, mem="1g").fits_in(ResourceSlots(mem="1g"))  # zero needs nothing
    assert request.fits_in(ResourceSlots(cpu="unlimited", mem="unlimited"))


def test_max_raises_to_minimum():
    assert ResourceSlots(cpu="0.5", mem="8g").max(ResourceSlots(cpu=1, mem="1g")) == {"cpu": 1, "mem": 8 * GiB}


def test_json_round_trip_and_equality():
    slots = ResourceSlots(cpu="1.5", mem="1g", **{"cuda.shares": "unlimited"})
    wire = slots.to_json()
    assert wire == {"cpu": "1.5", "cuda.shares": "Infinity", "mem": "1073741824"}
    assert ResourceSlots.parse(wire) == slots
    assert ResourceSlots(cpu=1) == ResourceSlots(cpu=1, mem=0)
    assert hash(ResourceSlots(cpu=1)) == hash(ResourceSlots(cpu=1, mem=0))
    assert ResourceSlots(cpu=1) != ResourceSlots(cpu=2)
    assert str(ResourceSlots(cpu=2, mem="4g")) == "cpu 2, mem 4 GiB"
    assert str(ResourceSlots()) == "nothing"
    assert not ResourceSlots(cpu=0)
