"""Profiles for the interop tests: a user's names, language, verified email and contact
number written into a live server's database (through the app's own code), and the claims
and attributes those should come out as."""

from __future__ import annotations

from typing import Any

from idp import directory
from idp.mfa import credentials
from tests.conftest import services_for

PHONE = "+16502530000"
ALICE: dict[str, Any] = {
    "display_name": "Alice Liddell",
    "given_name": "Alice",
    "family_name": "Liddell",
    "locale": "en-GB",
    "email_verified": True,
}
# What the scopes openid profile email phone groups release for ALICE (besides sub and
# updated_at, which the test reads from the database).
ALICE_CLAIMS = {
    "name": "Alice Liddell",
    "given_name": "Alice",
    "family_name": "Liddell",
    "locale": "en-GB",
    "preferred_username": "alice",
    "email": "alice@acme.test",
    "email_verified": True,
    "phone_number": PHONE,
    "phone_number_verified": True,
    "groups": ["member"],
}


def set_profile(env: dict[str, str], username: str, phone: str | None = None,
                **fields: Any) -> int:  # fmt: skip
    """Set ``username``'s profile fields (tenant acme); with ``phone``, an SMS factor as
    enrolment stores it, marked as contact number. Returns the user's ``updated_at``."""
    svc = services_for(env)
    with svc.db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), username)
        for name, value in fields.items():
            setattr(user, name, value)
        if phone is not None:
            cred = credentials.add(s, svc.cipher, user, "sms", phone, None, directory.now())
            user.contact_phone_id = cred.id
        user.updated_at = directory.now()
        return user.updated_at
