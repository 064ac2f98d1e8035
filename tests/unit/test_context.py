from hypothesis import given
from hypothesis import strategies as st

from flows.context import AuthContext, VerifiedFactor, amr_of, level_of, level_of_amr
from flows.policy import (
    MfaMode,
    MfaScope,
    Request,
    Role,
    TenantPolicy,
    UserFacts,
    mfa_on,
    required_level,
)

PWD = VerifiedFactor("password", ("pwd",), 100)
OTP = VerifiedFactor("totp", ("otp",), 200)
KEY = VerifiedFactor("webauthn", ("hwk",), 300, phishing_resistant=True)
PASSKEY = VerifiedFactor(
    "webauthn", ("hwk", "user"), 300, phishing_resistant=True, user_verified=True
)


def test_levels_follow_design() -> None:
    assert level_of(()) == 0
    assert level_of((PWD,)) == 1
    assert level_of((PWD, OTP)) == 2
    assert level_of((KEY,)) == 1
    assert level_of((PWD, KEY)) == 3
    assert level_of((PASSKEY,)) == 3


def test_amr_in_order_with_mfa() -> None:
    assert amr_of((OTP, PWD)) == ["pwd", "otp", "mfa"]
    assert amr_of((PWD,)) == ["pwd"]


def test_freshness_drops_old_factors() -> None:
    ctx = AuthContext(1).with_factor(PWD).with_factor(OTP)
    assert ctx.level() == 2 and ctx.auth_time() == 200
    assert ctx.level(not_before=150) == 1 and ctx.auth_time(not_before=150) == 200
    assert ctx.level(not_before=250) == 0 and ctx.auth_time(not_before=250) is None


def test_context_round_trips_through_json_and_keeps_newest_per_kind() -> None:
    ctx = AuthContext(7).with_factor(PWD).with_factor(VerifiedFactor("password", ("pwd",), 999))
    assert [f.at for f in ctx.factors] == [999]
    assert AuthContext.from_json(ctx.to_json()) == ctx


def test_request_freshness_bound() -> None:
    assert Request(started_at=1000).not_before() is None
    assert Request(max_age=60, started_at=1000).not_before() == 940
    assert Request(max_age=60, force_fresh=True, started_at=1000).not_before() == 1000


def test_who_has_mfa_on() -> None:
    required_admins = TenantPolicy(MfaMode.REQUIRED, MfaScope.ADMINS)
    assert not mfa_on(required_admins, UserFacts(Role.MEMBER))
    assert mfa_on(required_admins, UserFacts(Role.OWNER))
    assert mfa_on(TenantPolicy(), UserFacts(mfa_required_by_admin=True))
    assert mfa_on(TenantPolicy(), UserFacts(mfa_enabled_by_user=True))
    assert not mfa_on(TenantPolicy(MfaMode.OPTIONAL), UserFacts())


def test_required_level_is_the_highest_demand() -> None:
    off = TenantPolicy()
    assert required_level(off, UserFacts(), Request()) == 1
    assert required_level(off, UserFacts(), Request(app_min_level=2)) == 2
    assert required_level(off, UserFacts(), Request(requested_level=3, app_min_level=2)) == 3
    assert required_level(TenantPolicy(MfaMode.REQUIRED), UserFacts(), Request()) == 2


FACTORS = [
    VerifiedFactor("password", ("pwd",), 1),
    VerifiedFactor("totp", ("otp",), 2),
    VerifiedFactor("sms", ("sms",), 3),
    VerifiedFactor("email", ("otp",), 4),
    VerifiedFactor("backup", ("otp",), 5),
    VerifiedFactor("webauthn", ("hwk", "user"), 6, True, False),
    VerifiedFactor("webauthn", ("swk", "user", "pin", "mfa"), 7, True, True),
    VerifiedFactor("webauthn", ("hwk", "user", "pin", "mfa"), 8, True, True),
]


@given(st.lists(st.sampled_from(FACTORS), max_size=4))
def test_a_tokens_amr_proves_exactly_the_level_its_factors_hold(
    picked: list[VerifiedFactor],
) -> None:
    """level_of_amr caps what a token's acr may claim (a re-levelled tenant acr value); it must
    agree with level_of for every set of factors a session can hold."""
    ctx = AuthContext(1)
    for factor in picked:
        ctx = ctx.with_factor(factor)
    assert level_of_amr(ctx.amr()) == ctx.level()
