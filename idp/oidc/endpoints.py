"""The OpenID Provider's machine endpoints (blueprint ``oidc_api``), which clients and
resource servers call under the tenant's issuer ``{base}/t/{tenant}``: discovery, JWKS,
token, UserInfo, revocation and introspection. They take no cookies and no CSRF tokens;
clients authenticate per RFC 6749 section 2.3. The browser endpoints are in
idp.oidc.browser.

Errors are rendered in one handler (:func:`render_error`) as OAuth JSON (RFC 6749 5.2).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidClientError
from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request

from factors.errors import StepwiseError
from idp import errors
from idp.document_cache import replayable
from idp.metrics import TOKENS
from idp.oidc import acr, discovery, resources
from idp.oidc.clients import OAuthClient
from idp.oidc.context import Context, HttpRequest, HttpResponse
from idp.oidc.current import context, context_for, issuer_of, params_of
from idp.oidc.errors import OAuthError
from idp.oidc.provider import authenticate_client
from idp.oidc.provider import token_response as run_token_endpoint
from idp.oidc.resources import BearerError
from idp.services import services
from idp.store.models import Tenant
from idp.tenancy import current_tenant, tenant_blueprint

bp = tenant_blueprint("oidc_api", __name__)
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.after_request
def _cors(resp: Response) -> Response:
    """Browser-based clients (SPAs) call these endpoints cross-origin; no cookies are used."""
    allow_any_origin(resp.headers)
    if request.method == "OPTIONS":  # CORS preflight
        resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        resp.headers["Access-Control-Allow-Methods"] = "GET, POST"
        resp.headers["Access-Control-Max-Age"] = "600"
    return resp


def allow_any_origin(headers: Headers) -> None:
    headers["Access-Control-Allow-Origin"] = "*"


@bp.get("/.well-known/openid-configuration")
def openid_configuration() -> ResponseReturnValue:
    """OpenID Connect Discovery 1.0 section 4 (and RFC 8414 fields), serialised once per
    configuration version (idp.config_cache)."""
    tenant = current_tenant()

    def load() -> bytes:
        document = discovery.document(issuer_of(tenant), acr.table(tenant.acr_levels))
        return json.dumps(document).encode()

    body = services().config.get(("discovery", tenant.id), load)
    replayable(request.environ)
    return _document(body, "application/json")


@bp.get("/jwks")
def jwks() -> ResponseReturnValue:
    """The tenant's public signing keys (RFC 7517), including retired keys still in grace."""
    with services().db.session() as s:
        ctx = context(s)
        found = ctx.keys.published(s, ctx.tenant, ctx.now, ctx.monotonic)
    ends = found.changes_at
    replayable(request.environ, None if ends is None else ctx.monotonic + ends - ctx.now)
    return _document(found.body, "application/jwk-set+json")


def _document(body: bytes, mimetype: str) -> Response:
    """A public, cacheable document with a strong ETag; ``If-None-Match`` gets a 304."""
    resp = Response(body, mimetype=mimetype)
    resp.headers["Cache-Control"] = "public, max-age=300"
    resp.add_etag()  # strong, over the body (werkzeug)
    resp.make_conditional(request)  # 304 in place when the client holds this version
    resp.headers.pop("Date", None)  # the server's, per answer (make_conditional set one)
    return resp


def _http_request() -> HttpRequest:
    return http_request(request, current_tenant())


def http_request(req: Request, tenant: Tenant) -> HttpRequest:
    """``req`` as the provider sees it: a POST's body must be a form (RFC 6749 3.2), and its
    form is all it takes (never a browser's bounced parameters, idp.crosssite)."""
    if req.method == "POST" and req.mimetype not in (FORM, ""):
        raise OAuthError("The body must be application/x-www-form-urlencoded.")
    return HttpRequest(
        method=req.method,
        uri=issuer_of(tenant) + req.path.removeprefix(f"/t/{tenant.slug}"),
        headers=dict(req.headers),
        params=params_of(req.form),
    )


def _json(resp: HttpResponse) -> Response:
    out = Response(json.dumps(resp.body), resp.status, mimetype="application/json")
    for name, value in resp.headers:
        if name.lower() != "content-type":
            out.headers[name] = value
    out.headers.update(NO_STORE)
    return out


