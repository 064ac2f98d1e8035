"""Brute-force protection: per-account back-off and lock, per-IP limits (NIST SP 800-63B 5.2.2).

Every attempt reserves its place with an atomic increment *before* the secret is checked, so
parallel requests cannot all slip past a check-then-count race. Past ``free_attempts``
consecutive failures, an attempt must also take a gate key (set-if-absent) that expires after an
exponentially growing delay; at ``lock_after`` failures the account locks until an admin
unlocks it. Attempts turned away by the gate or the IP limit are not counted against the
account, so an attacker cannot lock an account by flooding it faster than the back-off allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flows.errors import AccountLocked, Throttled

NIST_MAX_CONSECUTIVE_FAILURES = 100


class Counters(Protocol):
    """The part of the ephemeral store the throttle needs (satisfied by idp.ephemeral)."""

    def get(self, key: str) -> bytes | None: ...
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


class Attempt:
    """One reserved attempt; call :meth:`failed` or :meth:`succeeded` once the secret is checked."""

    def __init__(self, throttle: Throttle, account_key: str, ip_key: str, number: int) -> None:
        self._t, self._account, self._ip, self.number = throttle, account_key, ip_key, number

    def failed(self) -> bool:
        """Record the failure; True when the account must now be locked."""
        return self.number >= self._t.rules.lock_after

    def succeeded(self) -> None:
        """A success ends the run of consecutive failures and gives the IP its attempt back."""
        s = self._t.store
        s.delete(self._account)
        s.delete(self._account + ":gate")
        s.incr(self._ip, self._t.rules.ip_window, -1)


class Throttle:
    """Counts attempts of one kind (``scope``: password, otp, ...) per account and per IP."""

    def __init__(self, store: Counters, scope: str, rules: ThrottleRules | None = None) -> None:
        self.store, self.scope, self.rules = store, scope, rules or ThrottleRules()

    def begin(self, account: str, ip: str, now: int) -> Attempt:
        """Reserve an attempt or raise :class:`Throttled` / :class:`AccountLocked`."""
        r, s = self.rules, self.store
        account_key = f"throttle:{self.scope}:acct:{account}"
        ip_key = f"throttle:{self.scope}:ip:{ip}"
        gate_key = account_key + ":gate"

        if self._gate_wait(gate_key, now) > 0:
            raise Throttled(self._gate_wait(gate_key, now))
        if s.incr(ip_key, r.ip_window) > r.ip_limit:
            s.incr(ip_key, r.ip_window, -1)
            raise Throttled(r.ip_window)
        number = s.incr(account_key, r.account_window)
        if number > r.lock_after:
            self._release(account_key, ip_key)
            raise AccountLocked()
        delay = r.delay(number)
        if delay and not s.add(gate_key, str(now + delay).encode(), delay):
            self._release(account_key, ip_key)
            raise Throttled(max(1, self._gate_wait(gate_key, now)))
        return Attempt(self, account_key, ip_key, number)

    def failures(self, account: str) -> int:
        raw = self.store.get(f"throttle:{self.scope}:acct:{account}")
        return int(raw) if raw else 0

    def reset(self, account: str) -> None:
        """Forget the account's failures (admin unlock)."""
        key = f"throttle:{self.scope}:acct:{account}"
        self.store.delete(key)
        self.store.delete(key + ":gate")

    def _release(self, account_key: str, ip_key: str) -> None:
        self.store.incr(account_key, self.rules.account_window, -1)
        self.store.incr(ip_key, self.rules.ip_window, -1)

    def _gate_wait(self, gate_key: str, now: int) -> int:
        raw = self.store.get(gate_key)
        return max(0, int(raw) - now) if raw else 0
