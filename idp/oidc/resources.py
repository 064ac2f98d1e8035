"""Endpoints that take a token: UserInfo (OpenID Connect Core 1.0 section 5.3), token
revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from idp.oidc import claims as scope_claims
from idp.oidc import tokens
from idp.oidc.clients import OAuthClient
from idp.oidc.context import Context
from idp.oidc.errors import OAuthError
from idp.oidc.grants import digest, family_ends_at, refresh_live, revoke_grant
from idp.store.models import Grant, RefreshToken, User
from idp.user_facts import family_reason

INTROSPECTED = ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti", "acr", "amr",
                "auth_time")  # fmt: skip


class BearerError(OAuthError):
    """A protected resource's error (RFC 6750 section 3.1): rendered with
    ``WWW-Authenticate: Bearer error=...`` (section 3)."""

    def __init__(self, error: str, description: str, status: int = 401) -> None:
        super().__init__(description, code=error, status=status)


def _live_grant(ctx: Context, gid: str | None) -> Grant | None:
    if gid is None:
        return None
    grant = ctx.s.scalar(select(Grant).where(Grant.gid == gid, Grant.tenant_id == ctx.tenant.id))
    return grant if grant is not None and grant.revoked_at is None else None


def access_claims(ctx: Context, token: str) -> dict[str, Any]:
    """The claims of a live access token of this tenant, or raise InvalidToken."""
    keyset = ctx.verifier()
    found = tokens.verify(token, keyset, ctx.issuer, ctx.now, typ=tokens.ACCESS_TOKEN_TYP)
    jti = str(found.get("jti", ""))
    gid = tokens.grant_of(jti)
    if gid is not None and _live_grant(ctx, gid) is None:
        raise tokens.InvalidToken("revoked")
    if gid is None and ctx.store.get(f"oidc:revoked-jti:{jti}") is not None:
        raise tokens.InvalidToken("revoked")
    return found


def _still_counts(ctx: Context, found: dict[str, Any]) -> bool:
    """A user's access token counts while the authority says its authentication does; a
    client's own (client_credentials) token has no user behind it."""
    gid = tokens.grant_of(str(found.get("jti", "")))
    if gid is None:
        return True
    grant = _live_grant(ctx, gid)
    user = ctx.s.scalar(select(User).where(User.sub == found.get("sub")))
    amr = found.get("amr")
    level = ctx.token_level(str(found.get("acr", "")), amr if isinstance(amr, list) else [])
    auth_time = int(found.get("auth_time") or 0)
    remembered = grant is not None and grant.remembered
    return family_reason(ctx.tenant, user, level, auth_time, remembered) is None


def userinfo(ctx: Context, token: str) -> dict[str, Any]:
    try:
        found = access_claims(ctx, token)
    except tokens.InvalidToken:
        raise BearerError("invalid_token", "The access token is invalid or expired.") from None
    scope = str(found.get("scope", ""))
    if "openid" not in scope_claims.split(scope) or tokens.grant_of(found["jti"]) is None:
        raise BearerError("insufficient_scope", "The token was not issued for openid.", 403)
    user = ctx.s.scalar(select(User).where(User.sub == found["sub"]))
    if user is None or not _still_counts(ctx, found):
        raise BearerError("invalid_token", "The access token is invalid or expired.")
    return scope_claims.user_claims(user, scope, ctx.cipher)


def _refresh_row(ctx: Context, token: str) -> RefreshToken | None:
    if len(token) > tokens.MAX_TOKEN:
        return None
    row = ctx.s.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(token)))
    return row if row is not None and row.grant.tenant_id == ctx.tenant.id else None


def introspect(ctx: Context, client: OAuthClient, token: str, hint: str | None) -> dict[str, Any]:
    """RFC 7662 section 2.2. Inactive for anything unknown, expired, revoked or another
    client's refresh token; access tokens are JWTs any client of the tenant may check."""
    inactive: dict[str, Any] = {"active": False}
    if hint != "refresh_token" and token.count(".") == 2:
        try:
            found = access_claims(ctx, token)
        except tokens.InvalidToken:
            return inactive
        if not _still_counts(ctx, found):
            return inactive
        out: dict[str, Any] = {"active": True, "token_type": "Bearer"}
        out.update((k, found[k]) for k in INTROSPECTED if k in found)
        return out
    row = _refresh_row(ctx, token)
    if row is None or row.grant.client_id != client.client_id:
        return inactive
    grant = row.grant
    if row.used_at is not None or not refresh_live(row, client.row, ctx.now):
        return inactive  # rotated, revoked, idle too long or past the family's lifetime
    user = ctx.s.get(User, grant.user_id)
    level = ctx.token_level(grant.acr, grant.amr)
    if family_reason(ctx.tenant, user, level, grant.auth_time, grant.remembered) is not None:
        return inactive
    return {
        "active": True,
        "token_type": "refresh_token",
        "scope": grant.scope,
        "client_id": grant.client_id,
        "sub": user.sub if user else None,
        "exp": min(row.expires_at, family_ends_at(grant, client.row)),
        "iat": row.created_at,
        "iss": ctx.issuer,
        "acr": grant.acr,
        "amr": grant.amr,
        "auth_time": grant.auth_time,
    }


def revoke(ctx: Context, client: OAuthClient, token: str, hint: str | None) -> dict[str, Any]:
    """RFC 7009 section 2.1: revoking either token of a grant revokes the grant, so the
    refresh token and every access token of the family stop working. Unknown tokens and
    other clients' tokens are ignored (the response is 200 either way)."""
    if token.count(".") == 2 and hint != "refresh_token":
        try:
            found = access_claims(ctx, token)
        except tokens.InvalidToken:
            return {}
        if found.get("client_id") != client.client_id:
            return {}
        gid = tokens.grant_of(str(found["jti"]))
        if gid is not None:
            revoke_grant(ctx, gid, "revoked_by_client")
        else:
            ttl = max(1, int(found["exp"]) - ctx.now)
            ctx.store.set(f"oidc:revoked-jti:{found['jti']}", b"1", ttl)
        return {}
    row = _refresh_row(ctx, token)
    if row is not None and row.grant.client_id == client.client_id:
        revoke_grant(ctx, row.grant.gid, "revoked_by_client")
    return {}
