"""Endpoints that take a token: UserInfo (OpenID Connect Core 1.0 section 5.3), token
revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

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


# An access token's family with its user, in one round trip, while the family is not revoked.
_LIVE_FAMILY = (
    select(Grant, User)
    .outerjoin(User, User.id == Grant.user_id)
    .where(
        Grant.gid == bindparam("gid"),
        Grant.tenant_id == bindparam("tenant_id"),
        Grant.revoked_at.is_(None),
    )
)


@dataclass(frozen=True)
class LiveAccess:
    """A verified access token of this tenant whose family is not revoked."""

    claims: dict[str, Any]
    grant: Grant | None  # None: a client's own token (client_credentials)
    user: User | None  # the family's user (None if the account is gone)


def live_access(ctx: Context, token: str) -> LiveAccess:
    """The access token ``token`` with its family and user, or raise InvalidToken: a bad
    signature, another issuer, expired, or revoked (its family, or a client's own token by
    its ``jti``)."""
    keyset = ctx.verifier()
    found = tokens.verify(token, keyset, ctx.issuer, ctx.now, typ=tokens.ACCESS_TOKEN_TYP)
    jti = str(found.get("jti", ""))
    gid = tokens.grant_of(jti)
    if gid is None:
        if ctx.store.get(f"oidc:revoked-jti:{jti}") is not None:
            raise tokens.InvalidToken("revoked")
        return LiveAccess(found, None, None)
    row = ctx.s.execute(_LIVE_FAMILY, {"gid": gid, "tenant_id": ctx.tenant.id}).one_or_none()
    if row is None:
        raise tokens.InvalidToken("revoked")
    grant, user = row
    if user is not None and user.sub != found.get("sub"):
        raise tokens.InvalidToken("not this family's subject")
    return LiveAccess(found, grant, user)


def access_claims(ctx: Context, token: str) -> dict[str, Any]:
    """The claims of a live access token of this tenant, or raise InvalidToken."""
    return live_access(ctx, token).claims


def _still_counts(ctx: Context, access: LiveAccess) -> bool:
    """A user's access token counts while the authority says its authentication does; a
    client's own (client_credentials) token has no user behind it."""
    if access.grant is None:
        return True
    found = access.claims
    amr = found.get("amr")
    level = ctx.token_level(str(found.get("acr", "")), amr if isinstance(amr, list) else [])
    auth_time = int(found.get("auth_time") or 0)
    reason = family_reason(ctx.tenant, access.user, level, auth_time, access.grant.remembered)
    return reason is None


def userinfo(ctx: Context, token: str) -> dict[str, Any]:
    try:
        access = live_access(ctx, token)
    except tokens.InvalidToken:
        raise BearerError("invalid_token", "The access token is invalid or expired.") from None
    scope = str(access.claims.get("scope", ""))
    if "openid" not in scope_claims.split(scope) or access.grant is None:
        raise BearerError("insufficient_scope", "The token was not issued for openid.", 403)
    if access.user is None or not _still_counts(ctx, access):
        raise BearerError("invalid_token", "The access token is invalid or expired.")
    return scope_claims.user_claims(access.user, scope, ctx.cipher)


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
            access = live_access(ctx, token)
        except tokens.InvalidToken:
            return inactive
        if not _still_counts(ctx, access):
            return inactive
        out: dict[str, Any] = {"active": True, "token_type": "Bearer"}
        out.update((k, access.claims[k]) for k in INTROSPECTED if k in access.claims)
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
