"""The authorization request (OpenID Connect Core 1.0 section 3.1.2; RFC 6749 4.1.1) as an
ordered list of small checks, and the authorization response (RFC 6749 4.1.2, RFC 9207
``iss``, OAuth 2.0 Form Post Response Mode).

The order matters: until ``client_id`` and ``redirect_uri`` are known to be registered
together, an error is shown to the user and never redirected (RFC 6749 4.1.2.1).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.oauth2.rfc6749.errors import OAuth2Error

from flows.context import AuthContext
from idp.oidc import acr
from idp.oidc.clients import OAuthClient
from idp.oidc.context import Context, HttpRequest, OAuthRequest
from idp.oidc.errors import OAuthError
from idp.oidc.grants import Principal
from idp.oidc.provider import Provider
from idp.untrusted import ascii_int, parse_json

RESPONSE_MODES = ("query", "form_post")
PROMPTS = {"none", "login", "consent", "select_account"}
MAX_PARAM = 2048
S256 = "S256"


class NotRedirectable(OAuthError):
    """An error about the client or redirect URI itself: shown as a page, never redirected
    (RFC 6749 4.1.2.1)."""

    redirectable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)


class AuthorizeError(OAuthError):
    """An error returned to the client's redirect URI (RFC 6749 4.1.2.1, Core 3.1.2.6).

    Raised only once ``client_id`` and ``redirect_uri`` were validated together, so it
    carries that request (``areq``) and may be redirected.
    """

    redirectable = True

    def __init__(self, areq: AuthorizationRequest, error: str, description: str = "") -> None:
        super().__init__(description, code=error)
        self.areq = areq


@dataclass
class AuthorizationRequest:
    """A validated authorization request; kept as JSON while the user signs in."""

    client_id: str
    redirect_uri: str
    scope: str
    params: dict[str, list[str]]
    state: str | None = None
    nonce: str | None = None
    response_mode: str = "query"
    prompt: list[str] = field(default_factory=list)
    max_age: int | None = None
    acr_values: list[str] = field(default_factory=list)
    acr_essential: bool = False  # from the claims parameter: met, or the request fails
    login_hint: str | None = None
    started_at: int = 0
    id: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> AuthorizationRequest:
        return cls(**json.loads(raw))

    def redirect_params(self, issuer: str, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out = list(params)
        if self.state is not None:
            out.append(("state", self.state))
        out.append(("iss", issuer))  # RFC 9207: mix-up defence
        return out


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    return values[0] if values else None


def _client_and_redirect(ctx: Context, params: dict[str, list[str]]) -> tuple[OAuthClient, str]:
    client_id, redirect_uri = _one(params, "client_id"), _one(params, "redirect_uri")
    if not client_id:
        raise NotRedirectable("The request has no client_id.")
    if len(params.get("client_id", [])) > 1 or len(params.get("redirect_uri", [])) > 1:
        raise NotRedirectable("client_id and redirect_uri must be given once.")
    client = Provider(ctx).query_client(client_id)
    if client is None:
        raise NotRedirectable("This application is not registered here.")
    if not redirect_uri:
        raise NotRedirectable("The request has no redirect_uri.")
    if not client.check_redirect_uri(redirect_uri):
        raise NotRedirectable("The redirect_uri is not registered for this application.")
    return client, redirect_uri


def validate(ctx: Context, params: dict[str, list[str]]) -> AuthorizationRequest:
    """Run the checks in order; raise NotRedirectable or AuthorizeError."""
    client, redirect_uri = _client_and_redirect(ctx, params)
    mode = _one(params, "response_mode") or "query"
    areq = AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope="",
        params={k: v[:1] for k, v in params.items()},
        state=_one(params, "state"),
        nonce=_one(params, "nonce"),
        response_mode=mode if mode in RESPONSE_MODES else "query",
        started_at=ctx.now,
    )
    if mode not in RESPONSE_MODES:
        raise AuthorizeError(areq, "invalid_request", "Unsupported response_mode.")
    for check in (_check_sizes, _check_request_objects, _check_with_authlib, _check_pkce,
                  _check_prompt, _check_max_age, _check_acr):  # fmt: skip
        check(ctx, client, areq, params)
    return areq


def _check_sizes(ctx: Context, client: OAuthClient, areq: AuthorizationRequest,
                 params: dict[str, list[str]]) -> None:  # fmt: skip
    if any(len(v) > MAX_PARAM for values in params.values() for v in values):
        raise AuthorizeError(areq, "invalid_request", "A parameter is too long.")


def _check_request_objects(ctx: Context, client: OAuthClient, areq: AuthorizationRequest,
                           params: dict[str, list[str]]) -> None:  # fmt: skip
    """Core 6: request objects are not supported, and saying so beats ignoring them."""
    if "request" in params:
        raise AuthorizeError(areq, "request_not_supported", "Request objects are not supported.")
    if "request_uri" in params:
        raise AuthorizeError(areq, "request_uri_not_supported", "request_uri is not supported.")


def _check_with_authlib(ctx: Context, client: OAuthClient, areq: AuthorizationRequest,
                        params: dict[str, list[str]]) -> None:  # fmt: skip
    """response_type, duplicated parameters, scope (authlib's code grant)."""
    if _one(params, "response_type") != "code":  # before authlib, which quotes it back
        raise AuthorizeError(areq, "unsupported_response_type", "Only response_type=code.")
    req = OAuthRequest(HttpRequest("GET", ctx.issuer + "/authorize", {}, params))
    try:
        grant = Provider(ctx).get_consent_grant(req)
    except OAuth2Error as exc:
        raise AuthorizeError(areq, str(exc.error), exc.description or "") from None
    areq.scope = grant.request.scope or ""


def _check_pkce(ctx: Context, client: OAuthClient, areq: AuthorizationRequest,
                params: dict[str, list[str]]) -> None:  # fmt: skip
    """RFC 7636 with S256 only (``plain`` — also the default when no method is given — is
    refused); public clients must use it (RFC 9700 2.1.1)."""
    challenge, method = _one(params, "code_challenge"), _one(params, "code_challenge_method")
    if challenge is None and method is None:
        if client.row.public:
            raise AuthorizeError(areq, "invalid_request", "PKCE (S256) is required.")
        return
    if method != S256:
        raise AuthorizeError(areq, "invalid_request", "code_challenge_method must be S256.")


def _check_prompt(ctx: Context, client: OAuthClient, areq: AuthorizationRequest,
                  params: dict[str, list[str]]) -> None:  # fmt: skip
    prompts = (_one(params, "prompt") or "").split()
    if any(p not in PROMPTS for p in prompts):
        raise AuthorizeError(areq, "invalid_request", "Unknown prompt value.")
    if "none" in prompts and len(prompts) > 1:
        raise AuthorizeError(areq, "invalid_request", "prompt=none cannot be combined.")
    areq.prompt = prompts
    hint = _one(params, "login_hint")
    areq.login_hint = hint[:150] if hint else None


def _check_max_age(ctx: Context, client: OAuthClient, areq: AuthorizationRequest,
                   params: dict[str, list[str]]) -> None:  # fmt: skip
    raw = _one(params, "max_age")
    if raw is None:
        return
    max_age = ascii_int(raw)
    if max_age is None:
        raise AuthorizeError(areq, "invalid_request", "max_age must be a number of seconds.")
    areq.max_age = max_age


def _check_acr(ctx: Context, client: OAuthClient, areq: AuthorizationRequest,
               params: dict[str, list[str]]) -> None:  # fmt: skip
    """``acr_values``, or the ``acr`` member of the ``claims`` parameter (Core 5.5.1.1), which
    takes precedence; else the client's default acr values (Dynamic Registration 2)."""
    levels = ctx.acr_levels()
    areq.acr_values = acr.parse(levels, _one(params, "acr_values"))
    raw = _one(params, "claims")
    if raw is not None:
        wanted = _acr_claim(areq, raw)
        if wanted is not None:
            values = wanted.get("values") or ([wanted["value"]] if "value" in wanted else [])
            essential = wanted.get("essential") is True
            known = acr.parse(levels, values)
            if essential and values and not known:
                raise AuthorizeError(areq, "unmet_authentication_requirements",
                                     "None of the essential acr values is supported.")  # fmt: skip
            if known:
                areq.acr_values, areq.acr_essential = known, essential
    if not areq.acr_values:
        areq.acr_values = acr.parse(levels, client.row.default_acr_values)


def _acr_claim(areq: AuthorizationRequest, raw: str) -> dict[str, Any] | None:
    """The id_token's ``acr`` request in a ``claims`` parameter (Core 5.5), checked."""
    try:
        claims = parse_json(raw)
    except ValueError:
        raise AuthorizeError(areq, "invalid_request", "claims is not JSON.") from None
    if not isinstance(claims, dict) or not all(
        isinstance(claims.get(m, {}), dict) for m in ("id_token", "userinfo")
    ):
        raise AuthorizeError(areq, "invalid_request", "claims must be a JSON object of objects.")
    wanted = claims.get("id_token", {}).get("acr")
    if wanted is None:
        return None
    if not isinstance(wanted, dict):
        raise AuthorizeError(areq, "invalid_request", "claims.id_token.acr must be an object.")
    values = wanted.get("values", [])
    if not isinstance(values, list) or not isinstance(wanted.get("value", ""), str):
        raise AuthorizeError(areq, "invalid_request", "acr values must be strings.")
    return wanted


def principal(areq: AuthorizationRequest, user: Any, auth: AuthContext, not_before: int | None,
              sid: str, levels: dict[str, int]) -> Principal:  # fmt: skip
    """Who the code is for, with what the session's authentication achieved."""
    level = auth.level(not_before)
    return Principal(
        user=user,
        acr=acr.acr_for(levels, level, areq.acr_values),
        amr=auth.amr(not_before),
        auth_time=auth.auth_time(not_before) or areq.started_at,
        sid=sid,
        gid="",
        nonce=areq.nonce,
    )


def issue_code(ctx: Context, areq: AuthorizationRequest, who: Principal) -> list[tuple[str, str]]:
    """Re-validate the stored request (the client may have changed) and mint a code."""
    req = OAuthRequest(HttpRequest("GET", ctx.issuer + "/authorize", {}, areq.params))
    grant = Provider(ctx).get_consent_grant(req)
    req.user = who
    code = grant.generate_authorization_code()
    grant.save_authorization_code(code, req)
    return areq.redirect_params(ctx.issuer, [("code", code)])


def error_params(issuer: str, exc: AuthorizeError) -> list[tuple[str, str]]:
    """The error response's parameters (RFC 6749 4.1.2.1, RFC 9207 ``iss``)."""
    params = [("error", exc.code)]
    if exc.description:
        params.append(("error_description", exc.description))
    return exc.areq.redirect_params(issuer, params)


def query_redirect(redirect_uri: str, params: list[tuple[str, str]]) -> str:
    """Add ``params`` to the redirect URI's query, keeping the query it already has."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + params
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
