"""The OAuth 2.0 / OpenID Connect token machinery on authlib's framework-free server classes.

One :class:`Provider` serves one request of one tenant. The web layer (views) turns the HTTP
request into an :class:`HttpRequest` and the returned :class:`HttpResponse` back into HTTP,
so nothing here imports Flask.

- Authorization codes (RFC 6749 4.1) live in the ephemeral store for ``CODE_TTL`` seconds,
  stored under a hash. They are single use: the first exchange claims a "used" marker
  atomically; any later exchange fails with ``invalid_grant`` and revokes the grant the
  first one produced (RFC 6749 4.1.2, RFC 9700 4.14).
- Refresh tokens rotate on every use; presenting a rotated one revokes the whole family
  (RFC 9700 4.14.2). The family is a :class:`~idp.store.models.Grant`, which also freezes
  the authentication context (acr, amr, auth_time): a refresh never raises it. A family has
  the client's absolute lifetime from its creation and its idle lifetime from the last
  refresh (``offline_access`` too; RFC 9700 4.14.2, OpenID Connect Core 1.0 section 11).
- PKCE (RFC 7636): S256 only, required for public clients.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import rfc6749
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7636 import CodeChallenge
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from flows.assurance import Reason
from idp.crypto import DataCipher
from idp.directory import audit
from idp.ephemeral import EphemeralStore
from idp.oidc import acr, clients, tokens
from idp.oidc import claims as scope_claims
from idp.oidc.claims import ADMIN_SCOPE
from idp.store.models import Client, Grant, RefreshToken, Tenant, User
from idp.user_facts import family_reason

CODE_TTL = 60
CODE_USED_TTL = 24 * 3600
ID_TOKEN_TTL = 600
CLIENT_AUTH = ["client_secret_basic", "client_secret_post"]
# Why a refresh-token family ends, by the assurance authority's reason (for the audit log).
FAMILY_ENDS = {
    Reason.USER_INACTIVE: "user_inactive",
    Reason.NO_SESSION: "signed_out_everywhere",
    Reason.LEVEL_MISSING: "below_mfa_policy",
}


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Context:
    """What one request of one tenant needs: storage, keys, clock."""

    s: Session
    tenant: Tenant
    issuer: str
    cipher: DataCipher
    store: EphemeralStore
    now: int
    keys: tokens.KeyCache
    client_ip: str = "-"

    def signer(self, alg: str = "RS256") -> tokens.Signer:
        return self.keys.signer(self.s, self.cipher, self.tenant, alg)

    def verifier(self) -> KeySet:
        return self.keys.verifier(self.s, self.tenant)

    def acr_levels(self) -> dict[str, int]:
        return acr.table(self.tenant.acr_levels)


@dataclass
class HttpRequest:
    """A framework-free view of the HTTP request: method, URL, headers and parameters."""

    method: str
    uri: str
    headers: dict[str, str]
    params: dict[str, list[str]]


@dataclass
class HttpResponse:
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Payload(rfc6749.OAuth2Payload):
    def __init__(self, params: dict[str, list[str]]) -> None:
        self._datalist = defaultdict(list, params)
        self._data = {k: v[0] for k, v in params.items() if v}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class OAuthRequest(rfc6749.OAuth2Request):
    def __init__(self, req: HttpRequest) -> None:
        super().__init__(req.method, req.uri, headers=req.headers)
        self.payload = _Payload(req.params)

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


class OAuthClient(rfc6749.ClientMixin):
    """authlib's view of a registered :class:`Client`."""

    def __init__(self, row: Client) -> None:
        self.row = row
        self.client_id = row.client_id

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # redirect_uri is required (OpenID Connect Core 1.0 3.1.2.1)

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = [*scope_claims.SCOPES, *([ADMIN_SCOPE] if self.row.admin_api else [])]
        return " ".join(s for s in scope_claims.split(scope) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris  # exact match, RFC 9700 4.1.3

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.secret_matches(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none" if self.row.public else method in CLIENT_AUTH

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


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
    """A refresh token row (authlib's TokenMixin)."""

    def __init__(self, row: RefreshToken) -> None:
        self.row = row

    def check_client(self, client: OAuthClient) -> bool:
        return self.row.grant.client_id == client.client_id

    def get_scope(self) -> str:
        return self.row.grant.scope


def _basic(query_client: Any, request: OAuthRequest) -> OAuthClient | None:
    """client_secret_basic: credentials form-urlencoded inside Basic (RFC 6749 2.3.1)."""
    try:
        client_id, secret = extract_basic_authorization(request.headers)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        raise InvalidClientError(
            status_code=401, description="Malformed Basic credentials."
        ) from None
    if not client_id or not secret:
        return None
    client: OAuthClient | None = query_client(client_id)
    if client is None:
        raise InvalidClientError(status_code=401, description="Client authentication failed.")
    return client if client.check_client_secret(secret) else None


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    server: Provider

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
        )


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: Provider

    def authenticate_refresh_token(self, refresh_token: str) -> Refresh | None:
        ctx = self.server.ctx
        row = ctx.s.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
        )
        client = self.request.client
        if row is None or row.grant.tenant_id != ctx.tenant.id:
            return None
        if client is None or row.grant.client_id != client.client_id:
            return None  # another client's token: not claimed, so the owner's stays usable
        if not refresh_live(row, client.row, ctx.now):
            return None
        if row.used_at is None and self._ended(row.grant):
            return None  # checked before the token is claimed: a locked user's stays usable
        claimed = ctx.s.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
            .values(used_at=ctx.now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            revoke_grant(ctx, row.grant.gid, "refresh_token_reused")
            return None
        return Refresh(row)

    def _ended(self, grant: Grant) -> bool:
        """The assurance authority on the family: a disabled user, a sign-out everywhere, or
        (applied at once) a stricter policy or an MFA reset ends it. A locked user (anyone
        can cause a lock by failing the password) is refused, and the family is kept for
        after the unlock."""
        ctx = self.server.ctx
        user = ctx.s.get(User, grant.user_id)
        level = ctx.acr_levels().get(grant.acr, 1)
        reason = family_reason(ctx.tenant, user, level, grant.auth_time)
        if reason is None:
            return False
        if not (reason is Reason.USER_INACTIVE and user is not None and user.status == "locked"):
            revoke_grant(ctx, grant.gid, FAMILY_ENDS[reason])
        return True

    def authenticate_user(self, refresh_token: Refresh) -> Principal | None:
        grant = refresh_token.row.grant
        user = self.server.ctx.s.get(User, grant.user_id)
        if user is None:
            return None
        return Principal(user, grant.acr, list(grant.amr), grant.auth_time, grant.sid, grant.gid,
                         grant=grant)  # fmt: skip

    def revoke_old_credential(self, refresh_token: Refresh) -> None:
        """Done atomically in :meth:`authenticate_refresh_token` (marked used)."""


class CredentialsGrant(grants.ClientCredentialsGrant):
    """RFC 6749 4.4; the access token's ``sub`` is the client (RFC 9068 section 2.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH


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
    """End a token family: its refresh tokens stop working and its access tokens fail
    introspection and userinfo."""
    grant = ctx.s.scalar(select(Grant).where(Grant.gid == gid, Grant.tenant_id == ctx.tenant.id))
    if grant is None or grant.revoked_at is not None:
        return
    grant.revoked_at = ctx.now
    audit(ctx.s, ctx.tenant, "oauth.grant_revoked", subject=grant.user_id, ip=ctx.client_ip,
          client_id=grant.client_id, reason=reason)  # fmt: skip


class Provider(rfc6749.AuthorizationServer):
    """authlib's authorization server bound to one request of one tenant."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(scopes_supported=scope_claims.SCOPES)
        self.ctx = ctx
        self.register_grant(CodeGrant, [CodeChallenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_grant(CredentialsGrant)
        self.register_token_generator("default", self._generate)
        self.register_client_auth_method("client_secret_basic", _basic)

    # --- authlib integration -------------------------------------------------------------
    def validate_requested_scope(self, scope: str | None) -> None:
        """Unknown scopes are ignored rather than refused (Core 3.1.2.1); see get_allowed_scope."""

    def query_client(self, client_id: str) -> OAuthClient | None:
        if not isinstance(client_id, str) or len(client_id) > 64:
            return None
        row = clients.find_client(self.ctx.s, self.ctx.tenant, client_id)
        return OAuthClient(row) if row is not None else None

    def authenticate_client(
        self, request: OAuthRequest, methods: list[str], endpoint: str = "token"
    ) -> OAuthClient:
        client: OAuthClient = super().authenticate_client(request, methods, endpoint)
        request.client = client
        return client

    def create_oauth2_request(self, request: HttpRequest | OAuthRequest) -> OAuthRequest:
        return request if isinstance(request, OAuthRequest) else OAuthRequest(request)

    def create_json_request(self, request: HttpRequest) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status: int, body: Any, headers: Any) -> HttpResponse:
        return HttpResponse(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals."""

    def save_token(self, token: dict[str, Any], request: OAuthRequest) -> None:
        p: Principal | None = request.user
        if p is None:
            return  # client_credentials: nothing to remember
        ctx = self.ctx
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
                created_at=ctx.now,
            )
            ctx.s.add(grant)
            ctx.s.flush()
            if p.code_hash:
                ctx.store.set(f"oidc:code-used:{p.code_hash}", p.gid.encode(), CODE_USED_TTL)
        else:
            assert p.grant is not None
            grant = p.grant
        if "refresh_token" in token:
            row: Client = request.client.row
            ctx.s.add(
                RefreshToken(
                    grant_id=grant.id,
                    token_hash=digest(token["refresh_token"]),
                    created_at=ctx.now,
                    expires_at=refresh_expires_at(grant, row, ctx.now),
                )
            )

    # --- tokens ------------------------------------------------------------------------
    def _generate(
        self,
        grant_type: str,
        client: OAuthClient,
        user: Principal | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        ctx, row = self.ctx, client.row
        ttl = expires_in or row.access_token_ttl
        scope = scope or ""
        claims: dict[str, Any] = {
            "iss": ctx.issuer,
            "exp": ctx.now + ttl,
            "aud": ctx.issuer,
            "sub": user.user.sub if user else row.client_id,
            "client_id": row.client_id,
            "iat": ctx.now,
            "jti": tokens.new_jti(user.gid if user else None),
            "scope": scope,
        }
        if user is not None:
            claims.update(auth_time=user.auth_time, acr=user.acr, amr=user.amr, sid=user.sid)
        access = tokens.sign(ctx.signer(), claims, tokens.ACCESS_TOKEN_TYP)
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": ttl,
            "scope": scope,
        }
        if user is not None and include_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(32)
        if user is not None and "openid" in scope_claims.split(scope):
            token["id_token"] = self._id_token(row, user, access)
        return token

    def _id_token(self, client: Client, p: Principal, access_token: str) -> str:
        signer = self.ctx.signer(client.id_token_alg)
        claims: dict[str, Any] = {
            "iss": self.ctx.issuer,
            "sub": p.user.sub,
            "aud": client.client_id,
            "azp": client.client_id,
            "exp": self.ctx.now + ID_TOKEN_TTL,
            "iat": self.ctx.now,
            "auth_time": p.auth_time,
            "acr": p.acr,
            "amr": p.amr,
            "sid": p.sid,
            "at_hash": tokens.half_hash(access_token, signer.alg),
        }
        if p.nonce:
            claims["nonce"] = p.nonce
        return tokens.sign(signer, claims)


GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


def token_response(ctx: Context, req: HttpRequest) -> HttpResponse:
    """The token endpoint (RFC 6749 section 3.2)."""
    if (req.params.get("grant_type") or [""])[0] not in GRANT_TYPES:
        error = UnsupportedGrantTypeError("unsupported")
        return HttpResponse(
            400, {"error": error.error, "error_description": "Unsupported grant_type."}
        )
    response: HttpResponse = Provider(ctx).create_token_response(req)
    return response


def end_session_grants(s: Session, tenant: Tenant, sid: str, now: int) -> int:
    """At logout, revoke the session's grants except those with ``offline_access``, which
    are meant to outlive the session (OpenID Connect Core 1.0 section 11)."""
    ended = 0
    for grant in s.scalars(
        select(Grant).where(
            Grant.tenant_id == tenant.id, Grant.sid == sid, Grant.revoked_at.is_(None)
        )
    ):
        if "offline_access" not in scope_claims.split(grant.scope):
            grant.revoked_at = now
            ended += 1
    return ended
