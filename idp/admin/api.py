"""The JSON admin API: the tenant's MFA policy and each user's MFA.

Callers authenticate with an RFC 6750 bearer token: an access token of this tenant obtained
by the client-credentials grant (RFC 6749 4.4) by a client created with ``--admin-api``, with
scope ``stepwise:admin``. Cookies are never accepted here, so the API needs no CSRF token.
Errors are RFC 9457 problem documents (``application/problem+json``) that also carry OAuth's
``error`` and ``error_description`` members, with the HTTP status; changing an owner is
``403 forbidden``, since only owners may (idp.directory.check_may_manage).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session
from werkzeug.http import HTTP_STATUS_CODES

from idp.directory import Actor, DirectoryError, require_user
from idp.errors import HttpError, install, problem
from idp.mfa import admin as mfa_admin
from idp.oidc import claims, resources, tokens
from idp.oidc.clients import find_client
from idp.oidc.current import context
from idp.services import services
from idp.store.models import Tenant, User
from idp.tenancy import current_tenant, tenant_blueprint
from idp.untrusted import parse_json

bp = tenant_blueprint("admin_api", __name__, "/admin/api")


class ApiError(HttpError):
    """An admin API error with its status and OAuth-style code (RFC 6750 3.1 for tokens)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description, status)
        self.code, self.title = error, HTTP_STATUS_CODES.get(status, "Error")


# Every error under /admin/api, ours or not (DirectoryError 400, Forbidden 403: an API client
# is never an owner, so it may not change one), is a problem document.
install(bp, problem)


def _authorize(s: Session) -> Actor:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "invalid_token", "A bearer access token is required.")
    try:
        found = resources.access_claims(context(s), token.strip())
    except tokens.InvalidToken:
        raise ApiError(401, "invalid_token", "The access token is invalid or expired.") from None
    client = find_client(s, current_tenant(), str(found.get("client_id", "")))
    scopes = claims.split(str(found.get("scope", "")))
    if (
        client is None
        or not client.admin_api
        or found.get("sub") != client.client_id  # a client's own token, not a user's
        or claims.ADMIN_SCOPE not in scopes
    ):
        raise ApiError(403, "insufficient_scope", f"The token lacks scope {claims.ADMIN_SCOPE}.")
    return Actor(client_id=client.client_id, ip=request.remote_addr)


def _body() -> dict[str, Any]:
    data = None
    if request.mimetype == "application/json":
        try:
            data = parse_json(request.get_data())
        except ValueError:  # not JSON, not UTF-8, or nested too deeply
            data = None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "The body must be a JSON object.")
    return data


def _tenant(s: Session) -> Tenant:
    return s.merge(current_tenant())


def _user(s: Session, tenant: Tenant, username: str) -> User:
    try:
        return require_user(s, tenant, username)
    except DirectoryError as exc:
        raise ApiError(404, "not_found", str(exc)) from None


@bp.route("/mfa-policy", methods=["GET", "PUT", "PATCH"])
def policy() -> ResponseReturnValue:
    with services().db.session() as s:
        actor = _authorize(s)
        tenant = _tenant(s)
        if request.method == "GET":
            return jsonify(mfa_admin.policy_json(tenant))
        return jsonify(mfa_admin.set_policy(s, tenant, _body(), actor))


@bp.route("/users/<username>/mfa", methods=["GET", "PUT", "PATCH"])
def user_mfa(username: str) -> ResponseReturnValue:
    with services().db.session() as s:
        actor = _authorize(s)
        tenant = _tenant(s)
        user = _user(s, tenant, username)
        if request.method != "GET":
            body = _body()
            if set(body) != {"required"} or not isinstance(body["required"], bool):
                raise ApiError(400, "invalid_request", 'Send {"required": true|false}.')
            mfa_admin.require_for_user(s, tenant, user, body["required"], actor)
        return jsonify(mfa_admin.user_mfa_json(s, user))


@bp.post("/users/<username>/mfa/reset")
def user_reset(username: str) -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as s:
        actor = _authorize(s)
        tenant = _tenant(s)
        user = _user(s, tenant, username)
        removed = mfa_admin.reset_user(s, svc, tenant, user, actor)
        return jsonify({**mfa_admin.user_mfa_json(s, user), "removed": removed})
