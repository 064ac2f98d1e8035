"""One contract, two backends: the in-process store and a real redis-server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from idp.clock import SettableClock
from idp.ephemeral import EphemeralStore, EphemeralUnavailable, connect
from idp.ephemeral.memory import MemoryStore
from idp.ephemeral.redis_store import RedisStore
from idp.settings import load

Later = Callable[[float], None]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[EphemeralStore, Later]]:
    """The store, and a way to let ``seconds`` pass for it without sleeping.

    The in-process store runs on a settable clock. Redis keeps time itself, so time passes for
    the test's keys by lowering each one's TTL, deleting those that would have expired.
    """
    if request.param == "memory":
        clock = SettableClock()
        yield MemoryStore(clock.monotonic), clock.advance
    else:
        url = request.getfixturevalue("redis_url")
        raw = redis.Redis.from_url(url)

        def later(seconds: float) -> None:
            for k in raw.scan_iter(RedisStore.PREFIX + "test:*"):
                left = int(raw.pttl(k))
                if left > 0:
                    if left <= seconds * 1000:
                        raw.delete(k)
                    else:
                        raw.pexpire(k, left - int(seconds * 1000))

        yield RedisStore(url), later
        raw.close()


@pytest.fixture
def store(backend: tuple[EphemeralStore, Later]) -> EphemeralStore:
    return backend[0]


@pytest.fixture
def later(backend: tuple[EphemeralStore, Later]) -> Later:
    return backend[1]


@pytest.fixture
def key() -> str:
    return f"test:{uuid.uuid4().hex}"


def test_connect_chooses_backend_by_url(redis_url: str) -> None:
    assert isinstance(connect(load({"redis_url": ""}), SettableClock().monotonic), MemoryStore)
    clock = SettableClock().monotonic
    assert isinstance(connect(load({"redis_url": redis_url}), clock), RedisStore)


def test_get_set_delete(store: EphemeralStore, key: str) -> None:
    assert store.get(key) is None
    store.set(key, b"v1", 60)
    assert store.get(key) == b"v1"
    store.set(key, b"v2", 60)
    assert store.get(key) == b"v2"
    store.delete(key)
    assert store.get(key) is None
    store.delete(key)  # deleting twice is fine


def test_values_expire(store: EphemeralStore, later: Later, key: str) -> None:
    store.set(key, b"x", 1)
    store.set(key + "long", b"y", 30)
    later(1.2)
    assert store.get(key) is None
    assert store.get(key + "long") == b"y"


def test_add_only_when_absent(store: EphemeralStore, key: str) -> None:
    assert store.add(key, b"first", 60) is True
    assert store.add(key, b"second", 60) is False
    assert store.get(key) == b"first"


def test_take_is_single_use(store: EphemeralStore, key: str) -> None:
    store.set(key, b"once", 60)
    assert store.take(key) == b"once"
    assert store.take(key) is None
    assert store.get(key) is None


def test_incr_counts_and_renews_ttl(store: EphemeralStore, later: Later, key: str) -> None:
    assert store.incr(key, 60) == 1
    assert store.incr(key, 60, 5) == 6
    assert store.incr(key, 60, -2) == 4
    assert store.get(key) == b"4"
    store.incr(key + "short", 1)
    later(1.2)
    assert store.incr(key + "short", 60) == 1


def test_incr_is_atomic_under_threads(store: EphemeralStore, key: str) -> None:
    def work() -> None:
        for _ in range(200):
            store.incr(key, 60)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(key) == b"1600"


def test_take_hands_a_value_to_exactly_one_of_many(store: EphemeralStore, key: str) -> None:
    store.set(key, b"prize", 60)
    winners: list[bytes] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        got = store.take(key)
        if got is not None:
            winners.append(got)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert winners == [b"prize"]


def test_ping(store: EphemeralStore) -> None:
    store.ping()


def test_unreachable_redis_raises_a_typed_error() -> None:
    from testkit.servers import free_port

    down = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(EphemeralUnavailable):
        down.ping()
    with pytest.raises(EphemeralUnavailable):
        down.get("x")
