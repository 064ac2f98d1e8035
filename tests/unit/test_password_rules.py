"""The rules for a new password (factors.password_rules, idp.passwords): length, blocklist,
context words; NIST SP 800-63B-4 section 3.1.1.2. No composition rules."""

from __future__ import annotations

import hashlib
import unicodedata
from importlib import resources

import pytest

from factors.errors import WeakSecret
from factors.password_rules import (
    BLOCKLIST,
    DIGEST_BYTES,
    MAX_LENGTH,
    blocklist,
    blocklist_digest,
    check,
    is_common,
)
from idp.passwords import check_new, min_length
from idp.store.models import Tenant


@pytest.mark.parametrize(
    "password",
    ["password123", "PASSWORD123", "PassWord123", "iloveyou2", "qwertyuiop", "1q2w3e4r5t"],
)
def test_common_passwords_are_on_the_blocklist_in_any_case(password: str) -> None:
    assert is_common(password)
    with pytest.raises(WeakSecret, match="too common"):
        check(password)


def full_width(text: str) -> str:
    """``text`` in full-width forms (U+FF01..U+FF5E), which NFKC folds back."""
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


def test_the_blocklist_compares_nfkc_forms() -> None:
    fullwidth = full_width("password123")  # as typed on a full-width keyboard
    assert unicodedata.normalize("NFKC", fullwidth) == "password123"
    assert is_common(fullwidth)
    assert blocklist_digest(fullwidth) == blocklist_digest("Password123")


@pytest.mark.parametrize("password", ["tall red kettle", "correct horse battery", "x7#Lq9!vRt"])
def test_uncommon_passwords_pass(password: str) -> None:
    assert not is_common(password)
    check(password)


def test_the_shipped_list_is_sorted_digests_read_as_package_data() -> None:
    raw = resources.files("factors.data").joinpath(BLOCKLIST).read_bytes()
    digests = blocklist()
    assert len(raw) == len(digests) * DIGEST_BYTES and 90_000 <= len(digests) <= 100_000
    sample = [digests[i] for i in range(0, len(digests), 997)]
    assert sample == sorted(sample) and len(set(sample)) == len(sample)
    # The format is what the build script writes: a truncated SHA-256 of the folded text.
    key = hashlib.sha256(b"password123").digest()[:DIGEST_BYTES]
    assert key == blocklist_digest("PASSWORD123") and is_common("password123")
    assert blocklist() is digests  # loaded once


@pytest.mark.parametrize(
    ("length", "min_length", "ok"),
    [(7, 8, False), (8, 8, True), (14, 15, False), (15, 15, True), (128, 8, True), (129, 8, False)],
)
def test_lengths(length: int, min_length: int, ok: bool) -> None:
    password = ("Zq9-" * 40)[:length]
    if ok:
        check(password, min_length=min_length)
        return
    expected = f"at least {min_length} characters" if length < min_length else "at most"
    with pytest.raises(WeakSecret, match=expected):
        check(password, min_length=min_length)
    assert MAX_LENGTH == 128


def test_length_counts_characters_after_nfkc() -> None:
    # Eight full-width letters are eight characters; a ligature expands to three.
    check(full_width("zqxjvbkw"), min_length=8)
    with pytest.raises(WeakSecret, match="at least 8"):
        check("zqxjvbk", min_length=8)
    check("zqxjvb\ufb03", min_length=8)  # "ffi" ligature: NFKC makes it 3 letters, 9 in all


def tenant(**fields: object) -> Tenant:
    values: dict[str, object] = {"slug": "acme", "name": "Acme Inc", "password_min_alone": 15}
    values.update(fields)
    return Tenant(**values)


def test_min_length_depends_on_a_second_factor_and_the_tenant() -> None:
    assert min_length(tenant(), has_second_factor=True) == 8
    assert min_length(tenant(), has_second_factor=False) == 15
    assert min_length(tenant(password_min_alone=20), has_second_factor=False) == 20
    assert min_length(tenant(password_min_alone=4), has_second_factor=False) == 8


@pytest.mark.parametrize(
    "password",
    ["Alice-in-the-garden", "my ALICE password 42", "acme is where I work", "ACME INC rocks!!",
     "alice.smith was here", "xx alice.smith@wonderland.example"],
)  # fmt: skip
def test_context_words_are_refused(password: str) -> None:
    with pytest.raises(WeakSecret, match="contains your name"):
        check_new(tenant(), password, username="alice", email="alice.smith@wonderland.example",
                  has_second_factor=True)  # fmt: skip


def test_short_context_words_do_not_count_and_unrelated_passwords_pass() -> None:
    check_new(tenant(slug="ab", name="AB"), "ab tall red kettle", username="al",
              email="al@x.test", has_second_factor=False)  # fmt: skip


def test_no_composition_rules() -> None:
    check("all lower case words here")  # no digits, no capitals, no symbols: fine
    check("98374650192837")  # digits only, not common
