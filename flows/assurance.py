"""The assurance authority (DESIGN.md "Core ideas"): the one place that says which of a
session's factors still count, what level the session holds, and whether it is ready for a
request, or why not.

OIDC authorization, refresh and introspection, SAML SSO, the account page, the console and
the resource-server helper all ask here; each protocol maps the :class:`Reason` values to its
own error codes with one table. ``acr``, ``amr`` and ``auth_time`` come from
:func:`counted` only. Pure Python: the caller passes the user's facts and the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flows.context import LEVEL_MULTI_FACTOR, LEVEL_ONE_FACTOR, AuthContext, VerifiedFactor
from flows.errors import NoUsableFactor, UnmetAuthenticationRequirements
from flows.plan import Pending, plan
from flows.policy import Request, TenantPolicy, UserFacts


class Reason(StrEnum):
    """Why a session is not ready for a request."""

    NO_SESSION = "no_session"  # nobody signed in, or nothing the session proved still counts
    USER_INACTIVE = "user_inactive"  # the user is disabled or locked
    FRESH_LOGIN = "fresh_login"  # max_age, prompt=login, ForceAuthn or re-authentication
    LEVEL_MISSING = "level_missing"  # more factors are needed, and the user can give them
    CONSENT_NEEDED = "consent_needed"  # the user has not allowed this application
    UNMET = "unmet"  # this user cannot reach what is asked


@dataclass(frozen=True)
class Verdict:
    """The answer for one request: ready, or the reasons it is not (most important first)."""

    context: AuthContext | None  # the counted factors only
    reasons: tuple[Reason, ...] = ()
    # Ready only because a remembered browser stood in for the policy's second factor (the
    # context still says what was verified; OIDC marks the token family with it).
    remembered: bool = False

    @property
    def ready(self) -> bool:
        return not self.reasons

    @property
    def reason(self) -> Reason | None:
        return self.reasons[0] if self.reasons else None


def still_counts(factor: VerifiedFactor, user: UserFacts, reset_applies: bool) -> bool:
    """Whether a verification the session holds still counts for ``user`` as they are now.

    Everything verified before a disable or a sign-out everywhere stops counting; second
    factors verified before an admin's MFA reset stop counting when the tenant applies policy
    changes at once (``reset_applies``)."""
    if user.sessions_revoked_at is not None and factor.at <= user.sessions_revoked_at:
        return False
    if reset_applies and user.reset_at is not None and factor.kind != "password":
        return factor.at > user.reset_at
    return True


def counted(ctx: AuthContext, user: UserFacts, reset_applies: bool) -> AuthContext:
    """The session's context reduced to the factors that still count."""
    kept = tuple(f for f in ctx.factors if still_counts(f, user, reset_applies))
    return AuthContext(ctx.user_id, kept)


def verdict(
    request: Request,
    policy: TenantPolicy,
    user: UserFacts | None,
    ctx: AuthContext | None,
    *,
    now: int,
    reset_applies: bool = False,
    policy_cap: int | None = None,
    forced: bool = False,
    consent_needed: bool = False,
    remembered_at: int | None = None,
) -> Verdict:
    """Is this session ready for ``request``? ``user`` is the session's user (None when the
    session has none in this tenant); ``forced``: the request demands a login that has not
    happened yet (prompt=login, max_age=0, ForceAuthn before the login); ``remembered_at``:
    the session signed in on a remembered browser that still counts
    (:func:`flows.policy.required_level`)."""
    if ctx is None or user is None:
        return Verdict(None, (Reason.NO_SESSION,))
    standing = counted(ctx, user, reset_applies)
    if user.status != "active":
        return Verdict(standing, (Reason.USER_INACTIVE,))
    if not standing.factors:
        return Verdict(standing, (Reason.NO_SESSION,))
    if forced:
        return Verdict(standing, (Reason.FRESH_LOGIN,))
    probe = Pending(offer_skipped=True)
    args = (request, policy, user, True, standing.factors, probe, now, policy_cap)
    try:
        steps = plan(*args, remembered_at)
    except UnmetAuthenticationRequirements:
        return Verdict(standing, (Reason.UNMET,))
    except NoUsableFactor:  # the login flow shows the page that sends them to an admin
        return Verdict(standing, (Reason.LEVEL_MISSING,))
    if steps == ["password"]:
        return Verdict(standing, (Reason.FRESH_LOGIN,))
    if steps:
        return Verdict(standing, (Reason.LEVEL_MISSING,))
    if consent_needed:
        return Verdict(standing, (Reason.CONSENT_NEEDED,))
    return Verdict(standing, remembered=remembered_at is not None and not _ready(args))


def _ready(args: tuple[Request, TenantPolicy, UserFacts, bool, tuple[VerifiedFactor, ...],
                       Pending, int, int | None]) -> bool:  # fmt: skip
    """Whether the plan is met without a remembered browser."""
    try:
        return not plan(*args)
    except (UnmetAuthenticationRequirements, NoUsableFactor):
        return False


def token_still_counts(
    user: UserFacts | None,
    level: int,
    auth_time: int,
    policy_level: int,
    reset_applies: bool,
    remembered: bool = False,
) -> Reason | None:
    """For a token family (refresh, introspection): None while the authentication it froze
    at ``auth_time`` (with ``level``) still counts for ``user``, else why not.

    ``remembered``: the family's sign-in met the policy's second factor through a remembered
    browser. Level 1 then still meets a level-2 policy (as it did at the sign-in), but like a
    second factor the family ends at an admin's MFA reset (applied at once)."""
    if user is None or user.status != "active":
        return Reason.USER_INACTIVE
    if user.sessions_revoked_at is not None and auth_time <= user.sessions_revoked_at:
        return Reason.NO_SESSION
    waived = remembered and policy_level == LEVEL_MULTI_FACTOR
    needed = LEVEL_ONE_FACTOR if waived else policy_level
    if reset_applies and level < needed:
        return Reason.LEVEL_MISSING
    second = level > LEVEL_ONE_FACTOR or remembered
    if reset_applies and second and user.reset_at is not None and auth_time <= user.reset_at:
        return Reason.LEVEL_MISSING
    return None


def token_meets(
    level: int, auth_time: object, wanted_level: int, max_age: int | None, now: int
) -> Reason | None:
    """For a resource server (RFC 9470 section 3): None when an access token's ``level``
    (from its ``acr``) and ``auth_time`` meet the route's need, else why not."""
    if level < wanted_level:
        return Reason.LEVEL_MISSING
    if max_age is not None and (not isinstance(auth_time, int) or now - auth_time > max_age):
        return Reason.FRESH_LOGIN
    return None
