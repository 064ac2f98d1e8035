"""Rules for a new password (NIST SP 800-63B-4 section 3.1.1.2, memorized secrets).

Length only, never composition: at least 8 characters, 15 when the password is the account's
only factor (a tenant setting), at most 128. A password is also refused when it is on the
blocklist of common and breached passwords, or when it is built from the account's own
context words (username, email, tenant name). Pure Python; each rule raises
:class:`~factors.errors.WeakSecret` with a message that says what to do.
"""

from __future__ import annotations

from collections.abc import Iterable

from factors.errors import WeakSecret
from factors.password import normalize

MIN_LENGTH = 8  # with a second factor
MIN_LENGTH_ALONE = 15  # the default when the password is the only factor
MAX_LENGTH = 128


def is_common(password: str) -> bool:
    """Whether ``password`` is on the shipped blocklist (being built: issue 15)."""
    return False


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
            raise WeakSecret("Choose a password that does not contain your name, email or "
                             "the organisation's name.")  # fmt: skip
    if is_common(pw):
        raise WeakSecret("This password is too common: it appears in lists of leaked "
                         "passwords. Choose another one.")  # fmt: skip
