"""Brute-force protection for logins: slow down, then lock out, per account and per address.

Failed attempts are counted per key (an account name, a client address) inside a sliding
window. The first ``free_failures`` cost nothing; after that every further attempt waits
``base_delay * 2**k`` seconds (capped at ``max_delay``) before it is answered; once a key
reaches ``max_failures`` it is locked for ``lockout`` seconds and attempts are refused
without checking the password at all, so a locked account cannot be probed. A success
clears the account's count (not the address's: one right password must not hide a spray of
wrong ones from the same address).

Which address a request comes from is :func:`client_address`: only what the trusted proxies
appended to ``X-Forwarded-For`` counts, never a header the client can write itself.

Pure logic with the clock passed in, so that tests need no sleeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["LoginThrottle", "Verdict", "client_address", "request_address"]

#: Longest address kept as a throttle key (an entry of X-Forwarded-For is free text).
MAX_ADDRESS = 64


def client_address(peer: str, forwarded_for: Iterable[str], trusted_proxies: int) -> str:
    """The address the outermost trusted proxy received the request from.

    ``peer`` is the socket's address, ``forwarded_for`` the values of every ``X-Forwarded-For``
    header. Each of the ``trusted_proxies`` proxies in front of the server (1:
    configurable-http-proxy) appends the address it was connected from; anything to the left of
    those entries was written by the client and proves nothing. So the client is the
    ``trusted_proxies``-th entry from the right. With no proxy trusted, or no header (a
    direct connection), it is the peer. ``X-Real-Ip`` and its kind are never read: no trusted
    proxy sets them, and a client can.
    """
    if trusted_proxies <= 0:
        return peer[:MAX_ADDRESS]
    entries = [e.strip() for value in forwarded_for for e in value.split(",") if e.strip()]
    if not entries:
        return peer[:MAX_ADDRESS]
    # Fewer entries than proxies: a shorter chain than configured, whose first hop saw the client.
    address = entries[-trusted_proxies] if len(entries) >= trusted_proxies else entries[0]
    return address[:MAX_ADDRESS]


def request_address(request, trusted_proxies: int) -> str:
    """:func:`client_address` of a tornado request: its connection's peer and ``X-Forwarded-For``.

    Not ``request.remote_ip``: servers with tornado's ``xheaders`` (the hub's, the manager's)
    let ``X-Real-Ip``, any client's to write, replace it. The connection's own address stays.
    """
    context = getattr(request.connection, "context", None)
    address = getattr(context, "address", None)
    peer = address[0] if isinstance(address, tuple) and address else "local"
    return client_address(str(peer), request.headers.get_list("X-Forwarded-For"), trusted_proxies)


@dataclass(frozen=True)
class Verdict:
    """What to do with an attempt before checking it."""

    allowed: bool
    delay: float = 0.0  # seconds to wait before answering
    retry_after: float = 0.0  # when refused: seconds until the lock ends
    key: str | None = None  # the key that is locked or slowed


@dataclass
class LoginThrottle:
    max_failures: int = 10
    free_failures: int = 3
    window: float = 900.0
    lockout: float = 900.0
    base_delay: float = 0.5
    max_delay: float = 8.0
    #: Bound on remembered keys, so that a flood of made-up names cannot exhaust memory.
    max_keys: int = 100_000
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)

    def check(self, keys: list[str], now: float) -> Verdict:
        """May an attempt for these keys go ahead, and after how long a delay?"""
        delay = 0.0
        slowest = None
        for key in keys:
            until = self._locked_until.get(key, 0.0)
            if until > now:
                return Verdict(False, retry_after=until - now, key=key)
            count = len(self._recent(key, now))
            if count >= self.free_failures:
                d = min(self.max_delay, self.base_delay * 2 ** (count - self.free_failures))
                if d > delay:
                    delay, slowest = d, key
        return Verdict(True, delay=delay, key=slowest)

    def failed(self, keys: list[str], now: float) -> None:
        for key in keys:
            recent = self._recent(key, now)
            recent.append(now)
            if len(recent) >= self.max_failures:
                self._locked_until[key] = now + self.lockout
                recent.clear()
        if len(self._failures) > self.max_keys:
            self._forget_oldest()

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
        self._locked_until.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        recent = self._failures.setdefault(key, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent

    def _forget_oldest(self) -> None:
        by_age = sorted(self._failures.items(), key=lambda kv: kv[1][-1] if kv[1] else 0.0)
        for key, _ in by_age[: len(by_age) // 10 or 1]:
            self._failures.pop(key, None)
