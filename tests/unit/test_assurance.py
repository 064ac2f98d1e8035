"""The assurance authority (flows.assurance) as a matrix: every second-factor kind x allowed
or not x requested level 1-3 x MFA on or off x user status, once with only the password
verified and once with the password and that factor. The expectations are written from the
rules of DESIGN.md, not computed the way the code computes them."""

from __future__ import annotations

from itertools import product

import pytest

from flows.assurance import Reason, counted, token_still_counts, verdict
from flows.context import AuthContext, VerifiedFactor
from flows.plan import Pending, plan
from flows.policy import MfaMode, Request, TenantPolicy, UserFacts

NOW = 1_800_000_000
KINDS = ("totp", "sms", "email", "webauthn")
AMR = {"totp": ("otp",), "sms": ("sms",), "email": ("otp",), "webauthn": ("hwk", "user")}
PASSWORD = VerifiedFactor("password", ("pwd",), NOW - 10)


def second(kind: str, at: int = NOW - 5) -> VerifiedFactor:
    webauthn = kind == "webauthn"
    return VerifiedFactor(kind, AMR[kind], at, webauthn, webauthn)


def policy_for(kind: str, allowed: bool) -> TenantPolicy:
    others = tuple(k for k in KINDS if k != kind)
    return TenantPolicy(mode=MfaMode.OPTIONAL, enrollable=KINDS if allowed else others)


def user_with(kind: str, mfa_on: bool, status: str = "active") -> UserFacts:
    return UserFacts(enrolled=(f"{kind}:1",), has_backup_codes=True, mfa_enabled_by_user=mfa_on,
                     status=status)  # fmt: skip


def request(level: int) -> Request:
    return Request(requested_level=level, essential=level > 1, started_at=NOW - 20)


MATRIX = list(product(KINDS, (True, False), (1, 2, 3), (True, False),
                      ("active", "disabled", "locked")))  # fmt: skip


@pytest.mark.parametrize(("kind", "allowed", "level", "mfa_on", "status"), MATRIX)
def test_password_only_session(
    kind: str, allowed: bool, level: int, mfa_on: bool, status: str
) -> None:
    user = user_with(kind, mfa_on, status)
    ctx = AuthContext(7, (PASSWORD,))
    found = verdict(request(level), policy_for(kind, allowed), user, ctx, now=NOW)
    need = max(level, 2 if mfa_on else 1)
    if status != "active":
        assert found.reasons == (Reason.USER_INACTIVE,)
    elif need == 1:
        assert found.ready and found.context is not None and found.context.level() == 1
    else:  # the factor the user holds is asked for, whether its kind is still allowed or not
        assert found.reasons == (Reason.LEVEL_MISSING,)
    if status == "active" and need > 1:
        steps = plan(request(level), policy_for(kind, allowed), user, True, [PASSWORD],
                     Pending(), NOW)  # fmt: skip
        # The binding rule: never an enrolment after the password alone.
        assert steps == [f"verify_{kind}"], steps


@pytest.mark.parametrize(("kind", "allowed", "level", "mfa_on", "status"), MATRIX)
def test_password_and_second_factor_session(
    kind: str, allowed: bool, level: int, mfa_on: bool, status: str
) -> None:
    user = user_with(kind, mfa_on, status)
    ctx = AuthContext(7, (PASSWORD, second(kind)))
    found = verdict(request(level), policy_for(kind, allowed), user, ctx, now=NOW)
    held = 3 if kind == "webauthn" else 2
    if status != "active":
        assert found.reasons == (Reason.USER_INACTIVE,)
    elif level <= held:
        assert found.ready and found.context is not None and found.context.level() == held
    else:  # level 3 with TOTP, SMS or email: verified, so a key may now be bound
        assert found.reasons == (Reason.LEVEL_MISSING,)
        steps = plan(request(level), policy_for(kind, allowed), user, True,
                     [PASSWORD, second(kind)], Pending(), NOW)  # fmt: skip
        assert steps == ["enroll_phishing_resistant"]


def test_level_three_without_webauthn_in_the_tenant_is_unmet() -> None:
    user = user_with("totp", False)
    no_keys = TenantPolicy(enrollable=("totp",))
    found = verdict(request(3), no_keys, user, AuthContext(7, (PASSWORD,)), now=NOW)
    assert found.reasons == (Reason.UNMET,)


def test_an_enrolment_waits_for_the_highest_level_held() -> None:
    key_holder = user_with("webauthn", False)
    adding = Pending(enrolling="totp")
    policy = policy_for("webauthn", True)
    steps = plan(request(1), policy, key_holder, True, [PASSWORD], adding, NOW)
    assert steps == ["verify_webauthn"]
    totp_holder = user_with("totp", False)
    steps = plan(request(1), policy, totp_holder, True, [PASSWORD], adding, NOW)
    assert steps == ["verify_totp"]
    fresh = [PASSWORD, second("totp")]
    assert plan(request(1), policy, totp_holder, True, fresh, adding, NOW) == ["enroll_totp"]
    # An old verification does not bind: it must be in this flow or within the window.
    old = [PASSWORD, second("totp", NOW - 3600)]
    assert plan(request(1), policy, totp_holder, True, old, adding, NOW) == ["verify_totp"]


