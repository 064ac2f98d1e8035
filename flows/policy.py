"""What a login must achieve: the required level and freshness (DESIGN.md "Policy -> plan").

The required level is the highest of the tenant policy for this user, the application's minimum
and the level the request asks for. Freshness comes from ``max_age`` and ``prompt=login``
(OpenID Connect Core 1.0 section 3.1.2.1) or ForceAuthn (SAML 2.0 core section 3.4.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from factors import kinds
from flows.context import (
    LEVEL_MULTI_FACTOR,
    LEVEL_ONE_FACTOR,
    LEVEL_PHISHING_RESISTANT,
)


class MfaMode(StrEnum):
    OFF = "off"
    OPTIONAL = "optional"
    REQUIRED = "required"


class MfaScope(StrEnum):
    ALL = "all"
    ADMINS = "admins"


class MfaApply(StrEnum):
    """When a stricter policy reaches users who are already signed in."""

    NEXT_LOGIN = "next_login"
    IMMEDIATE = "immediate"


SECOND_FACTORS = kinds.ALLOWABLE  # what a tenant can allow
DAY = 86400


class Role(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"


@dataclass(frozen=True)
class TenantPolicy:
    """A tenant's MFA policy."""

    mode: MfaMode = MfaMode.OFF
    scope: MfaScope = MfaScope.ALL
    # The second factors users may enrol now: the tenant's allowed kinds that this deployment
    # can deliver (no SMS without an SMS sender). Backup codes come with any of them.
    enrollable: tuple[str, ...] = ("totp",)
    reoffer_days: int = 7
    totp_two_codes: bool = False
    admins_phishing_resistant: bool = False  # admins and owners need level 3 (WebAuthn)

    def covers(self, role: Role) -> bool:
        return self.scope is MfaScope.ALL or is_admin(role)


@dataclass(frozen=True)
class UserFacts:
    """What the planner needs to know about the user being signed in."""

    role: Role = Role.MEMBER
    mfa_required_by_admin: bool = False
    mfa_enabled_by_user: bool = False
    # Enrolled second factors that can be verified now, as choices ``kind:id`` (``totp:3``),
    # whether or not the tenant still allows their kind (issue 12: they still count).
    enrolled: tuple[str, ...] = field(default_factory=tuple)
    # Kinds of enrolled factors that cannot be verified now (SMS or email with no sender):
    # they still count as held, so they are never replaced by an enrolment after a password.
    unverifiable: tuple[str, ...] = field(default_factory=tuple)
    has_backup_codes: bool = False
    last_factor: str = ""
    skipped_offer_at: int | None = None
    status: str = "active"  # active, disabled or locked
    reset_at: int | None = None  # an admin's MFA reset
    sessions_revoked_at: int | None = None  # disable or sign-out everywhere

    @property
    def held(self) -> frozenset[str]:
        """Every kind of second factor the user holds, verifiable or not."""
        return frozenset({kind_of(c) for c in self.enrolled} | set(self.unverifiable))

    @property
    def holds_phishing_resistant(self) -> bool:
        """The user holds a factor that reaches level 3 (a WebAuthn credential)."""
        return any(k in self.held for k in kinds.PHISHING_RESISTANT)

    @property
    def has_second_factor(self) -> bool:
        return bool(self.held) or self.has_backup_codes


def held_level(user: UserFacts) -> int:
    """The highest level the user's enrolled factors reach (DESIGN.md "Binding rule"): 3 with
    a WebAuthn credential, 2 with any other second factor or backup codes, else 1."""
    if user.holds_phishing_resistant:
        return LEVEL_PHISHING_RESISTANT
    return LEVEL_MULTI_FACTOR if user.has_second_factor else LEVEL_ONE_FACTOR


def kind_of(choice: str) -> str:
    """``totp:3`` -> ``totp``; ``backup`` -> ``backup``."""
    return choice.partition(":")[0]


def offer_due(policy: TenantPolicy, user: UserFacts, now: int) -> bool:
    """Optional mode: offer enrolment to a covered user without a factor, again after a while."""
    if policy.mode is not MfaMode.OPTIONAL or not policy.covers(user.role):
        return False
    if user.has_second_factor or not policy.enrollable or mfa_on(policy, user):
        return False
    return user.skipped_offer_at is None or now - user.skipped_offer_at >= policy.reoffer_days * DAY


def is_admin(role: Role) -> bool:
    return role in (Role.ADMIN, Role.OWNER)


