"""flows.recovery: what a password reset must verify before the new password (pure)."""

from __future__ import annotations

import pytest

from flows.context import VerifiedFactor
from flows.errors import NoUsableFactor
from flows.policy import UserFacts
from flows.recovery import plan

NOW = 1_800_000_000
TOTP = VerifiedFactor("totp", ("otp",), NOW)
BACKUP = VerifiedFactor("backup", ("otp",), NOW)
KEY = VerifiedFactor("webauthn", ("hwk",), NOW, True, False)
PASSWORD = VerifiedFactor("password", ("pwd",), NOW)


def test_a_password_only_account_needs_nothing_more_than_the_link() -> None:
    assert plan(UserFacts(), []) == []


def test_a_second_factor_comes_first_and_a_password_does_not_count() -> None:
    user = UserFacts(enrolled=("totp:1",), has_backup_codes=True)
    assert plan(user, []) == ["verify_totp"]
    assert plan(user, [PASSWORD]) == ["verify_totp"]
    assert plan(user, [TOTP]) == []
    assert plan(user, [BACKUP]) == []
    assert plan(user, [], "backup") == ["verify_backup"]


def test_several_factors_ask_which_one() -> None:
    user = UserFacts(enrolled=("totp:1", "sms:2"), has_backup_codes=True)
    assert plan(user, []) == ["choose"]
    assert plan(user, [], "sms:2") == ["verify_sms"]


def test_a_key_holder_must_prove_a_key() -> None:
    user = UserFacts(enrolled=("totp:1", "webauthn:2"), has_backup_codes=True)
    for choice in ("", "totp:1", "backup"):
        assert plan(user, [], choice) == ["verify_webauthn"]
    assert plan(user, [TOTP, BACKUP]) == ["verify_webauthn"]
    assert plan(user, [KEY]) == []


@pytest.mark.parametrize(
    "user",
    [UserFacts(unverifiable=("sms",)), UserFacts(unverifiable=("sms",), has_backup_codes=False)],
)
def test_factors_that_cannot_be_verified_send_the_user_to_the_admin(user: UserFacts) -> None:
    with pytest.raises(NoUsableFactor):
        plan(user, [])


def test_backup_codes_alone_still_work() -> None:
    assert plan(UserFacts(has_backup_codes=True), []) == ["verify_backup"]
