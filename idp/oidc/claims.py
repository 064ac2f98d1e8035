"""Scopes and the claims they release (OpenID Connect Core 1.0 section 5.4)."""

from __future__ import annotations

from typing import Any

from idp.store.models import User

SCOPES = ["openid", "profile", "email", "phone", "offline_access"]
ADMIN_SCOPE = "stepwise:admin"  # the JSON admin API; only for clients created --admin-api
ADMIN_READ_SCOPE = "stepwise:admin.read"  # the admin API's reads only
SCOPE_CLAIMS = {
    "profile": ["preferred_username", "updated_at"],
    "email": ["email", "email_verified"],
    "phone": ["phone_number", "phone_number_verified"],
}
CLAIMS_SUPPORTED = [
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp",
    "at_hash", *(c for claims in SCOPE_CLAIMS.values() for c in claims),
]  # fmt: skip
SCOPE_DESCRIPTIONS = {
    "openid": "Confirm who you are",
    "profile": "Your username",
    "email": "Your email address",
    "phone": "Your verified phone number",
    "offline_access": "Stay connected while you are signed out",
}


def split(scope: str | None) -> list[str]:
    return list(dict.fromkeys((scope or "").split()))


def user_claims(user: User, scope: str) -> dict[str, Any]:
    """The claims released for ``scope``. Email addresses set by an admin are not verified
    by the user, so ``email_verified`` is false; the phone scope releases nothing until a
    verified phone number exists (SMS factor)."""
    scopes = set(split(scope))
    out: dict[str, Any] = {"sub": user.sub}
    if "profile" in scopes:
        out.update(preferred_username=user.username, updated_at=user.updated_at)
    if "email" in scopes:
        out.update(email=user.email, email_verified=False)
    return out