def test_factors_that_cannot_be_verified_send_the_user_to_an_admin() -> None:
    from flows.errors import NoUsableFactor

    stranded = UserFacts(unverifiable=("sms",), mfa_enabled_by_user=True)
    with pytest.raises(NoUsableFactor):
        plan(request(1), policy_for("sms", True), stranded, True, [PASSWORD], Pending(), NOW)
    with_codes = UserFacts(unverifiable=("sms",), has_backup_codes=True, mfa_enabled_by_user=True)
    steps = plan(request(1), policy_for("sms", True), with_codes, True, [PASSWORD], Pending(), NOW)
    assert steps == ["choose"]


def test_reauthentication_needs_the_accounts_level_within_the_window() -> None:
    user = user_with("totp", False)
    sudo = Request(started_at=NOW, reauth=True, reauth_max_age=300)
    policy = policy_for("totp", True)
    stale = AuthContext(
        7, (VerifiedFactor("password", ("pwd",), NOW - 600), second("totp", NOW - 600))
    )
    assert verdict(sudo, policy, user, stale, now=NOW).reasons == (Reason.FRESH_LOGIN,)
    password_only = AuthContext(7, (PASSWORD,))
    assert verdict(sudo, policy, user, password_only, now=NOW).reasons == (Reason.LEVEL_MISSING,)
    both = AuthContext(7, (PASSWORD, second("totp")))
    assert verdict(sudo, policy, user, both, now=NOW).ready


def test_counted_drops_what_a_disable_or_an_immediate_reset_ended() -> None:
    ctx = AuthContext(7, (PASSWORD, second("totp")))
    reset = UserFacts(reset_at=NOW - 5)
    assert [f.kind for f in counted(ctx, reset, True).factors] == ["password"]
    assert [f.kind for f in counted(ctx, reset, False).factors] == ["password", "totp"]
    revoked = UserFacts(sessions_revoked_at=NOW)
    assert counted(ctx, revoked, False).factors == ()
    found = verdict(request(1), TenantPolicy(), revoked, ctx, now=NOW)
    assert found.reasons == (Reason.NO_SESSION,)
    assert verdict(request(1), TenantPolicy(), None, None, now=NOW).reasons == (Reason.NO_SESSION,)


def test_forced_login_and_consent_are_reasons_too() -> None:
    ctx = AuthContext(7, (PASSWORD,))
    user = UserFacts()
    forced = verdict(request(1), TenantPolicy(), user, ctx, now=NOW, forced=True)
    assert forced.reasons == (Reason.FRESH_LOGIN,)
    consent = verdict(request(1), TenantPolicy(), user, ctx, now=NOW, consent_needed=True)
    assert consent.reasons == (Reason.CONSENT_NEEDED,)


@pytest.mark.parametrize(
    ("facts", "level", "auth_time", "policy_level", "immediate", "expected"),
    [
        (UserFacts(), 2, NOW, 2, True, None),
        (UserFacts(status="disabled"), 2, NOW, 1, False, Reason.USER_INACTIVE),
        (None, 1, NOW, 1, False, Reason.USER_INACTIVE),
        (UserFacts(sessions_revoked_at=NOW), 2, NOW, 1, False, Reason.NO_SESSION),
        (UserFacts(), 1, NOW, 2, True, Reason.LEVEL_MISSING),
        (UserFacts(), 1, NOW, 2, False, None),
        (UserFacts(reset_at=NOW), 2, NOW - 1, 1, True, Reason.LEVEL_MISSING),
        (UserFacts(reset_at=NOW), 2, NOW - 1, 1, False, None),
    ],
)
def test_token_families_follow_the_user(
    facts: UserFacts | None,
    level: int,
    auth_time: int,
    policy_level: int,
    immediate: bool,
    expected: Reason | None,
) -> None:
    assert token_still_counts(facts, level, auth_time, policy_level, immediate) == expected


def test_binding_asks_the_password_again_when_it_is_not_fresh() -> None:
    user = user_with("totp", False)
    policy = policy_for("totp", True)
    old = VerifiedFactor("password", ("pwd",), NOW - 3600)
    assert plan(request(3), policy, user, True, [old], Pending(), NOW) == ["password"]
    assert plan(request(3), policy, user, True, [PASSWORD], Pending(), NOW) == ["verify_totp"]
    both = [PASSWORD, second("totp")]
    assert plan(request(3), policy, user, True, both, Pending(), NOW) == [
        "enroll_phishing_resistant"
    ]


def test_a_voluntary_level_falls_back_when_no_factor_can_be_verified() -> None:
    stranded = UserFacts(unverifiable=("sms",))
    voluntary = Request(requested_level=2, started_at=NOW - 20)
    assert (
        plan(voluntary, policy_for("sms", True), stranded, True, [PASSWORD], Pending(), NOW) == []
    )
