"""Password factor: argon2id hashing (RFC 9106) with rehash-on-login and dummy verification.

Parameters default to OWASP's argon2id minimum (m=19 MiB, t=2, p=1) and are configurable.
Unknown users are "verified" against a dummy hash so timing does not reveal them.
Its ``amr`` values and label are declared in :mod:`factors.kinds`.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from factors.errors import InvalidCredentials

# NIST SP 800-63B-4 section 3.1.1.2; factors.password_rules holds every rule for a new password.
MIN_LENGTH = 8
MAX_LENGTH = 128


@dataclass(frozen=True)
class Argon2Params:
    """argon2id cost parameters; memory in KiB."""

    memory_kib: int = 19 * 1024
    time_cost: int = 2
    parallelism: int = 1

    def __post_init__(self) -> None:
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError("argon2 memory must be at least 8 KiB per lane")
        if self.time_cost < 1 or self.parallelism < 1:
            raise ValueError("argon2 time cost and parallelism must be at least 1")


def normalize(password: str) -> str:
    """NFKC-normalise a password so the same text typed on two keyboards matches."""
    return unicodedata.normalize("NFKC", password)


class PasswordFactor:
    """Hashes and verifies passwords with argon2id."""

    def __init__(self, params: Argon2Params | None = None) -> None:
        self.params = params or Argon2Params()
        self._hasher = _Argon2(
            time_cost=self.params.time_cost,
            memory_cost=self.params.memory_kib,
            parallelism=self.params.parallelism,
            type=Type.ID,
        )
        # A real hash of a random value: verifying against it costs what a real check costs.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        """Return an encoded argon2id hash of ``password``."""
        return self._hasher.hash(normalize(password))

    def verify(self, encoded: str | None, password: str) -> None:
        """Raise :class:`InvalidCredentials` unless ``password`` matches ``encoded``.

        ``encoded=None`` (unknown user, or no password set) costs the same as a real check.
        """
        if encoded is None:
            try:
                self._hasher.verify(self._dummy, normalize(password) + "\x00")
            except VerificationError:
                pass
            raise InvalidCredentials()
        try:
            self._hasher.verify(encoded, normalize(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError) as exc:
            raise InvalidCredentials() from exc

    def needs_rehash(self, encoded: str) -> bool:
        """True when ``encoded`` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(encoded)
        except InvalidHashError:
            return True
