"""Backup codes: ten single-use recovery codes, shown once and stored only as keyed hashes.

Each code carries 49.5 random bits (10 characters from a 31-letter alphabet without look-alike
characters), so a keyed HMAC-SHA256 is enough at rest: without the server's key the stored
values cannot even be brute-forced offline. Its ``amr`` values and label are declared in
:mod:`factors.kinds`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from factors.errors import InvalidCode

COUNT = 10
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no i, l, o, 0, 1
LOW_WARNING = 3


def generate(count: int = COUNT) -> list[str]:
    """New codes formatted ``xxxxx-xxxxx`` for reading and typing."""
    out = []
    for _ in range(count):
        raw = "".join(secrets.choice(ALPHABET) for _ in range(10))
        out.append(f"{raw[:5]}-{raw[5:]}")
    return out


def normalize(code: str) -> str:
    return "".join(c for c in code.casefold() if c.isalnum())


def digest(key: bytes, code: str) -> str:
    return hmac.new(key, normalize(code).encode(), hashlib.sha256).hexdigest()


def match(key: bytes, stored: list[str], code: str) -> int:
    """Index of the stored digest ``code`` matches, or raise :class:`InvalidCode`.

    Every stored digest is compared, in constant time each, whatever matched earlier.
    """
    given = digest(key, code)
    found = -1
    for i, candidate in enumerate(stored):
        if hmac.compare_digest(candidate, given) and found < 0:
            found = i
    if found < 0:
        raise InvalidCode()
    return found
