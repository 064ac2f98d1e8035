"""Redis ephemeral store: shared by every process and host of a deployment.

One Redis (``IDP_REDIS_URL``, ``rediss://`` for TLS) or a master followed through Redis Sentinel
(``IDP_REDIS_SENTINELS``). Operations: docs/operations/redis.md.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from idp import metrics
from idp.ephemeral import EphemeralUnavailable
from idp.settings import Settings, SettingsError

T = TypeVar("T")
log = logging.getLogger("idp.ephemeral")

# INCRBY and EXPIRE in one atomic step: the counter and its (sliding) TTL never disagree.
_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return v
"""


def _retry() -> Retry:
    """Retry once, at once, after a ConnectionError; never after a timeout.

    A ConnectionError is mostly a pooled connection that died while idle (Redis restarted, or
    Sentinel promoted another node and the old master now refuses writes): the retry takes a
    fresh connection, and under Sentinel asks the sentinels for the master again. That is why
    the first request after a restart or failover succeeds instead of answering 503.

    A connection can also break after the command reached Redis, so the retry may run it
    twice. That is harmless for GET, SET and DEL, and fails closed for the others: a throttle's
    INCR counts one attempt more (stricter, never looser), a repeated GETDEL or SET NX finds the
    value already taken or present (a single-use code is refused, never accepted twice).

    A timeout is not retried: the command may well have run (the same double count or lost
    code, for nothing), and a Redis that did not answer within IDP_REDIS_TIMEOUT is unlikely to
    answer the second time; waiting twice would only double the time before the 503. redis-py's
    own default (ten retries with backoff, timeouts included) would hold a request for many
    seconds while Redis is down.
    """
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


class RedisStore:
    """Keys are prefixed ``stepwise:`` so one Redis can be shared with other software."""

    PREFIX = "stepwise:"

    def __init__(self, target: str | redis.Redis, timeout: float = 2) -> None:
        """``target``: a URL (tests, simple setups) or a client built by ``for_settings``."""
        if isinstance(target, str):
            target = redis.Redis.from_url(target, **_client_options(timeout))
        self._r = target
        self._incr = self._r.register_script(_INCR)

    @classmethod
    def for_settings(cls, settings: Settings) -> RedisStore:
        """The store for IDP_REDIS_URL, or for the master that IDP_REDIS_SENTINELS name.

        Nothing is contacted here: a node starts while Redis is down and its pages answer 503
        until Redis is back. Settings that can never work (a malformed sentinel list, an
        unreadable CA file, a CA without ``rediss://``) are refused at once.
        """
        options = _client_options(settings.redis_timeout)
        url = urlsplit(settings.redis_url)
        tls = url.scheme == "rediss"
        if settings.redis_url and url.scheme not in ("redis", "rediss"):
            raise SettingsError("IDP_REDIS_URL must start with redis:// or rediss://")
        if settings.redis_tls_ca:
            if not tls:
                raise SettingsError("IDP_REDIS_TLS_CA is set but IDP_REDIS_URL is not rediss://")
            _check_ca(settings.redis_tls_ca)
        if tls and {"ssl_cert_reqs", "ssl_check_hostname"} & set(parse_qs(url.query)):
            # redis-py lets URL parameters win over the options below.
            raise SettingsError(
                "IDP_REDIS_URL: TLS certificate and host name checks cannot be turned off "
                "(remove ssl_cert_reqs and ssl_check_hostname)"
            )
        if tls:
            # Verified against the CA (the system's when IDP_REDIS_TLS_CA is empty), host name
            # included: what ssl.create_default_context does.
            options.update(ssl_cert_reqs="required", ssl_check_hostname=True)
            if settings.redis_tls_ca:
                options["ssl_ca_certs"] = settings.redis_tls_ca
        if not settings.redis_sentinels:
            return cls(redis.Redis.from_url(settings.redis_url, **options))
        return cls(_sentinel_master(settings, url, options, tls))

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RedisError as exc:
            metrics.STORE_ERRORS.labels(operation=operation).inc()
            # Network errors say which host and why (refused, TLS verification...); other
            # replies can quote a command's arguments, which may hold a session id.
            network = isinstance(exc, RedisConnectionError | RedisTimeoutError)
            reason = str(exc)[:200] if network else ""
            log.warning("redis %s failed: %s %s", operation, exc.__class__.__name__, reason)
            raise EphemeralUnavailable(f"Redis unavailable: {exc.__class__.__name__}") from None

    def get(self, key: str) -> bytes | None:
        value: Any = self._call("get", lambda: self._r.get(self.PREFIX + key))
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl: int) -> None:
        self._call("set", lambda: self._r.set(self.PREFIX + key, value, ex=ttl))

    def add(self, key: str, value: bytes, ttl: int) -> bool:
        return bool(
            self._call("add", lambda: self._r.set(self.PREFIX + key, value, ex=ttl, nx=True))
        )

    def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        return int(
            self._call("incr", lambda: self._incr(keys=[self.PREFIX + key], args=[ttl, amount]))
        )

    def delete(self, key: str) -> None:
        self._call("delete", lambda: self._r.delete(self.PREFIX + key))

    def take(self, key: str) -> bytes | None:
        value: Any = self._call("take", lambda: self._r.getdel(self.PREFIX + key))
        return None if value is None else bytes(value)

    def ping(self) -> None:
        self._call("ping", self._r.ping)


