"""The OAuth grants this provider serves, on authlib's grant classes (RFC 6749 section 4, 6).

- Authorization codes (RFC 6749 4.1) live in the ephemeral store for ``CODE_TTL`` seconds,
  stored under a hash. They are single use: the first exchange claims a "used" marker
  atomically; any later exchange fails with ``invalid_grant`` and revokes the grant the
  first one produced (RFC 6749 4.1.2, RFC 9700 4.14). PKCE (RFC 7636) is S256 only,
  required for public clients (idp.oidc.authorize, idp.oidc.provider).
- Refresh tokens (RFC 6749 6) rotate on every use; presenting a rotated one revokes the
  whole family (RFC 9700 4.14.2). The family is a :class:`~idp.store.models.Grant`, which
  also freezes the authentication context (acr, amr, auth_time): a refresh never raises it.
  A family has the client's absolute lifetime from its creation and its idle lifetime from
  the last refresh (``offline_access`` too; RFC 9700 4.14.2, OpenID Connect Core 1.0
  section 11).
- Client credentials (RFC 6749 4.4): the access token's ``sub`` is the client.

The provider (idp.oidc.provider) registers these classes; :func:`save_grant` is its
``save_token``. Ending a family is ``idp.grants``'s, shared with sign-out.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Protocol, cast

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from sqlalchemy import Table, bindparam, exists, insert, select, update
from sqlalchemy.orm import contains_eager

from flows.assurance import Reason
from idp import grants as families
from idp.oidc.clients import CLIENT_AUTH, OAuthClient
from idp.oidc.context import Context, OAuthRequest
from idp.store.models import Client, Grant, RefreshToken, User
from idp.user_facts import family_reason

CODE_TTL = 60
CODE_USED_TTL = 24 * 3600
# Why a refresh-token family ends, by the assurance authority's reason (for the audit log).
FAMILY_ENDS = {
    Reason.USER_INACTIVE: "user_inactive",
    Reason.NO_SESSION: "signed_out_everywhere",
    Reason.LEVEL_MISSING: "below_mfa_policy",
}


def digest(value: str) -> str:
    """How codes and refresh tokens are stored: their SHA-256, never the value."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


# The refresh path's statements, built once (their SQL is compiled once and cached too).
# A refresh token with its family (``contains_eager`` fills ``RefreshToken.grant`` from this
# join) and the family's user, in one round trip.
_BY_HASH = (
    select(RefreshToken, User)
    .join(RefreshToken.grant)
    .outerjoin(User, User.id == Grant.user_id)
    .options(contains_eager(RefreshToken.grant))
    .where(RefreshToken.token_hash == bindparam("token_hash"))
)
_TOKENS = cast(Table, RefreshToken.__table__)
_FAMILIES = cast(Table, Grant.__table__)
# Claiming a token is atomic: only one of two concurrent refreshes sees rowcount 1, and none
# while its family has ended (a sign-out or a disable committed since the token was read).
_CLAIM = (
    update(_TOKENS)
    .where(
        _TOKENS.c.id == bindparam("row_id"),
        _TOKENS.c.used_at.is_(None),
        exists().where(_FAMILIES.c.id == _TOKENS.c.grant_id, _FAMILIES.c.revoked_at.is_(None)),
    )
    .values(used_at=bindparam("claimed_at"))
)
_USED_AT = select(_TOKENS.c.used_at).where(_TOKENS.c.id == bindparam("row_id"))
_NEW_TOKEN = insert(_TOKENS)


class _Server(Protocol):
    ctx: Context


@dataclass
class Principal:
    """The user a token is for, with the authentication context the tokens will state."""

    user: User
    acr: str
    amr: list[str]
    auth_time: int
    sid: str
    gid: str
    nonce: str | None = None
    code_hash: str | None = None
    grant: Grant | None = None  # the family being refreshed
    # The sign-in met the policy's second factor through a remembered browser (Grant.remembered)
    remembered: bool = False


