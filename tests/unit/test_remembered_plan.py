"""A remembered browser in the planner and the authority (DESIGN.md "Remembered browser").

It lowers the tenant policy's "second factor at every login" (level 2) to level 1 and nothing
else: an application's or a request's level, a fresh-login bound newer than its last real
second factor, re-authentication, a level-3 policy for admins and the binding rule stand.
"""

from __future__ import annotations

import pytest

from flows.assurance import Reason, token_still_counts, verdict
from flows.context import AuthContext, VerifiedFactor
from flows.plan import Pending, may_bind, plan
from flows.policy import MfaMode, Request, Role, TenantPolicy, UserFacts, required_level

NOW = 1_000_000
PWD = VerifiedFactor("password", ("pwd",), NOW - 10)
REQUIRED = TenantPolicy(MfaMode.REQUIRED, enrollable=("totp", "webauthn"))
ALICE = UserFacts(enrolled=("totp:1",), mfa_enabled_by_user=True)
REMEMBERED_AT = NOW - 3 * 86400  # the browser's last real second factor, three days ago


def steps(request: Request, user: UserFacts = ALICE, remembered_at: int | None = REMEMBERED_AT,
          policy: TenantPolicy = REQUIRED) -> list[str]:  # fmt: skip
    return plan(request, policy, user, True, [PWD], now=NOW, remembered_at=remembered_at)


def test_the_waiver_lowers_only_the_policy_part() -> None:
    plain = Request(started_at=NOW - 20)
    assert required_level(REQUIRED, ALICE, plain) == 2
    assert required_level(REQUIRED, ALICE, plain, remembered_at=REMEMBERED_AT) == 1
    assert steps(plain, remembered_at=None) == ["verify_totp"]
    assert steps(plain) == []
    # an application's minimum is not the policy's: it still asks for the second factor
    app = Request(started_at=NOW - 20, app_min_level=2)
    assert required_level(REQUIRED, ALICE, app, remembered_at=REMEMBERED_AT) == 2
    assert steps(app) == ["verify_totp"]


def test_acr_values_loa2_still_plans_the_second_factor() -> None:
    """The key negative test: were the waiver applied to the whole required level (not only
    the policy's part), this request would be planned as complete."""
    asked = Request(started_at=NOW - 20, requested_level=2)
    assert steps(asked) == ["verify_totp"]
    assert steps(Request(started_at=NOW - 20, requested_level=2, essential=True)) == ["verify_totp"]


@pytest.mark.parametrize(
    ("request_", "waived"),
    [
        (Request(started_at=NOW - 20, max_age=86400), False),  # wants one within a day
        (Request(started_at=NOW - 20, max_age=7 * 86400), True),  # a week: three days is fine
        (Request(started_at=NOW - 20, force_fresh=True), False),  # prompt=login, ForceAuthn
    ],
)
def test_a_fresh_login_bound_newer_than_the_last_real_second_factor(
    request_: Request, waived: bool
) -> None:
    fresh_pwd = VerifiedFactor("password", ("pwd",), NOW)
    got = plan(request_, REQUIRED, ALICE, True, [fresh_pwd], now=NOW, remembered_at=REMEMBERED_AT)
    assert got == ([] if waived else ["verify_totp"])


def test_reauthentication_is_never_waived() -> None:
    sudo = Request(started_at=NOW - 20, reauth=True)
    assert required_level(REQUIRED, ALICE, sudo, remembered_at=NOW - 30) == 2
    assert steps(sudo, remembered_at=NOW - 30) == ["verify_totp"]
    # held level, not the policy: even with MFA off for the user, re-auth asks what they hold
    off = TenantPolicy()
    assert steps(sudo, UserFacts(enrolled=("totp:1",)), NOW - 30, off) == ["verify_totp"]


def test_admins_level_three_policy_is_not_waived() -> None:
    policy = TenantPolicy(
        MfaMode.REQUIRED, enrollable=("webauthn",), admins_phishing_resistant=True
    )
    owner = UserFacts(role=Role.OWNER, enrolled=("webauthn:4",))
    plain = Request(started_at=NOW - 20)
    assert required_level(policy, owner, plain, remembered_at=REMEMBERED_AT) == 3
    assert steps(plain, owner, policy=policy) == ["verify_webauthn"]


def test_no_waiver_for_a_user_without_a_second_factor() -> None:
    """Required and nothing enrolled: enrolment stands (a stale record cannot skip it)."""
    assert steps(Request(started_at=NOW - 20), UserFacts()) == ["enroll"]


def test_binding_rule_is_unchanged() -> None:
    """A remembered browser never lets the password alone add a factor."""
    assert not may_bind(ALICE, [PWD], NOW - 300)
    adding = Pending(enrolling="totp")
    got = plan(Request(started_at=NOW - 20), REQUIRED, ALICE, True, [PWD], adding, NOW,
               remembered_at=REMEMBERED_AT)  # fmt: skip
    assert got == ["verify_totp"]


def test_verdict_says_when_the_remembered_browser_made_it_ready() -> None:
    ctx = AuthContext(7, (PWD,))
    plain = Request(started_at=NOW - 20)
    without = verdict(plain, REQUIRED, ALICE, ctx, now=NOW)
    assert without.reason is Reason.LEVEL_MISSING
    found = verdict(plain, REQUIRED, ALICE, ctx, now=NOW, remembered_at=REMEMBERED_AT)
    assert found.ready and found.remembered
    assert found.context is not None and found.context.level() == 1  # never a factor
    assert found.context.amr() == ["pwd"]
    # a session with the second factor verified was ready without it
    totp = VerifiedFactor("totp", ("otp",), NOW - 5)
    full = verdict(plain, REQUIRED, ALICE, AuthContext(7, (PWD, totp)), now=NOW,
                   remembered_at=REMEMBERED_AT)  # fmt: skip
    assert full.ready and not full.remembered
    asked = verdict(Request(started_at=NOW - 20, requested_level=2), REQUIRED, ALICE, ctx,
                    now=NOW, remembered_at=REMEMBERED_AT)  # fmt: skip
    assert asked.reason is Reason.LEVEL_MISSING


def test_a_remembered_family_meets_the_policy_until_a_reset() -> None:
    user = UserFacts()
    auth_time = NOW - 100
    assert token_still_counts(user, 1, auth_time, 2, True) is Reason.LEVEL_MISSING
    assert token_still_counts(user, 1, auth_time, 2, True, remembered=True) is None
    reset = UserFacts(reset_at=NOW - 50)
    assert token_still_counts(reset, 1, auth_time, 2, True, remembered=True) is (
        Reason.LEVEL_MISSING
    )
    revoked = UserFacts(sessions_revoked_at=NOW - 50)
    assert token_still_counts(revoked, 1, auth_time, 2, True, remembered=True) is (
        Reason.NO_SESSION
    )
    # a level-3 policy is not met by a remembered level-1 family
    assert token_still_counts(user, 1, auth_time, 3, True, remembered=True) is (
        Reason.LEVEL_MISSING
    )