def mfa_required(policy: TenantPolicy, user: UserFacts) -> bool:
    """The tenant's Required mode covers the user, or an admin turned MFA on for them, or the
    tenant asks phishing-resistant MFA of its admins."""
    by_tenant = policy.mode is MfaMode.REQUIRED and policy.covers(user.role)
    phishing_resistant = policy.admins_phishing_resistant and is_admin(user.role)
    return by_tenant or user.mfa_required_by_admin or phishing_resistant


def mfa_on(policy: TenantPolicy, user: UserFacts) -> bool:
    """DESIGN.md "Who is asked for a second factor at login"."""
    return mfa_required(policy, user) or user.mfa_enabled_by_user


@dataclass(frozen=True)
class Request:
    """What the relying party asked for, already mapped to levels by the protocol layer."""

    requested_level: int = 0
    essential: bool = False  # the requested level must be met (else unmet, not lower)
    app_min_level: int = 0
    max_age: int | None = None
    force_fresh: bool = False
    started_at: int = 0
    # Sensitive account changes (DESIGN.md "Sensitive actions"): re-authentication at the
    # account's level, every counted factor verified at most ``reauth_max_age`` seconds
    # before the request. The same window bounds binding a new factor (flows.plan).
    reauth: bool = False
    reauth_max_age: int = 300

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
        if self.reauth:
            bounds.append(self.started_at - self.reauth_max_age)
        return max(bounds) if bounds else None

    def binding_since(self, now: int) -> int:
        """Factors verified since then may bind a new one: in this flow (since the request
        began) or within the re-authentication window."""
        return min(self.started_at, now - self.reauth_max_age)

    def to_json(self) -> dict[str, Any]:
        return {
            "requested_level": self.requested_level,
            "essential": self.essential,
            "app_min_level": self.app_min_level,
            "max_age": self.max_age,
            "force_fresh": self.force_fresh,
            "started_at": self.started_at,
            "reauth": self.reauth,
            "reauth_max_age": self.reauth_max_age,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Request:
        max_age = data.get("max_age")
        return cls(
            requested_level=int(data.get("requested_level", 0)),
            essential=bool(data.get("essential", False)),
            app_min_level=int(data.get("app_min_level", 0)),
            max_age=None if max_age is None else int(max_age),
            force_fresh=bool(data.get("force_fresh", False)),
            started_at=int(data.get("started_at", 0)),
            reauth=bool(data.get("reauth", False)),
            reauth_max_age=int(data.get("reauth_max_age", 300)),
        )


def policy_level(policy: TenantPolicy, user: UserFacts) -> int:
    """The level the tenant policy alone asks of this user."""
    if policy.admins_phishing_resistant and is_admin(user.role):
        return LEVEL_PHISHING_RESISTANT
    return LEVEL_MULTI_FACTOR if mfa_on(policy, user) else LEVEL_ONE_FACTOR


def remembered_counts(request: Request, remembered_at: int | None) -> bool:
    """Whether a remembered browser whose last real second factor was at ``remembered_at``
    may stand in for the policy's second factor on ``request`` (DESIGN.md "Remembered
    browser"): never for re-authentication, nor when the request wants a second factor newer
    than that one (``max_age``, ``prompt=login``, ForceAuthn)."""
    if remembered_at is None or request.reauth:
        return False
    not_before = request.not_before()
    return not_before is None or remembered_at >= not_before


def required_level(
    policy: TenantPolicy,
    user: UserFacts | None,
    request: Request,
    policy_cap: int | None = None,
    remembered_at: int | None = None,
) -> int:
    """The level a login must reach: the highest of policy, application minimum and request.

    ``policy_cap`` limits the policy's part for a session that began under an older policy
    which is to apply only from the next login (:class:`MfaApply`).

    ``remembered_at``: this browser is remembered for the user (a live record, checked by the
    caller after the password), with its last real second factor at that time. It lowers the
    policy's "second factor at every login" (level 2) to level 1 when
    :func:`remembered_counts`, and nothing else: an application's or a request's level, a
    re-authentication and a level-3 policy for admins stand. It is never a factor, so the
    session's level stays what was verified.
    """
    level = max(LEVEL_ONE_FACTOR, request.requested_level, request.app_min_level)
    if user is not None and request.reauth:
        level = max(level, held_level(user))
    if user is not None:
        from_policy = policy_level(policy, user)
        if policy_cap is not None:
            from_policy = min(from_policy, max(LEVEL_ONE_FACTOR, policy_cap))
        if from_policy == LEVEL_MULTI_FACTOR and user.has_second_factor:
            if remembered_counts(request, remembered_at):
                from_policy = LEVEL_ONE_FACTOR
        level = max(level, from_policy)
    return level
