"""Short-lived state (sessions, flows, counters): Redis, or an in-process store for one process.

Both backends keep one contract, tested by tests/web/test_ephemeral_contract.py:
``get``/``set`` with a TTL, ``add`` (set if absent), an atomic ``incr`` that renews the TTL,
``delete``, and ``take`` (get and delete at once, for single-use values).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from idp.settings import Settings


class EphemeralUnavailable(Exception):
    """The store cannot be reached; pages answer 503."""


class EphemeralStore(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: int) -> None: ...
    def add(self, key: str, value: bytes, ttl: int) -> bool: ...
    def incr(self, key: str, ttl: int, amount: int = 1) -> int: ...
    def delete(self, key: str) -> None: ...
    def take(self, key: str) -> bytes | None: ...
    def ping(self) -> None: ...


def connect(settings: Settings, monotonic: Callable[[], float]) -> EphemeralStore:
    """Redis when the settings name it (a URL, or Sentinel), else the in-process store (whose
    TTLs run on ``monotonic``, the app's clock)."""
    if settings.shared_store:
        from idp.ephemeral.redis_store import RedisStore

        return RedisStore.for_settings(settings)
    from idp.ephemeral.memory import MemoryStore

    return MemoryStore(monotonic)
