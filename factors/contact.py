"""Where out-of-band codes go: phone numbers (E.164, via phonenumbers) and email addresses.

Both are validated and normalised before a code is ever sent, so one number typed two ways
is one factor, and a stored value is always deliverable as written.
"""

from __future__ import annotations

import unicodedata

from factors.errors import FactorError


class InvalidContact(FactorError):
    """Not a usable phone number or email address; the message says why."""


# phonenumbers and email-validator are imported where they are used: every ``idp`` command
# imports this module (for :func:`email_key`), and few of them parse a number or an address.


def normalize_phone(raw: str, region: str | None = None) -> str:
    """E.164 form (``+15551234567``) of a possible, valid number; ``region`` for local input."""
    import phonenumbers

    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        raise InvalidContact(
            "Enter the number in international form, starting with + and the country code."
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidContact("That is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """Only the last two digits are shown where a number is named (``+•• ••• ••• •67``)."""
    return "•" * max(0, len(e164) - 2) + e164[-2:]


def normalize_email(raw: str) -> str:
    """The normalised address, or raise :class:`InvalidContact` (syntax only; no DNS)."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise InvalidContact("That is not a valid email address.") from None


def email_key(address: str) -> str:
    """The form every spelling of one mailbox shares, to compare and look up addresses: the
    local part NFC-normalised and casefolded, the domain in lower-case IDNA ASCII
    (``Carol@Bücher.example`` and ``carol@xn--bcher-kva.example`` are one key). No validation:
    an address an admin typed compares the same way as one a user verified."""
    local, at, domain = unicodedata.normalize("NFC", address.strip()).rpartition("@")
    if not at:
        return domain.casefold()
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:  # not a domain IDNA can spell: compare it as typed
        ascii_domain = domain
    return f"{local.casefold()}@{ascii_domain.lower()}"


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"
