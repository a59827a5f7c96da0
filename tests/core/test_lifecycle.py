"""The rule of when a running session ends (core.lifecycle): lifetime and idle timeout."""

from __future__ import annotations

import datetime as dt

from jupyter_backendai.core import lifecycle

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def check(now, *, started=T0, activity=None, idle=0, lifetime=0):
    return lifecycle.check(
        now=now, started_at=started, last_activity=activity, idle_timeout=idle, max_session_lifetime=lifetime
    )


def test_lifetime_ends_the_session_at_its_end_not_before():
    assert lifecycle.ends_at(T0, 60) == at(60)
    assert check(at(59.9), lifetime=60) is None
    assert check(at(60), lifetime=60) == lifecycle.Ending("lifetime", 60)
    assert check(at(75), lifetime=60) == lifecycle.Ending(lifecycle.LIFETIME, 75)


def test_zero_is_no_limit_and_a_session_not_started_has_no_end():
    assert lifecycle.ends_at(T0, 0) is None
    assert lifecycle.ends_at(None, 60) is None
    assert check(at(10**7), lifetime=0, idle=0) is None


def test_activity_does_not_extend_the_lifetime_but_does_the_idle_timeout():
    busy = at(100)
    assert check(at(120), activity=busy, idle=30, lifetime=300) is None
    assert check(at(131), activity=busy, idle=30, lifetime=300) == lifecycle.Ending("idle-timeout", 31)
    assert check(at(300), activity=at(299), idle=30, lifetime=300).reason == "lifetime"


def test_past_both_the_lifetime_wins():
    assert check(at(500), idle=10, lifetime=100).reason == lifecycle.LIFETIME


def test_naive_times_from_sqlite_are_utc():
    naive = T0.replace(tzinfo=None)
    assert lifecycle.ends_at(naive, 5) == at(5)
    assert check(at(6), started=naive, lifetime=5).reason == "lifetime"


def test_the_loop_looks_again_at_the_end_when_it_comes_before_its_interval():
    assert lifecycle.next_check_in(T0, None, 30) == 30
    assert lifecycle.next_check_in(T0, at(4), 30) == 4
    assert lifecycle.next_check_in(T0, at(100), 30) == 30
    assert lifecycle.next_check_in(at(10), at(4), 30) == 0
