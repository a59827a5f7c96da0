"""When a running session must end: the policy's idle timeout and its maximum lifetime.

One rule for the hub's lifecycle loop (which enforces it), the manager (which answers a
session's end time) and the lab (which warns before it): all of them ask this module, so
that the time the lab announces is the time the hub ends the session.

* ``max_session_lifetime`` counts from when the session started running (``started_at``):
  time spent waiting in the queue is not taken from it. 0 is "no limit".
* ``idle_timeout`` counts from the last activity (or the start when there was none). 0 is
  "never".

A session past both ends for its lifetime: that end was announced in advance, an idle one
was not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["IDLE_TIMEOUT", "LIFETIME", "WARNING_ENV", "Ending", "check", "ends_at", "next_check_in"]

#: The reasons a session ends with (its status history and the Finished list show them).
IDLE_TIMEOUT = "idle-timeout"
LIFETIME = "lifetime"
#: The session's variable that says how many seconds before its end the lab warns (the hub
#: sets it, the server extension reads it).
WARNING_ENV = "BACKENDAI_LIFETIME_WARNING"


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; every time the product stores is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def ends_at(started_at: dt.datetime | None, max_session_lifetime: int) -> dt.datetime | None:
    """When a session that started at ``started_at`` reaches its lifetime; None: no end."""
    if not max_session_lifetime or started_at is None:
        return None
    return _aware(started_at) + dt.timedelta(seconds=max_session_lifetime)


@dataclass(frozen=True)
class Ending:
    """Why a session ends now (:data:`LIFETIME` or :data:`IDLE_TIMEOUT`) and for how long it ran
    or idled, in whole seconds (for the log)."""

    reason: str
    seconds: int


def check(
    *,
    now: dt.datetime,
    started_at: dt.datetime | None,
    last_activity: dt.datetime | None,
    idle_timeout: int,
    max_session_lifetime: int,
) -> Ending | None:
    """The reason the session must end at ``now``, or None while it may go on."""
    now = _aware(now)
    end = ends_at(started_at, max_session_lifetime)
    if end is not None and now >= end:
        return Ending(LIFETIME, int((now - _aware(started_at)).total_seconds()))  # type: ignore[arg-type]
    since = last_activity or started_at
    if idle_timeout and since is not None:
        idle = (now - _aware(since)).total_seconds()
        if idle > idle_timeout:
            return Ending(IDLE_TIMEOUT, int(idle))
    return None


def next_check_in(now: dt.datetime, end: dt.datetime | None, interval: float) -> float:
    """Seconds until the loop should look again: its interval, or sooner when the end comes first."""
    if end is None:
        return interval
    return max(0.0, min(interval, (end - _aware(now)).total_seconds()))