def _client_options(timeout: float) -> dict[str, Any]:
    """Bounded waits everywhere: a request answers 503 within about ``timeout`` seconds (one
    connect or one command; a refused connection is retried once, at once)."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "socket_keepalive": True,  # a peer gone without a word is noticed by the kernel
        "retry": _retry(),
        # RESP2, as redis-py before 8 spoke. Its RESP3 default also turns on "maintenance
        # notifications" (a Redis Enterprise feature: one more failing command per connection on
        # Redis 7, and timeouts relaxed to 10 s during a maintenance), and with them the pool
        # skips its check that an idle connection is still open before handing it out.
        "protocol": 2,
    }


def _check_ca(path: str) -> None:
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"IDP_REDIS_TLS_CA: cannot load {path} as PEM certificates ({exc.__class__.__name__})"
        ) from None


def _sentinels(raw: str) -> list[tuple[str, int]]:
    out = []
    for item in raw.split(","):
        host, _, port = item.strip().rpartition(":")
        host = host.strip("[]")  # [::1]:26379
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(
                f"IDP_REDIS_SENTINELS must be host:port[,host:port...], not {item.strip()!r}"
            )
        out.append((host, int(port)))
    return out


def _sentinel_master(
    settings: Settings, url: SplitResult, options: dict[str, Any], tls: bool
) -> redis.Redis:
    """A client of the master that the sentinels name. Its SentinelConnectionPool asks them
    again on every new connection, and drops idle connections when the answer changes; a
    connection to a demoted master fails its first write (READONLY) with a ConnectionError,
    which the retry policy turns into a new connection to the promoted replica.

    IDP_REDIS_URL, when set alongside, gives only what the sentinels cannot: its scheme
    (rediss:// = TLS to the sentinels and to the data nodes, with IDP_REDIS_TLS_CA), user name,
    password and database number. Its host and port are not used.
    """
    if not settings.redis_master_name:
        raise SettingsError("IDP_REDIS_MASTER_NAME must be set with IDP_REDIS_SENTINELS")
    data = dict(options)
    if url.username:
        data["username"] = unquote(url.username)
    if url.password:
        data["password"] = unquote(url.password)
    db = url.path.strip("/")
    if db:
        if not db.isdigit():
            raise SettingsError("IDP_REDIS_URL: the database must be a number, as in /0")
        data["db"] = int(db)
    # The sentinels: same timeouts, retry and TLS, their own password (none by default).
    sentinel_options = {k: v for k, v in options.items() if k != "retry"}
    sentinel_options["retry"] = _retry()
    if settings.redis_sentinel_password:
        sentinel_options["password"] = settings.redis_sentinel_password
    if tls:
        data["ssl"] = True
        sentinel_options["ssl"] = True
    # redis.sentinel has no type annotations.
    manager = Sentinel(  # type: ignore[no-untyped-call]
        _sentinels(settings.redis_sentinels), sentinel_kwargs=sentinel_options
    )
    master: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
        settings.redis_master_name, **data
    )
    return master
