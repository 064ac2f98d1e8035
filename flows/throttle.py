"""Brute-force protection: per-account back-off and lock, per-IP limits (NIST SP 800-63B 5.2.2).

Attempts on one account are serialised by a short-lived mutex (an atomic set-if-absent), so
parallel requests cannot slip past a check-then-count race: a guess that arrives while another
is being checked is turned away, and is not counted. Failures are counted only once the secret
has been checked. Past ``free_attempts`` consecutive failures each failure shuts a gate for an
exponentially growing delay; at ``lock_after`` failures the account locks. Per IP, attempts
are reserved with an atomic increment before the check and given back on success.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flows.errors import AccountLocked, Throttled

NIST_MAX_CONSECUTIVE_FAILURES = 100


class Counters(Protocol):
    """The part of the ephemeral store the throttle needs (satisfied by idp.ephemeral)."""

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: int) -> None: ...
    def incr(self, key: str, ttl: int, amount: int = 1) -> int: ...
    def add(self, key: str, value: bytes, ttl: int) -> bool: ...
    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class ThrottleRules:
    """Limits; windows are sliding (each failure renews them)."""

    free_attempts: int = 5
    max_delay: int = 900
    lock_after: int = NIST_MAX_CONSECUTIVE_FAILURES
    account_window: int = 24 * 3600
    ip_limit: int = 100
    ip_window: int = 900

    def __post_init__(self) -> None:
        if not 1 <= self.lock_after <= NIST_MAX_CONSECUTIVE_FAILURES:
            raise ValueError(f"lock_after must be between 1 and {NIST_MAX_CONSECUTIVE_FAILURES}")
        if not 0 <= self.free_attempts < self.lock_after:
            raise ValueError("free_attempts must be below lock_after")
        if self.max_delay < 1 or self.ip_limit < 1:
            raise ValueError("max_delay and ip_limit must be positive")

    def delay(self, attempt: int) -> int:
        """Seconds the gate stays shut after attempt number ``attempt`` (1-based)."""
        over = attempt - self.free_attempts
        return 0 if over <= 0 else min(self.max_delay, 2 ** min(over - 1, 30))


GATE_GRACE = 60  # seconds a shut gate is kept past its time; only the stored time decides


class Attempt:
    """One admitted attempt; call :meth:`failed` or :meth:`succeeded` once the secret is checked."""

    def __init__(self, throttle: Throttle, account_key: str, ip_key: str, now: int) -> None:
        self._t, self._account, self._ip, self._now = throttle, account_key, ip_key, now

    def failed(self) -> bool:
        """Count the failure and shut the gate; True when the account must now be locked."""
        r, s = self._t.rules, self._t.store
        number = s.incr(self._account, r.account_window)
        delay = r.delay(number)
        if delay:
            # The stored time decides (the caller's clock); the key outlives it by a minute,
            # so a store whose own clock runs ahead cannot open the gate early.
            s.set(self._account + ":gate", str(self._now + delay).encode(), delay + GATE_GRACE)
        s.delete(self._account + ":busy")
        return number >= r.lock_after

    def succeeded(self) -> None:
        """A success ends the run of consecutive failures and gives the IP its attempt back."""
        s = self._t.store
        s.delete(self._account)
        s.delete(self._account + ":gate")
        s.delete(self._account + ":busy")
        s.incr(self._ip, self._t.rules.ip_window, -1)


class Throttle:
    """Counts attempts of one kind (``scope``: password, otp, ...) per account and per IP."""

    BUSY_TTL = 10  # seconds; frees the account should a process die mid-attempt

    def __init__(self, store: Counters, scope: str, rules: ThrottleRules | None = None) -> None:
        self.store, self.scope, self.rules = store, scope, rules or ThrottleRules()

    def begin(self, account: str, ip: str, now: int) -> Attempt:
        """Admit one attempt or raise :class:`Throttled` / :class:`AccountLocked`."""
        r, s = self.rules, self.store
        account_key = f"throttle:{self.scope}:acct:{account}"
        ip_key = f"throttle:{self.scope}:ip:{ip}"
        if not s.add(account_key + ":busy", b"1", self.BUSY_TTL):
            raise Throttled(1)
        try:
            if self.failures(account) >= r.lock_after:
                raise AccountLocked()
            raw = s.get(account_key + ":gate")
            wait = int(raw) - now if raw else 0
            if wait > 0:
                raise Throttled(wait)
            if s.incr(ip_key, r.ip_window) > r.ip_limit:
                s.incr(ip_key, r.ip_window, -1)
                raise Throttled(r.ip_window, scope="ip")
        except (Throttled, AccountLocked):
            s.delete(account_key + ":busy")
            raise
        return Attempt(self, account_key, ip_key, now)

    def failures(self, account: str) -> int:
        raw = self.store.get(f"throttle:{self.scope}:acct:{account}")
        return int(raw) if raw else 0
