from jupyter_backendai.core.throttle import LoginThrottle


def test_free_failures_then_growing_delay_then_lockout():
    t = LoginThrottle(max_failures=6, free_failures=2, window=100, lockout=50, base_delay=1, max_delay=4)
    keys = ["account:a", "address:1.2.3.4"]
    delays = []
    for i in range(5):
        verdict = t.check(keys, now=i)
        assert verdict.allowed
        delays.append(verdict.delay)
        t.failed(keys, now=i)
    assert delays == [0, 0, 1, 2, 4]
    t.failed(keys, now=5)  # the sixth failure locks both keys
    refused = t.check(keys, now=6)
    assert not refused.allowed and refused.retry_after == 49 and refused.key == "account:a"
    # Another account from the same address is locked too; the same account elsewhere as well.
    assert not t.check(["account:b", "address:1.2.3.4"], now=6).allowed
    assert not t.check(["account:a", "address:5.6.7.8"], now=6).allowed
    # After the lockout everything starts afresh.
    assert t.check(keys, now=56) == t.check(["account:z"], now=56)
    assert t.check(keys, now=56).allowed and t.check(keys, now=56).delay == 0


def test_window_forgets_old_failures():
    t = LoginThrottle(max_failures=3, free_failures=1, window=10, lockout=100)
    t.failed(["k"], now=0)
    t.failed(["k"], now=1)
    assert t.check(["k"], now=2).delay > 0
    assert t.check(["k"], now=12).delay == 0  # both failures are older than the window
    t.failed(["k"], now=12)
    t.failed(["k"], now=13)
    assert t.check(["k"], now=14).allowed  # two failures in the window: not yet locked


def test_success_clears_the_account_but_not_the_address():
    t = LoginThrottle(max_failures=10, free_failures=1, base_delay=1)
    keys = ["account:a", "address:x"]
    for i in range(3):
        t.failed(keys, now=i)
    t.succeeded("account:a")
    assert t.check(["account:a"], now=4).delay == 0
    assert t.check(["address:x"], now=4).delay > 0


def test_memory_is_bounded():
    t = LoginThrottle(max_keys=100)
    for i in range(1000):
        t.failed([f"account:{i}"], now=i)
    assert len(t._failures) <= 101


def test_client_address_is_what_the_trusted_proxies_saw():
    from jupyter_backendai.core.throttle import client_address

    # configurable-http-proxy appends the address it was connected from; the client wrote the rest.
    assert client_address("127.0.0.1", ["6.6.6.6, 203.0.113.9"], 1) == "203.0.113.9"
    assert client_address("127.0.0.1", ["6.6.6.6", "7.7.7.7, 203.0.113.9"], 1) == "203.0.113.9"
    # Two proxies (a load balancer, then the proxy): the second entry from the right.
    assert client_address("127.0.0.1", ["1.1.1.1, 203.0.113.9, 10.0.0.2"], 2) == "203.0.113.9"
    assert client_address("127.0.0.1", ["203.0.113.9"], 2) == "203.0.113.9"  # a shorter chain
    # No header (a direct connection), or no proxy trusted: the socket's peer.
    assert client_address("192.0.2.1", [], 1) == "192.0.2.1"
    assert client_address("192.0.2.1", ["6.6.6.6"], 0) == "192.0.2.1"
    assert len(client_address("127.0.0.1", ["x" * 10_000], 1)) == 64
