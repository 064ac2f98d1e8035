import time

import pytest

from factors import password_rules
from factors.errors import InvalidCredentials, WeakSecret
from factors.password import Argon2Params, PasswordFactor

CHEAP = Argon2Params(memory_kib=8192, time_cost=1)


def test_hash_is_argon2id_and_verifies() -> None:
    pf = PasswordFactor(CHEAP)
    encoded = pf.hash("s3cret password")
    assert encoded.startswith("$argon2id$")
    pf.verify(encoded, "s3cret password")
    with pytest.raises(InvalidCredentials):
        pf.verify(encoded, "s3cret passworD")


def test_default_parameters_meet_owasp_minimum() -> None:
    p = Argon2Params()
    assert (p.memory_kib, p.time_cost, p.parallelism) >= (19 * 1024, 2, 1)
    assert "$m=19456,t=2,p=1$" in PasswordFactor().hash("x" * 10)


def test_normalization_makes_composed_and_decomposed_text_equal() -> None:
    pf = PasswordFactor(CHEAP)
    pf.verify(pf.hash("caf\u00e9-passw0rd"), "cafe\u0301-passw0rd")


def test_unknown_user_costs_a_real_verification() -> None:
    pf = PasswordFactor(Argon2Params(memory_kib=32768, time_cost=3))
    real = pf.hash("password123")
    started = time.perf_counter()
    with pytest.raises(InvalidCredentials):
        pf.verify(None, "password123")
    dummy = time.perf_counter() - started
    started = time.perf_counter()
    with pytest.raises(InvalidCredentials):
        pf.verify(real, "password124")
    mismatch = time.perf_counter() - started
    # Both run the same argon2 work; generous bounds keep this robust on a loaded machine.
    assert dummy > mismatch / 4 and mismatch > dummy / 4


def test_rehash_needed_when_parameters_change() -> None:
    old = PasswordFactor(CHEAP).hash("password123")
    newer = PasswordFactor(Argon2Params(memory_kib=16384, time_cost=2))
    assert newer.needs_rehash(old)
    assert not newer.needs_rehash(newer.hash("password123"))
    assert newer.needs_rehash("not-a-hash")


def test_malformed_stored_hash_fails_closed() -> None:
    with pytest.raises(InvalidCredentials):
        PasswordFactor(CHEAP).verify("$argon2id$garbage", "password123")


@pytest.mark.parametrize("pw", ["short", "x" * 257])
def test_new_password_rules(pw: str) -> None:
    with pytest.raises(WeakSecret):
        password_rules.check(pw)


def test_invalid_params_are_refused_with_a_message() -> None:
    with pytest.raises(ValueError, match="time cost"):
        Argon2Params(time_cost=0)
