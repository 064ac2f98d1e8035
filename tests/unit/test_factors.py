"""The second factors in isolation: TOTP against oathtool, sent codes, backup codes, contacts."""

from __future__ import annotations

import pytest

from factors import backup, codes, contact, totp
from factors.errors import InvalidCode
from testkit.totp import oathtool

NOW = 1_700_000_000  # a step boundary is at a multiple of 30


def test_totp_accepts_oathtool_codes_within_one_step_either_side() -> None:
    secret = totp.enroll_begin("alice", "Acme").secret
    assert len(secret) == 32  # 160 bits in base32
    for offset in (-30, 0, 30):
        assert totp.verify(secret, oathtool(secret, NOW + offset), NOW) == (NOW + offset) // 30
    for offset in (-60, 60):
        with pytest.raises(InvalidCode):
            totp.verify(secret, oathtool(secret, NOW + offset), NOW)


def test_totp_code_is_single_use_and_older_steps_are_refused() -> None:
    secret = totp.new_secret()
    step = totp.verify(secret, oathtool(secret, NOW), NOW)
    with pytest.raises(InvalidCode):
        totp.verify(secret, oathtool(secret, NOW), NOW, last_step=step)
    with pytest.raises(InvalidCode):
        totp.verify(secret, oathtool(secret, NOW - 30), NOW, last_step=step)
    assert totp.verify(secret, oathtool(secret, NOW + 30), NOW, last_step=step) == step + 1


def test_totp_rejects_junk_without_raising_anything_else() -> None:
    secret = totp.new_secret()
    for junk in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦", " " * 6):
        with pytest.raises(InvalidCode):
            totp.verify(secret, junk, NOW)


def test_totp_uri_names_issuer_and_account() -> None:
    enrolment = totp.enroll_begin("alice", "Acme Inc")
    assert enrolment.uri.startswith("otpauth://totp/Acme%20Inc:alice?secret=")
    assert "issuer=Acme%20Inc" in enrolment.uri


def test_totp_two_consecutive_codes_activate_and_one_pair_out_of_order_does_not() -> None:
    secret = totp.new_secret()
    first, second = oathtool(secret, NOW - 30), oathtool(secret, NOW)
    assert totp.enroll_finish(secret, [first, second], NOW) == NOW // 30
    with pytest.raises(InvalidCode):
        totp.enroll_finish(secret, [second, first], NOW)
    with pytest.raises(InvalidCode):
        totp.enroll_finish(secret, [first, first], NOW)


def test_sent_code_expires_after_five_minutes_and_after_five_attempts() -> None:
    code, challenge = codes.issue("+15555550100", NOW)
    assert len(code) == 6 and code.isdigit() and code not in str(challenge.to_json())
    assert "5555550100" not in str(challenge.to_json())  # nor the number, in the clear
    codes.verify(challenge, code, NOW + 299, attempt=1)
    with pytest.raises(codes.CodeExpired):
        codes.verify(challenge, code, NOW + 300, attempt=1)
    with pytest.raises(codes.CodeExpired):
        codes.verify(challenge, code, NOW, attempt=6)
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(InvalidCode):
        codes.verify(challenge, wrong, NOW, attempt=2)


def test_enrolment_code_must_have_gone_to_the_target_being_added() -> None:
    target, code, challenge = codes.SMS.enroll_begin("+1 650 253 0000", NOW)
    assert target == "+16502530000"
    codes.SMS.enroll_finish(challenge, target, code, NOW + 1, attempt=1)
    with pytest.raises(InvalidCode):
        codes.SMS.enroll_finish(challenge, "+442079460018", code, NOW + 1, attempt=1)
    with pytest.raises(contact.InvalidContact):
        codes.EMAIL.enroll_begin("nobody", NOW)


def test_resend_has_a_cool_down_per_target() -> None:
    _, first = codes.issue("+15555550100", NOW)
    with pytest.raises(codes.ResendTooSoon) as exc:
        codes.issue("+15555550100", NOW + 10, first)
    assert exc.value.wait == 20
    codes.issue("+15555550100", NOW + 30, first)
    codes.issue("+15555550199", NOW + 1, first)  # another number is not held back


def test_backup_codes_match_once_normalised_and_not_otherwise() -> None:
    key = b"k" * 32
    fresh = backup.generate()
    assert len(fresh) == 10 and len(set(fresh)) == 10
    stored = [backup.digest(key, c) for c in fresh]
    assert all(fresh[i] not in s for i, s in enumerate(stored))
    assert backup.match(key, stored, fresh[3].upper().replace("-", " ")) == 3
    with pytest.raises(InvalidCode):
        backup.match(key, stored, "aaaaa-aaaaa")
    with pytest.raises(InvalidCode):
        backup.match(b"x" * 32, stored, fresh[3])  # another deployment's key


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("+1 650-253-0000", "+16502530000"), ("+44 20 7946 0018", "+442079460018")],
)
def test_phone_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert contact.normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["", "12345", "+1 555", "phone", "+999 1234567", "+" + "9" * 40])
def test_bad_phone_numbers_get_a_message(raw: str) -> None:
    with pytest.raises(contact.InvalidContact):
        contact.normalize_phone(raw)


def test_emails_are_checked_and_masked() -> None:
    assert contact.normalize_email(" Bob@Example.COM ") == "Bob@example.com"
    with pytest.raises(contact.InvalidContact):
        contact.normalize_email("not-an-address")
    assert contact.mask_email("bob@example.com") == "b•••@example.com"
    assert contact.mask_phone("+16502530000").endswith("00") and "650" not in contact.mask_phone(
        "+16502530000"
    )
