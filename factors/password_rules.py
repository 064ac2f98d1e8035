"""Rules for a new password (NIST SP 800-63B-4 section 3.1.1.2, memorized secrets).

Length only, never composition: at least 8 characters, 15 when the password is the account's
only factor (a tenant setting), at most 128. A password is also refused when it is on the
blocklist of common and breached passwords, or when it is built from the account's own
context words (username, email, tenant name). Pure Python; each rule raises
:class:`~factors.errors.WeakSecret` with a message that says what to do.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from typing import overload

from factors.errors import WeakSecret
from factors.password import normalize

MIN_LENGTH = 8  # with a second factor
MIN_LENGTH_ALONE = 15  # the default when the password is the only factor
MAX_LENGTH = 128

# The blocklist (scripts/build_password_blocklist.py makes it): the first DIGEST_BYTES bytes
# of the SHA-256 of each NFKC-casefolded password, sorted. 48 bits leave a random password
# one chance in about 3e9 of being refused by accident, for 100,000 entries.
BLOCKLIST = "common-passwords.bin"
DIGEST_BYTES = 6


def blocklist_digest(password: str) -> bytes:
    """The blocklist's key of ``password``: any case, any Unicode form of it matches."""
    folded = normalize(password).casefold()
    return hashlib.sha256(folded.encode("utf-8", "surrogatepass")).digest()[:DIGEST_BYTES]


class _Digests(Sequence[bytes]):
    """The sorted digests of the blocklist file, read in place (a memoryview, no copies)."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) % DIGEST_BYTES:
            raise ValueError(f"{BLOCKLIST}: not a whole number of {DIGEST_BYTES}-byte digests")
        self._raw = memoryview(raw)

    def __len__(self) -> int:
        return len(self._raw) // DIGEST_BYTES

    @overload
    def __getitem__(self, i: int) -> bytes: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[bytes]: ...
    def __getitem__(self, i: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._raw[i * DIGEST_BYTES : (i + 1) * DIGEST_BYTES].tobytes()


@cache
def blocklist() -> Sequence[bytes]:
    """The shipped blocklist, loaded once, on first use (package data of ``factors``)."""
    return _Digests(resources.files("factors.data").joinpath(BLOCKLIST).read_bytes())


def is_common(password: str) -> bool:
    """Whether ``password`` (in any case or Unicode form) is on the shipped blocklist of
    common and breached passwords (NIST SP 800-63B-4 section 3.1.1.2)."""
    digests, key = blocklist(), blocklist_digest(password)
    i = bisect_left(digests, key)
    return i < len(digests) and digests[i] == key


def check(password: str, *, min_length: int = MIN_LENGTH, context: Iterable[str] = ()) -> None:
    """Raise :class:`WeakSecret` unless ``password`` may be set."""
    pw = normalize(password)
    if len(pw) < min_length:
        raise WeakSecret(f"Use at least {min_length} characters.")
    if len(pw) > MAX_LENGTH:
        raise WeakSecret(f"Use at most {MAX_LENGTH} characters.")
    folded = pw.casefold()
    for word in context:
        word = normalize(word).casefold().strip()
        if len(word) >= 3 and word in folded:
            raise WeakSecret("This password contains your name, your email address or the "
                             "organisation's name. Choose another one.")  # fmt: skip
    if is_common(pw):
        raise WeakSecret("This password is too common: it appears in lists of leaked "
                         "passwords. Choose another one.")  # fmt: skip
