"""Who is asked what, for every MFA policy combination: the planner and the assurance authority
decide it, so the matrix runs here as plain values (no Flask, no database, no mail or SMS).

The matrix is the tenant's mode (off, optional, required) x scope (all, admins) x the per-user
requirement (an admin's "require MFA") x the user (alice, a member; olivia, an owner), as
tests/web/test_mfa_policy.py sets it up: no factor enrolled, no backup codes, the tenant's
default factors allowed, and every sender present.

Mapping from the end-to-end version (tests/web/test_mfa_policy.py keeps a few of each):

``test_who_is_asked_what_after_the_password`` (24 cases, a fresh login with the password)
  - web: the step shown after the password is ``enroll``  ->  here: ``plan`` is ``["enroll"]``
  - web: the step shown is ``offer``                     ->  here: ``plan`` is ``["offer"]``
  - web: no step, the browser is redirected (finished)   ->  here: ``plan`` is ``[]``
  - web: a Skip button (``value="skip"``) only on offer  ->  here: the registry's step of that
    name is ``skippable`` exactly when it is ``offer``

``test_a_signed_in_session_after_a_policy_change`` (48 cases: the 24 x apply next_login or
immediate, for a session signed in under mode off, so at policy level 1)
  - web: the account page answers 200                    ->  here: the authority's verdict on
    the session (``verdict``, as ``idp.login.planning.standing_flow`` asks it) is ready
  - web: 302 to a login flow whose step is ``enroll``    ->  here: the verdict is not ready,
    for ``level_missing``, and the plan of the new flow, seeded with the session's standing
    factors (as ``idp.login.planning.plan_for`` does), is ``["enroll"]``
  - web: next_login keeps the session at the level it signed in under (the ``policy_level``
    kept in the session) -> here: ``policy_cap=1``; immediate -> ``policy_cap=None`` and
    ``reset_applies=True`` (``idp.assurance.policy_cap`` and ``reset_applies``)
"""

from __future__ import annotations

import pytest

from flows.assurance import Reason, verdict
from flows.context import LEVEL_ONE_FACTOR, AuthContext, VerifiedFactor
from flows.plan import Pending, plan
from flows.policy import MfaApply, MfaMode, MfaScope, Request, Role, TenantPolicy, UserFacts
from flows.registry import registry

NOW = 1_700_000_000
USERS = {"alice": Role.MEMBER, "olivia": Role.OWNER}
# The tenant's default factors (idp.store.models.Tenant.mfa_factors), all deliverable: the web
# tests run with real SMTP and SMS servers.
ENROLLABLE = ("totp", "webauthn", "sms", "email")

CASES = [
    (mode, scope, per_user, username)
    for mode in ("off", "optional", "required")
    for scope in ("all", "admins")
    for per_user in (False, True)
    for username in ("alice", "olivia")
]


def expected_step(mode: str, scope: str, per_user: bool, username: str) -> str | None:
    """The step after the password: the same expectation as the end-to-end test had."""
    covered = scope == "all" or username == "olivia"
    if per_user or (mode == "required" and covered):
        return "enroll"
    if mode == "optional" and covered:
        return "offer"
    return None


def policy_of(mode: str, scope: str) -> TenantPolicy:
    return TenantPolicy(mode=MfaMode(mode), scope=MfaScope(scope), enrollable=ENROLLABLE)


def facts_of(username: str, per_user: bool) -> UserFacts:
    """A user with no second factor and no backup codes; ``per_user``: an admin required MFA."""
    return UserFacts(role=USERS[username], mfa_required_by_admin=per_user)


def password_at(at: int) -> VerifiedFactor:
    return VerifiedFactor("password", ("pwd",), at)


def test_the_matrix_has_every_combination_once() -> None:
    assert len(CASES) == len(set(CASES)) == 24
    assert {expected_step(*case) for case in CASES} == {"enroll", "offer", None}


@pytest.mark.parametrize(("mode", "scope", "per_user", "username"), CASES)
def test_who_is_asked_what_after_the_password(
    mode: str, scope: str, per_user: bool, username: str
) -> None:
    request = Request(started_at=NOW - 5)  # the login began a moment ago
    steps = plan(
        request,
        policy_of(mode, scope),
        facts_of(username, per_user),
        True,
        [password_at(NOW - 2)],
        Pending(),
        NOW,
    )
    want = expected_step(mode, scope, per_user, username)
    assert steps == ([] if want is None else [want]), (mode, scope, per_user, username)
    if want is not None:
        step = registry(lambda _state: policy_of(mode, scope))[want]
        assert getattr(step, "skippable", None) is (want == "offer")


@pytest.mark.parametrize("apply", ["next_login", "immediate"])
@pytest.mark.parametrize(("mode", "scope", "per_user", "username"), CASES)
def test_a_signed_in_session_after_a_policy_change(
    mode: str, scope: str, per_user: bool, username: str, apply: str
) -> None:
    # Signed in with the password half a minute ago under mode off (policy level 1), as the web
    # test's session is: within the binding window, so enrolment needs no password again.
    session = AuthContext(1, (password_at(NOW - 30),))
    immediate = MfaApply(apply) is MfaApply.IMMEDIATE
    cap = None if immediate else LEVEL_ONE_FACTOR
    policy, user = policy_of(mode, scope), facts_of(username, per_user)
    request = Request(started_at=NOW)  # what the account page's check asks
    found = verdict(
        request, policy, user, session, now=NOW, reset_applies=immediate, policy_cap=cap
    )
    # Only a requirement reaches a running session, and only when it applies immediately;
    # the optional offer waits for a login either way.
    must_enrol = immediate and expected_step(mode, scope, per_user, username) == "enroll"
    if not must_enrol:
        assert found.ready, (found.reasons, mode, scope, per_user, username, apply)
        return
    assert found.reasons == (Reason.LEVEL_MISSING,)
    assert found.context is not None
    steps = plan(request, policy, user, True, found.context.factors, Pending(), NOW, cap)
    assert steps == ["enroll"]  # the password is not asked again: only what is missing
