"""Authentication context: which factors were verified, and when (DESIGN.md "Assurance levels").

The achieved level, ``acr``, ``amr`` (RFC 8176) and ``auth_time`` (OpenID Connect Core 1.0
section 2) are derived from it and never stored separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LEVEL_NONE, LEVEL_ONE_FACTOR, LEVEL_MULTI_FACTOR, LEVEL_PHISHING_RESISTANT = 0, 1, 2, 3


@dataclass(frozen=True)
class VerifiedFactor:
    """One factor verified at ``at`` (Unix seconds).

    ``phishing_resistant`` marks a WebAuthn assertion; ``user_verified`` marks one whose
    authenticator also verified the user (PIN or biometric), which is multi-factor on its own.
    """

    kind: str
    amr: tuple[str, ...]
    at: int
    phishing_resistant: bool = False
    user_verified: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "amr": list(self.amr),
            "at": self.at,
            "phr": self.phishing_resistant,
            "uv": self.user_verified,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifiedFactor:
        return cls(
            kind=str(data["kind"]),
            amr=tuple(str(a) for a in data["amr"]),
            at=int(data["at"]),
            phishing_resistant=bool(data.get("phr", False)),
            user_verified=bool(data.get("uv", False)),
        )


@dataclass(frozen=True)
class AuthContext:
    """The factors a session's user has verified. Newest entry per kind wins."""

    user_id: int
    factors: tuple[VerifiedFactor, ...] = field(default_factory=tuple)

    def with_factor(self, factor: VerifiedFactor) -> AuthContext:
        return AuthContext(self.user_id, tuple(merge(self.factors, factor)))

    def counting(self, not_before: int | None = None) -> tuple[VerifiedFactor, ...]:
        """The factors verified at or after ``not_before`` (freshness: max_age, prompt=login)."""
        if not_before is None:
            return self.factors
        return tuple(f for f in self.factors if f.at >= not_before)

    def level(self, not_before: int | None = None) -> int:
        return level_of(self.counting(not_before))

    def amr(self, not_before: int | None = None) -> list[str]:
        return amr_of(self.counting(not_before))

    def auth_time(self, not_before: int | None = None) -> int | None:
        counted = self.counting(not_before)
        return max((f.at for f in counted), default=None)

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "factors": [f.to_json() for f in self.factors]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuthContext:
        return cls(
            user_id=int(data["user_id"]),
            factors=tuple(VerifiedFactor.from_json(f) for f in data.get("factors", [])),
        )


def merge(factors: Sequence[VerifiedFactor], new: VerifiedFactor) -> list[VerifiedFactor]:
    """Keep the newest verification per factor kind."""
    return [*(f for f in factors if f.kind != new.kind), new]


def level_of(factors: tuple[VerifiedFactor, ...]) -> int:
    """Assurance level (DESIGN.md): 1 one factor, 2 two kinds, 3 phishing-resistant."""
    kinds = {f.kind for f in factors}
    if any(f.phishing_resistant and (f.user_verified or len(kinds) >= 2) for f in factors):
        return LEVEL_PHISHING_RESISTANT
    if len(kinds) >= 2:
        return LEVEL_MULTI_FACTOR
    return LEVEL_ONE_FACTOR if kinds else LEVEL_NONE


def level_of_amr(amr: Sequence[str]) -> int:
    """The level an ``amr`` list (as :func:`amr_of` makes it) proves: what a token's own
    ``amr`` says, whatever its ``acr`` value has come to mean since (a tenant may re-level its
    own acr values). ``mfa`` marks two kinds or a user-verifying key; with a key it is level 3."""
    if "mfa" in amr:
        return LEVEL_PHISHING_RESISTANT if {"hwk", "swk"} & set(amr) else LEVEL_MULTI_FACTOR
    return LEVEL_ONE_FACTOR if amr else LEVEL_NONE


def amr_of(factors: tuple[VerifiedFactor, ...]) -> list[str]:
    """RFC 8176 ``amr`` values, in order of verification, plus ``mfa`` for two kinds or more."""
    values: list[str] = []
    for f in sorted(factors, key=lambda f: f.at):
        values.extend(a for a in f.amr if a not in values)
    if len({f.kind for f in factors}) >= 2 and "mfa" not in values:
        values.append("mfa")
    return values
