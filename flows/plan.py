"""The planner: compares what is required with what the session has, and lists missing steps.

It never decides more than the user has earned the right to see: until the password (or
another first factor) has passed, it plans only up to that step, so the plan reveals nothing
about an account's policy to someone who does not know its password.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from factors.kinds import PHISHING_RESISTANT
from flows.context import LEVEL_ONE_FACTOR, LEVEL_PHISHING_RESISTANT, VerifiedFactor, level_of
from flows.errors import NoUsableFactor, UnmetAuthenticationRequirements
from flows.policy import (
    Request,
    TenantPolicy,
    UserFacts,
    held_level,
    kind_of,
    offer_due,
    required_level,
)


@dataclass(frozen=True)
class Pending:
    """What this flow has under way beyond verified factors (from :class:`FlowState`)."""

    choice: str = ""
    enrolling: str = ""
    codes_to_show: bool = False
    offer_skipped: bool = False


def plan(
    request: Request,
    policy: TenantPolicy,
    user: UserFacts | None,
    identified: bool,
    achieved: Sequence[VerifiedFactor],
    pending: Pending | None = None,
    now: int = 0,
    policy_cap: int | None = None,
    remembered_at: int | None = None,
) -> list[str]:
    """Return the steps still missing, in order; ``[]`` when the login is complete.

    ``achieved`` holds the session's factors and this flow's, newest per kind. A voluntary
    request (``acr_values``) that this user cannot reach is dropped: the login aims for what
    policy and application require, and the token says what was achieved. An essential one
    raises :class:`UnmetAuthenticationRequirements`. ``remembered_at``: see
    :func:`flows.policy.required_level` (a remembered browser, never a factor).
    """
    args = (policy, user, identified, achieved, pending, now, policy_cap, remembered_at)
    try:
        return _plan(request, *args)
    except (UnmetAuthenticationRequirements, NoUsableFactor):
        if request.essential or not request.requested_level:
            raise
        return _plan(replace(request, requested_level=0), *args)


def _plan(
    request: Request,
    policy: TenantPolicy,
    user: UserFacts | None,
    identified: bool,
    achieved: Sequence[VerifiedFactor],
    pending: Pending | None = None,
    now: int = 0,
    policy_cap: int | None = None,
    remembered_at: int | None = None,
) -> list[str]:
    pending = pending or Pending()
    if not identified:
        return ["identify", "password"]
    counting = tuple(f for f in achieved if f.at >= (request.not_before() or 0))
    if not any(is_first_factor(f) for f in counting):
        return ["password"]
    have = level_of(counting)
    if pending.codes_to_show:
        return ["backup_codes"]
    since = request.binding_since(now)
    bound = user is None or may_bind(user, achieved, since)
    if pending.enrolling:
        return (
            [f"enroll_{pending.enrolling}"] if bound else _to_bind(user, achieved, since, pending)
        )
    need = required_level(policy, user, request, policy_cap, remembered_at)
    if have >= need:
        due = user is not None and offer_due(policy, user, now) and not pending.offer_skipped
        return ["offer"] if due and bound else []
    if user is None:
        raise UnmetAuthenticationRequirements()
    if need >= LEVEL_PHISHING_RESISTANT:
        return _phishing_resistant(policy, user, pending, achieved, since)
    choice = chosen(user, pending.choice)
    if choice:
        return [f"verify_{kind_of(choice)}"]
    if choices(user):
        return ["choose"]
    if user.held:
        raise NoUsableFactor()
    if policy.enrollable:
        return ["enroll"] if bound else _to_bind(user, achieved, since, pending)
    raise UnmetAuthenticationRequirements()


def is_first_factor(factor: VerifiedFactor) -> bool:
    """A password, or a passkey that verified the user: what a sign-in starts with."""
    return factor.kind == "password" or (factor.phishing_resistant and factor.user_verified)


def may_bind(user: UserFacts, achieved: Sequence[VerifiedFactor], since: int) -> bool:
    """The binding rule (DESIGN.md; NIST SP 800-63B-4 on binding additional authenticators):
    factors verified since ``since`` reach the highest level the user already holds, and
    include a first factor."""
    fresh = tuple(f for f in achieved if f.at >= since)
    return any(is_first_factor(f) for f in fresh) and level_of(fresh) >= held_level(user)


def _to_bind(
    user: UserFacts | None, achieved: Sequence[VerifiedFactor], since: int, pending: Pending
) -> list[str]:
    """The step that makes binding possible: the password again when no first factor is
    fresh enough, else an existing factor at the user's highest level."""
    if user is None:
        raise UnmetAuthenticationRequirements()
    if not any(is_first_factor(f) for f in achieved if f.at >= since):
        return ["password"]
    held = held_level(user)
    if held >= LEVEL_PHISHING_RESISTANT:
        return ["verify_webauthn"]
    if held <= LEVEL_ONE_FACTOR:
        return ["password"]
    choice = chosen(user, pending.choice)
    if choice:
        return [f"verify_{kind_of(choice)}"]
    if choices(user):
        return ["choose"]
    raise NoUsableFactor()


def _phishing_resistant(
    policy: TenantPolicy,
    user: UserFacts,
    pending: Pending,
    achieved: Sequence[VerifiedFactor],
    since: int,
) -> list[str]:
    """Level 3: only WebAuthn will do (DESIGN.md "Assurance levels"). A user with another
    second factor but no key verifies that factor first, then enrols a key."""
    if user.holds_phishing_resistant:
        return ["verify_webauthn"]
    if not any(k in policy.enrollable for k in PHISHING_RESISTANT):
        raise UnmetAuthenticationRequirements()
    if may_bind(user, achieved, since):
        return ["enroll_phishing_resistant"]
    return _to_bind(user, achieved, since, pending)


def choices(user: UserFacts) -> tuple[str, ...]:
    """What the user may verify with: each verifiable enrolled factor, then backup codes."""
    if not user.held:
        return ()
    return (*user.enrolled, "backup") if user.has_backup_codes else user.enrolled


def chosen(user: UserFacts, choice: str) -> str:
    """The factor to ask for: this flow's choice, else the last used, else the only one."""
    options = choices(user)
    for candidate in (choice, user.last_factor):
        if candidate and candidate in options:
            return candidate
    return user.enrolled[0] if len(user.enrolled) == 1 else ""
