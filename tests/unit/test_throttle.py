"""Back-off and lock logic, on the in-process store with a controllable clock."""

import pytest

from flows.errors import AccountLocked, Throttled
from flows.throttle import Throttle, ThrottleRules
from idp.ephemeral.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def fail(th: Throttle, clock: Clock, account: str = "a", ip: str = "ip") -> bool:
    return th.begin(account, ip, int(clock.t)).failed()


def test_free_attempts_then_exponential_back_off() -> None:
    clock = Clock()
    th = Throttle(MemoryStore(clock), "password", ThrottleRules(free_attempts=3))
    for _ in range(3):
        fail(th, clock)
    fail(th, clock)  # 4th: allowed, shuts the gate for 1 s
    with pytest.raises(Throttled) as exc:
        th.begin("a", "ip", int(clock.t))
    assert exc.value.retry_after == 1
    clock.t += 1
    fail(th, clock)  # 5th: gate now shut for 2 s
    clock.t += 1
    with pytest.raises(Throttled):
        th.begin("a", "ip", int(clock.t))
    clock.t += 1
    fail(th, clock)
    assert th.failures("a") == 6


def test_refused_attempts_do_not_count() -> None:
    clock = Clock()
    th = Throttle(MemoryStore(clock), "password", ThrottleRules(free_attempts=1))
    fail(th, clock)
    fail(th, clock)
    for _ in range(20):
        with pytest.raises(Throttled):
            th.begin("a", "ip", int(clock.t))
    assert th.failures("a") == 2


def test_success_resets_the_account() -> None:
    clock = Clock()
    th = Throttle(MemoryStore(clock), "password", ThrottleRules(free_attempts=2))
    fail(th, clock)
    fail(th, clock)
    th.begin("a", "ip", int(clock.t)).succeeded()
    assert th.failures("a") == 0


def test_lock_after_limit() -> None:
    clock = Clock()
    th = Throttle(
        MemoryStore(clock), "password", ThrottleRules(free_attempts=2, lock_after=4, max_delay=1)
    )
    results = []
    for _ in range(4):
        results.append(fail(th, clock))
        clock.t += 2
    assert results == [False, False, False, True]
    for _ in range(3):
        clock.t += 2
        with pytest.raises(AccountLocked):
            th.begin("a", "ip", int(clock.t))
    assert th.failures("a") == 4  # refused attempts are not counted


def test_ip_limit_spans_accounts() -> None:
    clock = Clock()
    th = Throttle(MemoryStore(clock), "password", ThrottleRules(ip_limit=3))
    for account in "abc":
        fail(th, clock, account)
    with pytest.raises(Throttled):
        th.begin("d", "ip", int(clock.t))
    th.begin("d", "other-ip", int(clock.t)).succeeded()


def test_nist_bound_is_enforced_in_rules() -> None:
    with pytest.raises(ValueError, match="lock_after"):
        ThrottleRules(lock_after=101)


def test_a_second_attempt_while_one_is_checked_is_refused_and_not_counted() -> None:
    clock = Clock()
    th = Throttle(MemoryStore(clock), "password")
    first = th.begin("a", "ip", int(clock.t))
    with pytest.raises(Throttled):
        th.begin("a", "ip", int(clock.t))
    th.begin("b", "ip", int(clock.t)).succeeded()  # other accounts are not held up
    first.failed()
    assert th.failures("a") == 1
    th.begin("a", "ip", int(clock.t)).succeeded()


def test_the_gate_follows_the_time_passed_in_not_the_stores_clock() -> None:
    """The caller's ``now`` (the request's time, idp.clock) decides when the gate re-opens;
    the stored gate outlives its second, so a store whose own clock runs on (Redis, or the
    in-process store's monotonic clock) cannot open it early."""
    store_clock = Clock()
    th = Throttle(MemoryStore(store_clock), "password", ThrottleRules(free_attempts=0))
    fail(th, store_clock)  # the first failure shuts the gate for 1 s, from t=1000
    store_clock.t += 1.5  # the store's own time runs on; the request's time is still 1000
    with pytest.raises(Throttled):
        th.begin("a", "ip", 1000)
    th.begin("a", "ip", 1001).failed()  # at the caller's 1001 it is open