def render_error(exc: StepwiseError) -> Response:
    """This surface's one error handler: OAuth JSON ``{"error", "error_description"}``
    (RFC 6749 5.2, never cached), and for a bearer token's error the ``WWW-Authenticate``
    challenge (RFC 6750 3). Errors from elsewhere in the tree keep their code and status."""
    if isinstance(exc, BearerError):
        resp = jsonify(error=exc.code, error_description=exc.description)
        resp.status_code = exc.status
        resp.headers["WWW-Authenticate"] = (
            f'Bearer error="{exc.code}", error_description="{exc.description}"'
        )
        resp.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"
        return resp
    if isinstance(exc, OAuthError):
        return _json(HttpResponse(exc.status, exc.body(), exc.headers))
    body = {"error": exc.code, "error_description": exc.message}
    return _json(HttpResponse(exc.status, body))


errors.install(bp, render_error)


@bp.post("/token")
def token() -> ResponseReturnValue:
    """RFC 6749 section 3.2. idp.oidc.api_routes answers this URL before Flask, with
    :func:`token_answer` too; this view is its reference, which the tests compare it with."""
    return token_answer(current_tenant(), _http_request(), _client_ip())


def token_answer(tenant: Tenant, req: HttpRequest, client_ip: str) -> Response:
    """The token endpoint (RFC 6749 section 3.2): authorization_code, refresh_token and
    client_credentials, or the OAuth error (5.2) the provider answers with."""
    with services().db.session() as s:
        answer = run_token_endpoint(context_for(s, tenant, client_ip), req)
    if answer.status == 200:  # committed; its grant_type is one of provider.GRANT_TYPES
        TOKENS.labels(tenant.slug, req.params["grant_type"][0]).inc()
    return _json(answer)


TokenAction = Callable[[Context, OAuthClient, str, str | None], dict[str, Any]]


def _about_a_token(
    action: TokenAction,
    tenant: Tenant,
    req: HttpRequest,
    client_ip: str,
    confidential_only: bool = False,
) -> Response:
    """Parse ``token``/``token_type_hint``, authenticate the client, run ``action``."""
    params = {k: v[0] for k, v in req.params.items() if v}
    if not params.get("token"):
        raise OAuthError("The token parameter is missing.")
    with services().db.session() as s:
        ctx = context_for(s, tenant, client_ip)
        client = authenticate_client(ctx, req)
        if confidential_only and client.row.public:
            raise OAuthError.from_authlib(
                InvalidClientError(status_code=401, description="Public clients cannot.")
            )
        answer = action(ctx, client, params["token"], params.get("token_type_hint"))
    return _json(HttpResponse(200, answer))


def revoke_answer(tenant: Tenant, req: HttpRequest, client_ip: str) -> Response:
    """RFC 7009: 200 for any token, known or not, once the client has authenticated."""
    return _about_a_token(resources.revoke, tenant, req, client_ip)


def introspect_answer(tenant: Tenant, req: HttpRequest, client_ip: str) -> Response:
    """RFC 7662; only confidential clients may introspect."""
    return _about_a_token(resources.introspect, tenant, req, client_ip, confidential_only=True)


@bp.post("/revoke")
def revoke() -> ResponseReturnValue:
    """Answered before Flask by idp.oidc.api_routes too, with :func:`revoke_answer`."""
    return revoke_answer(current_tenant(), _http_request(), _client_ip())


@bp.post("/introspect")
def introspect() -> ResponseReturnValue:
    """Answered before Flask by idp.oidc.api_routes too, with :func:`introspect_answer`."""
    return introspect_answer(current_tenant(), _http_request(), _client_ip())


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    """Answered before Flask by idp.oidc.api_routes too, with :func:`userinfo_answer`."""
    return userinfo_answer(current_tenant(), request, _client_ip())


def userinfo_answer(tenant: Tenant, req: Request, client_ip: str) -> Response:
    """Core 5.3: bearer token in the Authorization header or, for POST, the form body
    (RFC 6750 2.1 and 2.2); never both."""
    header = req.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    from_header = value.strip() if scheme.lower() == "bearer" else ""
    from_body = ""
    if req.method == "POST" and req.mimetype == FORM:
        from_body = req.form.get("access_token", "")
    if from_header and from_body:
        raise BearerError("invalid_request", "Two tokens given.", 400)
    token = from_header or from_body
    if not token:
        raise BearerError("invalid_token", "No access token.", 401)
    with services().db.session() as s:
        claims = resources.userinfo(context_for(s, tenant, client_ip), token)
    resp = jsonify(claims)
    resp.headers.update(NO_STORE)
    return resp


def _client_ip() -> str:
    return request.remote_addr or "-"
