"""TOTP (RFC 6238) on top of pyotp: 160-bit secrets, SHA-1, 6 digits, 30 s steps.

Those defaults are what authenticator apps support (RFC 6238 section 5.2 and the de-facto
``otpauth://`` key URI format). A code is accepted within one step either side of now, and
never twice: the caller stores the accepted time step and passes it back as ``last_step``.
Its kind, ``amr`` values and label are declared in :mod:`factors.kinds`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import pyotp

from factors.errors import InvalidCode

DIGITS = 6
INTERVAL = 30
WINDOW = 1
SECRET_CHARS = 32  # base32: 160 bits, the length RFC 4226 section 4 recommends


@dataclass(frozen=True)
class Enrollment:
    """A secret being set up: shown once as a QR code and as text."""

    secret: str
    uri: str


def new_secret() -> str:
    return pyotp.random_base32(SECRET_CHARS)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/`` key URI that authenticator apps scan (issuer = tenant name)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
        name=account, issuer_name=issuer
    )


def enroll_begin(account: str, issuer: str) -> Enrollment:
    """A new random secret and its ``otpauth://`` URI."""
    secret = new_secret()
    return Enrollment(secret, provisioning_uri(secret, account, issuer))


def _clean(code: str) -> str:
    return "".join(code.split())


def verify(secret: str, code: str, now: int, last_step: int | None = None) -> int:
    """Return the time step ``code`` belongs to, or raise :class:`InvalidCode`.

    Every candidate step is compared (constant time, no early exit) so timing does not tell
    which step matched. Steps at or before ``last_step`` were used already (RFC 6238 5.2).
    """
    code = _clean(code)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    step = now // INTERVAL
    matched: int | None = None
    for candidate in range(step - WINDOW, step + WINDOW + 1):
        expected = totp.generate_otp(candidate)
        if hmac.compare_digest(expected.encode(), code.encode()) and matched is None:
            matched = candidate
    if matched is None or (last_step is not None and matched <= last_step):
        raise InvalidCode()
    return matched


def enroll_finish(secret: str, codes: list[str], now: int) -> int:
    """Activate a secret with one code, or two consecutive codes when ``len(codes) == 2``.

    Two codes prove the device's clock and the secret both match across a step boundary.
    Returns the last step used, so neither code can be replayed at the next login.
    """
    if not 1 <= len(codes) <= 2:
        raise ValueError("one or two codes")
    if len(codes) == 1:
        return verify(secret, codes[0], now)
    first, second = (_clean(c) for c in codes)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    step = now // INTERVAL
    found: int | None = None
    for candidate in range(step - WINDOW - 1, step + WINDOW + 1):
        pair = totp.generate_otp(candidate) + totp.generate_otp(candidate + 1)
        if hmac.compare_digest(pair.encode(), (first + second).encode()) and found is None:
            found = candidate + 1
    if found is None:
        raise InvalidCode()
    return found