class AuthCode:
    """An authorization code's stored data (authlib's AuthorizationCodeMixin)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.code_challenge = data.get("code_challenge")
        self.code_challenge_method = data.get("code_challenge_method")

    def get_redirect_uri(self) -> str:
        return str(self.data["redirect_uri"])

    def get_scope(self) -> str:
        return str(self.data["scope"])

    def get_nonce(self) -> str | None:
        return self.data.get("nonce")

    def get_auth_time(self) -> int:
        return int(self.data["auth_time"])


class Refresh:
    """A refresh token row and its family's user (authlib's TokenMixin)."""

    def __init__(self, row: RefreshToken, user: User | None) -> None:
        self.row, self.user = row, user

    def check_client(self, client: OAuthClient) -> bool:
        return self.row.grant.client_id == client.client_id

    def get_scope(self) -> str:
        return self.row.grant.scope


class CodeGrant(grants.AuthorizationCodeGrant):  # authlib: no hints
    """RFC 6749 4.1 with single-use codes (RFC 9700 4.14)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    server: _Server

    def save_authorization_code(self, code: str, request: OAuthRequest) -> None:
        p: Principal = request.user
        data = request.payload.data
        record = {
            "client_id": request.client.client_id,
            "redirect_uri": data["redirect_uri"],
            "scope": request.scope,
            "nonce": data.get("nonce"),
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
            "user_id": p.user.id,
            "acr": p.acr,
            "amr": p.amr,
            "auth_time": p.auth_time,
            "sid": p.sid,
            "remembered": p.remembered,
        }
        ctx = self.server.ctx
        ctx.store.set(f"oidc:code:{digest(code)}", json.dumps(record).encode(), CODE_TTL)

    def query_authorization_code(self, code: str, client: OAuthClient) -> AuthCode | None:
        ctx, h = self.server.ctx, digest(code)
        if not ctx.store.add(f"oidc:code-used:{h}", b"", CODE_USED_TTL):
            gid = (ctx.store.get(f"oidc:code-used:{h}") or b"").decode()
            if gid:
                revoke_grant(ctx, gid, "code_reused")
            return None
        raw = ctx.store.take(f"oidc:code:{h}")
        if raw is None:
            return None
        data = json.loads(raw)
        if data["client_id"] != client.client_id:
            return None
        data["code_hash"] = h
        return AuthCode(data)

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        """Already taken from the store when it was read."""

    def authenticate_user(self, authorization_code: AuthCode) -> Principal | None:
        d = authorization_code.data
        user = self.server.ctx.s.get(User, d["user_id"])
        if user is None or user.status != "active" or user.tenant_id != self.server.ctx.tenant.id:
            return None
        return Principal(
            user=user,
            acr=d["acr"],
            amr=list(d["amr"]),
            auth_time=int(d["auth_time"]),
            sid=d["sid"],
            gid=secrets.token_urlsafe(16),
            nonce=d.get("nonce"),
            code_hash=d["code_hash"],
            remembered=bool(d.get("remembered", False)),
        )


class RefreshGrant(grants.RefreshTokenGrant):  # authlib: no hints
    """RFC 6749 6 with rotation and reuse detection (RFC 9700 4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: _Server

    def authenticate_refresh_token(self, refresh_token: str) -> Refresh | None:
        ctx = self.server.ctx
        found = ctx.s.execute(_BY_HASH, {"token_hash": digest(refresh_token)}).one_or_none()
        if found is None:
            return None
        row, user = found
        client = self.request.client
        if row.grant.tenant_id != ctx.tenant.id:
            return None
        if client is None or row.grant.client_id != client.client_id:
            return None  # another client's token: not claimed, so the owner's stays usable
        if not refresh_live(row, client.row, ctx.now):
            return None
        if row.used_at is not None:
            revoke_grant(ctx, row.grant.gid, "refresh_token_reused")
            return None
        if self._ended(row.grant, user):
            return None  # checked before the token is claimed: a locked user's stays usable
        return Refresh(row, user)  # claimed by save_grant, once the new tokens are signed

    def _ended(self, grant: Grant, user: User | None) -> bool:
        """The assurance authority on the family: a disabled user, a sign-out everywhere, or
        (applied at once) a stricter policy or an MFA reset ends it. A locked user (anyone
        can cause a lock by failing the password) is refused, and the family is kept for
        after the unlock."""
        ctx = self.server.ctx
        level = ctx.token_level(grant.acr, grant.amr)
        reason = family_reason(ctx.tenant, user, level, grant.auth_time, grant.remembered)
        if reason is None:
            return False
        if not (reason is Reason.USER_INACTIVE and user is not None and user.status == "locked"):
            revoke_grant(ctx, grant.gid, FAMILY_ENDS[reason])
        return True

    def authenticate_user(self, refresh_token: Refresh) -> Principal | None:
        grant, user = refresh_token.row.grant, refresh_token.user
        if user is None:
            return None
        return Principal(user, grant.acr, list(grant.amr), grant.auth_time, grant.sid, grant.gid,
                         grant=grant)  # fmt: skip

    def revoke_old_credential(self, refresh_token: Refresh) -> None:
        """Done atomically in :func:`save_grant` (marked used)."""


class CredentialsGrant(grants.ClientCredentialsGrant):  # authlib: no hints
    """RFC 6749 4.4; the access token's ``sub`` is the client (RFC 9068 section 2.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH


def save_grant(ctx: Context, token: dict[str, Any], request: OAuthRequest) -> None:
    """Remember what the token endpoint issued: a code exchange starts a family (a
    :class:`Grant`) and marks its code used by it; a refresh token is stored under its hash
    with its expiry. A client's own token (client credentials) leaves nothing to keep."""
    p: Principal | None = request.user
    if p is None:
        return
    if request.payload.grant_type == "authorization_code":
        grant = Grant(
            gid=p.gid,
            tenant_id=ctx.tenant.id,
            client_id=request.client.client_id,
            user_id=p.user.id,
            scope=token["scope"],
            acr=p.acr,
            amr=p.amr,
            auth_time=p.auth_time,
            sid=p.sid,
            remembered=p.remembered,
            created_at=ctx.now,
        )
        ctx.s.add(grant)
        ctx.s.flush()
        if p.code_hash:
            ctx.store.set(f"oidc:code-used:{p.code_hash}", p.gid.encode(), CODE_USED_TTL)
    else:
        assert p.grant is not None
        grant = p.grant
        claim(ctx, request.refresh_token.row)
    if "refresh_token" in token:
        row: Client = request.client.row
        ctx.s.execute(
            _NEW_TOKEN,
            {
                "grant_id": grant.id,
                "token_hash": digest(token["refresh_token"]),
                "created_at": ctx.now,
                "expires_at": refresh_expires_at(grant, row, ctx.now),
            },
        )


def claim(ctx: Context, row: RefreshToken) -> None:
    """Mark the refresh token being redeemed used, or refuse (``invalid_grant``): when a
    parallel request has claimed it first, after ending its family (RFC 9700 4.14.2; the end
    is committed: authlib answers the error, the session commits), and when the family has
    ended since the token was read (its end stands; nothing is issued from it).

    This runs after the new tokens are signed, just before they are stored: the write and
    the commit come together, so SQLite's single writer lock is held for a moment only."""
    claimed = ctx.s.execute(_CLAIM, {"row_id": row.id, "claimed_at": ctx.now})
    if claimed.rowcount == 1:  # type: ignore[attr-defined]
        return
    if ctx.s.scalar(_USED_AT, {"row_id": row.id}) is not None:
        revoke_grant(ctx, row.grant.gid, "refresh_token_reused")
    raise InvalidGrantError()


def family_ends_at(grant: Grant, client: Client) -> int:
    """When a refresh-token family ends however often it is used: the client's absolute
    lifetime from the grant's creation (RFC 9700 section 4.14.2)."""
    return grant.created_at + client.refresh_token_ttl


def refresh_expires_at(grant: Grant, client: Client, now: int) -> int:
    """The expiry of a refresh token issued ``now``: the client's idle lifetime, cut short
    at the end of its family (RFC 9700 section 4.14.2)."""
    return min(family_ends_at(grant, client), now + client.refresh_idle_ttl)


def refresh_live(row: RefreshToken, client: Client, now: int) -> bool:
    """Whether ``row`` may still be redeemed: its family is neither revoked nor past its
    absolute lifetime (whatever the row says), and the row itself has not expired."""
    grant = row.grant
    return grant.revoked_at is None and now < min(row.expires_at, family_ends_at(grant, client))


def revoke_grant(ctx: Context, gid: str, reason: str) -> None:
    """End a token family of this tenant (idp.grants): its refresh tokens stop working and
    its access tokens fail introspection and UserInfo."""
    families.revoke_grant(ctx.s, ctx.tenant, gid, reason, ctx.now, ctx.client_ip)
