"""One-time codes delivered out of band, by SMS or email (NIST SP 800-63B 5.1.3).

A code is 6 random digits, valid for 5 minutes, with at most 5 attempts; a new one may be
sent after a short cool-down. Only an HMAC of the code is kept (with a per-code random key),
and the comparison is constant-time. The caller stores the :class:`Challenge` and counts
attempts atomically; this module only decides.
Each kind's ``amr`` values and label are declared in :mod:`factors.kinds`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from factors import contact
from factors.errors import FactorError, InvalidCode

DIGITS = 6
LIFETIME = 300
MAX_ATTEMPTS = 5
RESEND_AFTER = 30


class CodeExpired(InvalidCode):
    """The code is too old, or its attempts are used up: a new one must be sent."""


class ResendTooSoon(FactorError):
    """A code was sent moments ago; ``wait`` seconds remain."""

    def __init__(self, wait: int) -> None:
        super().__init__(f"wait {wait} s")
        self.wait = wait


@dataclass(frozen=True)
class Challenge:
    """A sent code: its keyed digest, a keyed tag of where it went, and when.

    Neither the code nor the phone number or address is kept in the clear, so a challenge can
    sit in the ephemeral store without putting either there.
    """

    digest: str
    key: str
    target_tag: str
    sent_at: int

    @property
    def expires_at(self) -> int:
        return self.sent_at + LIFETIME

    def sent_to(self, target: str) -> bool:
        return hmac.compare_digest(_digest(self.key, "to:" + target), self.target_tag)

    def to_json(self) -> dict[str, Any]:
        return {"d": self.digest, "k": self.key, "t": self.target_tag, "s": self.sent_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Challenge:
        return cls(str(data["d"]), str(data["k"]), str(data["t"]), int(data["s"]))


def _digest(key: str, code: str) -> str:
    return hmac.new(key.encode(), code.encode(), hashlib.sha256).hexdigest()


def issue(target: str, now: int, previous: Challenge | None = None) -> tuple[str, Challenge]:
    """A new code for ``target`` and its challenge; raise :class:`ResendTooSoon` if too soon."""
    if previous is not None and previous.sent_to(target):
        wait = previous.sent_at + RESEND_AFTER - now
        if wait > 0:
            raise ResendTooSoon(wait)
    code = f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"
    key = secrets.token_hex(16)
    return code, Challenge(_digest(key, code), key, _digest(key, "to:" + target), now)


def verify(challenge: Challenge, code: str, now: int, attempt: int) -> None:
    """Raise unless ``code`` matches; ``attempt`` is this try's number (1-based)."""
    if attempt > MAX_ATTEMPTS or now >= challenge.expires_at:
        raise CodeExpired()
    given = "".join(code.split())
    if not hmac.compare_digest(_digest(challenge.key, given), challenge.digest):
        raise InvalidCode()


@dataclass(frozen=True)
class CodeFactor:
    """A factor proven by a code sent to a target: a phone (SMS) or an email address.

    The DESIGN.md factor interface: ``enroll_begin`` takes what the user typed as the target
    and sends the first code, ``enroll_finish`` checks it; at login ``challenge`` sends a code
    and ``verify`` checks it. Sending itself is the caller's (a provider is outside ``factors``).
    """

    kind: str
    normalize: Callable[[str], str]
    mask: Callable[[str], str]

    def enroll_begin(
        self, typed: str, now: int, previous: Challenge | None = None
    ) -> tuple[str, str, Challenge]:
        """Validate the target (``InvalidContact``); return it normalised, its first code and
        the challenge."""
        target = self.normalize(typed)
        return (target, *self.challenge(target, now, previous))

    def enroll_finish(
        self, challenge: Challenge, target: str, code: str, now: int, attempt: int
    ) -> None:
        """Raise like :meth:`verify`, or when the code was not sent to ``target``."""
        if not challenge.sent_to(target):
            raise InvalidCode()
        self.verify(challenge, code, now, attempt)

    def challenge(
        self, target: str, now: int, previous: Challenge | None = None
    ) -> tuple[str, Challenge]:
        return issue(target, now, previous)

    def verify(self, challenge: Challenge, code: str, now: int, attempt: int) -> None:
        verify(challenge, code, now, attempt)


SMS = CodeFactor("sms", contact.normalize_phone, contact.mask_phone)
EMAIL = CodeFactor("email", contact.normalize_email, contact.mask_email)
BY_KIND = {f.kind: f for f in (SMS, EMAIL)}
