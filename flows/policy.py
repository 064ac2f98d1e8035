"""What a login must achieve: the required level and freshness (DESIGN.md "Policy -> plan").

The required level is the highest of the tenant policy for this user, the application's minimum
and the level the request asks for. Freshness comes from ``max_age`` and ``prompt=login``
(OpenID Connect Core 1.0 section 3.1.2.1) or ForceAuthn (SAML 2.0 core section 3.4.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flows.context import LEVEL_MULTI_FACTOR, LEVEL_ONE_FACTOR, LEVEL_PHISHING_RESISTANT


class MfaMode(StrEnum):
    OFF = "off"
    OPTIONAL = "optional"
    REQUIRED = "required"


class MfaScope(StrEnum):
    ALL = "all"
    ADMINS = "admins"


class Role(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"


@dataclass(frozen=True)
class TenantPolicy:
    """A tenant's MFA policy."""

    mode: MfaMode = MfaMode.OFF
    scope: MfaScope = MfaScope.ALL

    def covers(self, role: Role) -> bool:
        return self.scope is MfaScope.ALL or role in (Role.ADMIN, Role.OWNER)


@dataclass(frozen=True)
class UserFacts:
    """What the planner needs to know about the user being signed in."""

    role: Role = Role.MEMBER
    mfa_required_by_admin: bool = False
    mfa_enabled_by_user: bool = False


def mfa_on(policy: TenantPolicy, user: UserFacts) -> bool:
    """DESIGN.md "Who is asked for a second factor at login"."""
    required = policy.mode is MfaMode.REQUIRED and policy.covers(user.role)
    return required or user.mfa_required_by_admin or user.mfa_enabled_by_user


@dataclass(frozen=True)
class Request:
    """What the relying party asked for, already mapped to levels by the protocol layer."""

    requested_level: int = 0
    app_min_level: int = 0
    max_age: int | None = None
    force_fresh: bool = False
    started_at: int = 0

    def __post_init__(self) -> None:
        for name in ("requested_level", "app_min_level"):
            if not 0 <= getattr(self, name) <= LEVEL_PHISHING_RESISTANT:
                raise ValueError(f"{name} must be between 0 and {LEVEL_PHISHING_RESISTANT}")
        if self.max_age is not None and self.max_age < 0:
            raise ValueError("max_age must not be negative")

    def not_before(self) -> int | None:
        """Earliest verification time that still counts, or None when any age counts."""
        bounds = []
        if self.max_age is not None:
            bounds.append(self.started_at - self.max_age)
        if self.force_fresh:
            bounds.append(self.started_at)
        return max(bounds) if bounds else None

    def to_json(self) -> dict[str, Any]:
        return {
            "requested_level": self.requested_level,
            "app_min_level": self.app_min_level,
            "max_age": self.max_age,
            "force_fresh": self.force_fresh,
            "started_at": self.started_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Request:
        max_age = data.get("max_age")
        return cls(
            requested_level=int(data.get("requested_level", 0)),
            app_min_level=int(data.get("app_min_level", 0)),
            max_age=None if max_age is None else int(max_age),
            force_fresh=bool(data.get("force_fresh", False)),
            started_at=int(data.get("started_at", 0)),
        )


def required_level(policy: TenantPolicy, user: UserFacts | None, request: Request) -> int:
    """The level a login must reach: the highest of policy, application minimum and request."""
    level = max(LEVEL_ONE_FACTOR, request.requested_level, request.app_min_level)
    if user is not None and mfa_on(policy, user):
        level = max(level, LEVEL_MULTI_FACTOR)
    return level
