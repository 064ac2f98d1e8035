"""Scopes and the claims they release (OpenID Connect Core 1.0 sections 5.1 and 5.4).

Claims are released from the UserInfo endpoint and in the ID Token alike. A claim with no
value is left out rather than sent empty (Core 5.3.2). ``email_verified`` is true once the
user proved the address by a link (idp.email_change); ``phone_number`` is the contact number
the user marked among their SMS factors, each verified when enrolled. ``groups`` (not a
standard scope) lists the user's role.
"""

from __future__ import annotations

from typing import Any

from idp.crypto import DataCipher
from idp.profiles import contact_phone, full_name
from idp.store.models import User

SCOPES = ["openid", "profile", "email", "phone", "groups", "offline_access"]
ADMIN_SCOPE = "stepwise:admin"  # the JSON admin API; only for clients created --admin-api
ADMIN_READ_SCOPE = "stepwise:admin.read"  # the admin API's reads only
SCOPE_CLAIMS = {
    "profile": ["name", "given_name", "family_name", "locale", "preferred_username",
                "updated_at"],
    "email": ["email", "email_verified"],
    "phone": ["phone_number", "phone_number_verified"],
    "groups": ["groups"],
}  # fmt: skip
CLAIMS_SUPPORTED = [
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp",
    "at_hash", *(c for claims in SCOPE_CLAIMS.values() for c in claims),
]  # fmt: skip
SCOPE_DESCRIPTIONS = {
    "openid": "Confirm who you are",
    "profile": "Your name, username and language",
    "email": "Your email address",
    "phone": "Your contact phone number",
    "groups": "Your role here (as groups)",
    "offline_access": "Stay connected while you are signed out",
}


def split(scope: str | None) -> list[str]:
    return list(dict.fromkeys((scope or "").split()))


def user_claims(user: User, scope: str, cipher: DataCipher) -> dict[str, Any]:
    """``sub`` and the claims ``scope`` releases, without empty ones; ``cipher`` opens the
    stored contact number."""
    scopes = set(split(scope))
    out: dict[str, Any] = {"sub": user.sub}
    if "profile" in scopes:
        out.update(
            name=full_name(user),
            given_name=user.given_name,
            family_name=user.family_name,
            locale=user.locale,
            preferred_username=user.username,
            updated_at=user.updated_at,
        )
    if "email" in scopes:
        out.update(email=user.email, email_verified=bool(user.email_verified))
    if "phone" in scopes:
        phone = contact_phone(cipher, user)
        if phone:
            out.update(phone_number=phone, phone_number_verified=True)
    if "groups" in scopes:
        out["groups"] = [user.role]
    return {k: v for k, v in out.items() if v != "" and v is not None}
