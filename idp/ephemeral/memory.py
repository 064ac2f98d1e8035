"""In-process ephemeral store: a dict under a lock. Right for one process only."""

from __future__ import annotations

import threading
from collections.abc import Callable


class MemoryStore:
    """Thread-safe; expired entries are dropped when touched and swept now and then."""

    SWEEP_EVERY = 1024

    def __init__(self, clock: Callable[[], float]) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._ops = 0

    def _live(self, key: str, now: float) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._data[key]
            return None
        return item[0]

    def _tick(self, now: float) -> None:
        self._ops += 1
        if self._ops % self.SWEEP_EVERY == 0:
            for k in [k for k, (_, exp) in self._data.items() if exp <= now]:
                del self._data[k]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._live(key, self._clock())

    def set(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            now = self._clock()
            self._tick(now)
            self._data[key] = (bytes(value), now + ttl)

    def add(self, key: str, value: bytes, ttl: int) -> bool:
        with self._lock:
            now = self._clock()
            if self._live(key, now) is not None:
                return False
            self._tick(now)
            self._data[key] = (bytes(value), now + ttl)
            return True

    def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        with self._lock:
            now = self._clock()
            current = self._live(key, now)
            value = (int(current) if current is not None else 0) + amount
            self._tick(now)
            self._data[key] = (str(value).encode(), now + ttl)
            return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def take(self, key: str) -> bytes | None:
        with self._lock:
            value = self._live(key, self._clock())
            self._data.pop(key, None)
            return value

    def ping(self) -> None:
        return None
