"""A user's profile: names, language and contact number, as the user edits them and as the
protocols release them (OIDC claims, SAML attributes).

Names are trimmed, NFC-normalised and bounded; control characters, unassigned code points and
the bidirectional overrides that can disguise a name (Unicode TR 36 section 2.4) are refused.
The locale is a BCP 47 tag (RFC 5646) checked against the IANA registry by ``langcodes`` and
stored in its canonical form. The contact number is one of the user's SMS factors, already
verified when it was enrolled; it counts only while it is still theirs.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlalchemy.orm import Session

from factors.errors import StepwiseError
from idp.crypto import DataCipher
from idp.directory import audit
from idp.mfa import credentials
from idp.store.models import Credential, Tenant, User

NAME_LIMITS = {"display_name": 200, "given_name": 100, "family_name": 100}  # the columns
LOCALE_MAX = 35  # RFC 5646 section 4.4.1: 35 characters hold any tag an application needs
FIELD_LABELS = {
    "display_name": "Display name",
    "given_name": "Given name",
    "family_name": "Family name",
    "locale": "Language",
}
# Bidirectional embeddings, overrides and isolates: they reorder what is shown around them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
REFUSED_CATEGORIES = ("Cc", "Cs", "Co", "Cn")  # control, surrogate, private use, unassigned


class ProfileInvalid(StepwiseError):
    """A profile value that cannot be stored; the message names the field and why."""

    code, status, title = "invalid_profile", 400, "Profile not valid"


def clean_name(field: str, raw: str) -> str:
    """``raw`` NFC, trimmed, its runs of spaces made one; raise :class:`ProfileInvalid`."""
    label, limit = FIELD_LABELS[field], NAME_LIMITS[field]
    value = unicodedata.normalize("NFC", raw).strip()
    if any(unicodedata.category(c) in REFUSED_CATEGORIES or c in BIDI_CONTROLS for c in value):
        raise ProfileInvalid(f"{label}: remove the control or invisible characters.")
    value = " ".join(value.split())
    if len(value) > limit:
        raise ProfileInvalid(f"{label}: at most {limit} characters.")
    return value


def clean_locale(raw: str) -> str:
    """The canonical form of a BCP 47 language tag (``en-us`` -> ``en-US``), or "" to clear
    it; raise :class:`ProfileInvalid` for anything that is not a valid tag."""
    value = raw.strip()
    if not value:
        return ""
    problem = ProfileInvalid(
        "Language: use a language tag such as en, en-GB, fr-CA or zh-Hant (BCP 47)."
    )
    import langcodes  # here: its tables cost every `idp` command 40 ms at import

    if len(value) > LOCALE_MAX or not value.isascii() or not langcodes.tag_is_valid(value):
        raise problem
    try:
        canonical = langcodes.standardize_tag(value)
    except ValueError:  # langcodes' LanguageTagError
        raise problem from None
    if len(canonical) > LOCALE_MAX:
        raise problem
    return canonical


@dataclass(frozen=True)
class Names:
    """The fields of the profile form, as typed."""

    display_name: str = ""
    given_name: str = ""
    family_name: str = ""
    locale: str = ""

    def cleaned(self) -> dict[str, str]:
        """Every field checked and normalised; the first problem raises ProfileInvalid."""
        out = {f: clean_name(f, getattr(self, f)) for f in NAME_LIMITS}
        out["locale"] = clean_locale(self.locale)
        return out


def update(
    s: Session, tenant: Tenant, user: User, names: Names, now: int, ip: str | None
) -> list[str]:
    """Store the profile fields that changed (all checked first, so a bad one stores none);
    return the names of those that changed. The audit names them, without their values."""
    values = names.cleaned()
    changed = [f for f, v in values.items() if getattr(user, f) != v]
    if not changed:
        return []
    for f in changed:
        setattr(user, f, values[f])
    user.updated_at = now
    audit(s, tenant, "user.profile_changed", actor=user.id, subject=user.id, ip=ip,
          fields=changed)  # fmt: skip
    return changed


def full_name(user: User) -> str:
    """The name to show (OIDC ``name``): the display name, else given and family name."""
    return user.display_name or " ".join(n for n in (user.given_name, user.family_name) if n)


def sms_factors(user: User) -> list[Credential]:
    """The user's SMS factors: the numbers they may mark as their contact number."""
    return credentials.enrolled(user, ("sms",))


def contact_credential(user: User) -> Credential | None:
    """The SMS factor marked as contact number, while it is still the user's."""
    if user.contact_phone_id is None:
        return None
    return next((c for c in sms_factors(user) if c.id == user.contact_phone_id), None)


def contact_phone(cipher: DataCipher, user: User) -> str | None:
    """The contact number in E.164 form (verified when the SMS factor was enrolled)."""
    cred = contact_credential(user)
    return credentials.secret_of(cipher, cred) if cred is not None else None


def set_contact_phone(
    s: Session, tenant: Tenant, user: User, choice: str, now: int, ip: str | None
) -> None:
    """Mark one of the user's SMS factors (its choice string, ``sms:ID``) as contact number,
    or none with ""; raise :class:`ProfileInvalid` for anything else."""
    cred_id: int | None = None
    if choice:
        cred = next((c for c in sms_factors(user) if credentials.choice_of(c) == choice), None)
        if cred is None:
            raise ProfileInvalid("Contact number: choose one of your phone numbers.")
        cred_id = cred.id
    if user.contact_phone_id == cred_id:
        return
    user.contact_phone_id, user.updated_at = cred_id, now
    audit(s, tenant, "user.profile_changed", actor=user.id, subject=user.id, ip=ip,
          fields=["contact_phone"])  # fmt: skip
