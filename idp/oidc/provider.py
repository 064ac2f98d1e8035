"""The OAuth 2.0 authorization server (RFC 6749) on authlib's framework-free server class:
the wiring of grants, client authentication and token generation.

One :class:`Provider` serves one request of one tenant (:class:`~idp.oidc.context.Context`).
The web modules turn the HTTP request into an :class:`~idp.oidc.context.HttpRequest` and the
returned :class:`~idp.oidc.context.HttpResponse` back into HTTP, so nothing here imports
Flask. The grants are in idp.oidc.grants; the id_token in idp.oidc.id_token.

The token endpoint's answer (RFC 6749 5.1) is built here: an RFC 9068 access token, a
refresh token for a user's grant, and an id_token when the scope has ``openid``.
"""

from __future__ import annotations

import binascii
import secrets
from typing import Any

from authlib.oauth2 import rfc6749
from authlib.oauth2.rfc6749.errors import InvalidClientError, OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7636 import CodeChallenge

from idp.oidc import claims as scope_claims
from idp.oidc import clients, id_token, tokens
from idp.oidc.clients import OAuthClient
from idp.oidc.context import Context, HttpRequest, HttpResponse, OAuthRequest
from idp.oidc.errors import OAuthError
from idp.oidc.grants import CodeGrant, CredentialsGrant, Principal, RefreshGrant, save_grant

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
TOKEN_AUTH = ["client_secret_basic", "client_secret_post", "none"]


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
        row = clients.cached_client(self.ctx.s, self.ctx.keys.config, self.ctx.tenant, client_id)
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
        save_grant(self.ctx, token, request)

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
        """The token response (RFC 6749 5.1): the access token (RFC 9068), a refresh token
        for a user's grant, and an id_token for ``openid`` (Core 3.1.3.3)."""
        ctx, row = self.ctx, client.row
        ttl = expires_in or row.access_token_ttl
        if grant_type == "client_credentials":  # authlib passes the request's scope as is
            scope = client.get_allowed_scope(scope)  # RFC 6749 3.3
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
            signer = ctx.signer(row.id_token_alg)
            released = scope_claims.user_claims(user.user, scope, ctx.cipher)
            token["id_token"] = id_token.issue(
                signer, ctx.issuer, row.client_id, user, access, ctx.now, released
            )
        return token


def token_response(ctx: Context, req: HttpRequest) -> HttpResponse:
    """The token endpoint (RFC 6749 section 3.2). authlib answers its own errors (5.2) in the
    response, after the grant's writes (a revoked family) are made."""
    if (req.params.get("grant_type") or [""])[0] not in GRANT_TYPES:
        raise OAuthError("Unsupported grant_type.", code="unsupported_grant_type")
    response: HttpResponse = Provider(ctx).create_token_response(req)
    return response


def authenticate_client(ctx: Context, req: HttpRequest) -> OAuthClient:
    """Client authentication for revocation and introspection (RFC 7009 2.1, RFC 7662 2.1),
    or raise :class:`OAuthError` (``invalid_client``, RFC 6749 5.2)."""
    provider = Provider(ctx)
    try:
        return provider.authenticate_client(provider.create_oauth2_request(req), TOKEN_AUTH)
    except OAuth2Error as exc:
        raise OAuthError.from_authlib(exc) from None
