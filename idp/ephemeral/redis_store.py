"""Redis ephemeral store: shared by every process and host of a deployment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.exceptions import RedisError

from idp.ephemeral import EphemeralUnavailable
from idp.settings import Settings

T = TypeVar("T")

# INCRBY and EXPIRE in one atomic step: the counter and its (sliding) TTL never disagree.
_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return v
"""


class RedisStore:
    """Keys are prefixed ``stepwise:`` so one Redis can be shared with other software."""

    PREFIX = "stepwise:"

    def __init__(self, url: str) -> None:
        self._r = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._incr = self._r.register_script(_INCR)

    @classmethod
    def for_settings(cls, settings: Settings) -> RedisStore:
        """The store for IDP_REDIS_URL (TODO issue 16: Sentinel, rediss CA, timeout)."""
        return cls(settings.redis_url)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RedisError as exc:
            raise EphemeralUnavailable(f"Redis unavailable: {exc.__class__.__name__}") from None

    def get(self, key: str) -> bytes | None:
        value: Any = self._call(lambda: self._r.get(self.PREFIX + key))
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl: int) -> None:
        self._call(lambda: self._r.set(self.PREFIX + key, value, ex=ttl))

    def add(self, key: str, value: bytes, ttl: int) -> bool:
        return bool(self._call(lambda: self._r.set(self.PREFIX + key, value, ex=ttl, nx=True)))

    def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        return int(self._call(lambda: self._incr(keys=[self.PREFIX + key], args=[ttl, amount])))

    def delete(self, key: str) -> None:
        self._call(lambda: self._r.delete(self.PREFIX + key))

    def take(self, key: str) -> bytes | None:
        value: Any = self._call(lambda: self._r.getdel(self.PREFIX + key))
        return None if value is None else bytes(value)

    def ping(self) -> None:
        self._call(self._r.ping)
