"""The OpenID Provider's browser endpoints (blueprint ``oidc``), which the user's browser
visits with cookies: authorization (OpenID Connect Core 1.0 section 3.1.2) with its resume
from the login flow and the consent page, and RP-initiated logout (OpenID Connect
RP-Initiated Logout 1.0). The machine endpoints are in idp.oidc.endpoints.

Errors are rendered in one handler (:func:`render_error`): redirected to the client when
``redirectable``, else a page.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import make_response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from factors.errors import StepwiseError
from flows.assurance import Reason
from flows.context import AuthContext
from flows.policy import Request
from idp import assurance, errors, pending
from idp.crosssite import bounce
from idp.errors import HttpError
from idp.login import flow_store, outcomes
from idp.oidc import acr, id_token
from idp.oidc import authorize as authz
from idp.oidc import claims as scope_claims
from idp.oidc.clients import cached_client
from idp.oidc.context import Context
from idp.oidc.current import context, issuer_of, request_params
from idp.oidc.errors import OIDC_ERRORS, LogoutError, OAuthError
from idp.oidc.tokens import InvalidToken
from idp.security import allow_form_target
from idp.services import services
from idp.signout import sign_out
from idp.store.models import Client, Consent, User
from idp.tenancy import current_tenant, tenant_blueprint

bp = tenant_blueprint("oidc", __name__)


# --- pending requests, bound to this browser session (idp.pending) ------------------------
def _save_pending(areq: authz.AuthorizationRequest) -> None:
    pending.park("oidc", areq.id, areq.to_json())


def _load_pending(req_id: str) -> authz.AuthorizationRequest:
    raw = pending.find("oidc", req_id)
    if raw is None:
        raise HttpError(
            "This sign-in request has expired or belongs to another browser. "
            "Go back to the application and start again."
        )
    return authz.AuthorizationRequest.from_json(raw)


def _drop_pending(areq: authz.AuthorizationRequest) -> None:
    pending.drop("oidc", areq.id)


# --- responses ------------------------------------------------------------------------------
def _deliver(areq: authz.AuthorizationRequest, params: list[tuple[str, str]],
             client_name: str) -> ResponseReturnValue:  # fmt: skip
    if areq.response_mode == "form_post":
        page = render_template(
            "oidc/form_post.html",
            tenant=current_tenant(),
            redirect_uri=areq.redirect_uri,
            params=params,
            client_name=client_name,
        )
        return allow_form_target(make_response(page), areq.redirect_uri)
    return redirect(authz.query_redirect(areq.redirect_uri, params))


def render_error(exc: StepwiseError) -> ResponseReturnValue:
    """This surface's one error handler. An error about a validated request is redirected
    to the client (RFC 6749 4.1.2.1, its pending copy dropped); the provider's other errors
    are shown on the tenant's error page; anything else is the app's page."""
    if exc.redirectable and isinstance(exc, authz.AuthorizeError):
        if pending.find("oidc", exc.areq.id) is not None:
            _drop_pending(exc.areq)
        params = authz.error_params(issuer_of(current_tenant()), exc)
        return _deliver(exc.areq, params, "the application")
    if isinstance(exc, OAuthError):
        page = render_template(
            "errors/error.html", tenant=current_tenant(), title=exc.title, message=exc.message
        )
        return page, exc.status
    return errors.page(exc)


errors.install(bp, render_error)


# --- authorization endpoint ---------------------------------------------------------------
@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    """OpenID Connect Core 1.0 section 3.1.2 (GET and POST)."""
    if request.method == "POST":
        return bounce(".authorize", request_params())
    params = request_params()
    with services().db.session() as s:
        ctx = context(s)
        return _proceed(s, ctx, authz.validate(ctx, params))


@bp.get("/authorize/resume")
def resume() -> ResponseReturnValue:
    """Where the login flow returns to: check again, then consent or a code."""
    areq = _load_pending(request.args.get("req", ""))
    if request.args.get("unmet"):  # the login flow could not reach what was asked
        raise authz.AuthorizeError(areq, *OIDC_ERRORS[Reason.UNMET])
    with services().db.session() as s:
        return _proceed(s, context(s), areq, after_login=True)


@bp.post("/authorize/consent")
def consent() -> ResponseReturnValue:
    areq = _load_pending(request.args.get("req", ""))
    with services().db.session() as s:
        ctx = context(s)
        client = _client(s, ctx, areq)
        decision = _decide(s, ctx, client, areq, after_login=True, consent=False)
        user, auth = decision.user, decision.verdict.context
        if not decision.verdict.ready or user is None or auth is None:
            return redirect(url_for(".resume", req=areq.id))  # signed out meanwhile
        if request.form.get("action") != "allow":
            raise authz.AuthorizeError(areq, "access_denied", "The user denied access.")
        _remember_consent(s, user, client, areq, ctx.now)
        return _issue(s, ctx, areq, client, user, auth, decision.verdict.remembered)


def _flow_request(ctx: Context, client: Client, areq: authz.AuthorizationRequest) -> Request:
    return Request(
        requested_level=acr.requested_level(ctx.acr_levels(), areq.acr_values),
        essential=areq.acr_essential,
        app_min_level=client.min_level,
        max_age=areq.max_age,
        force_fresh="login" in areq.prompt or areq.max_age == 0,
        started_at=areq.started_at,
    )


def _client(s: Session, ctx: Context, areq: authz.AuthorizationRequest) -> Client:
    """The client, still registered with this redirect URI."""
    client = cached_client(s, ctx.keys.config, ctx.tenant, areq.client_id)
    if client is None or areq.redirect_uri not in client.redirect_uris:
        # Its redirect URI may be gone: never send anything there (RFC 6749 4.1.2.1).
        raise authz.NotRedirectable("The client changed; start again.")
    return client


def _decide(
    s: Session,
    ctx: Context,
    client: Client,
    areq: authz.AuthorizationRequest,
    after_login: bool = False,
    consent: bool = True,
) -> assurance.Decision:
    """The assurance authority's verdict on this session for ``areq``. prompt=login and
    max_age=0 ask again whatever the session holds (Core 3.1.2.1); once that login is done,
    its factors are newer than the request and satisfy the check."""
    return assurance.decide(
        s,
        ctx.tenant,
        _flow_request(ctx, client, areq),
        forced=not after_login and ("login" in areq.prompt or areq.max_age == 0),
        consent=(lambda user: _needs_consent(s, client, user, areq)) if consent else None,
        now=ctx.now,
    )


def _proceed(
    s: Session, ctx: Context, areq: authz.AuthorizationRequest, after_login: bool = False
) -> ResponseReturnValue:
    client = _client(s, ctx, areq)
    decision = _decide(s, ctx, client, areq, after_login)
    found = decision.verdict
    if found.ready:
        assert decision.user is not None and found.context is not None
        return _issue(s, ctx, areq, client, decision.user, found.context, found.remembered)
    reason = found.reason
    assert reason is not None
    if reason is Reason.UNMET or "none" in areq.prompt:
        raise authz.AuthorizeError(areq, *OIDC_ERRORS[reason])
    _save_pending(areq)
    if reason is Reason.CONSENT_NEEDED:
        assert decision.user is not None
        scopes = [
            (sc, scope_claims.SCOPE_DESCRIPTIONS[sc]) for sc in scope_claims.split(areq.scope)
        ]
        page = render_template(
            "oidc/consent.html",
            tenant=ctx.tenant,
            client_name=client.name,
            username=decision.user.username,
            scopes=scopes,
            req_id=areq.id,
        )
        return allow_form_target(make_response(page), areq.redirect_uri)
    if Reason.LEVEL_MISSING in found.reasons:
        outcomes.step_up_requested(ctx.tenant.slug)
    state = flow_store.start(
        ctx.tenant,
        _flow_request(ctx, client, areq),
        url_for(".resume", req=areq.id),
        continue_to=areq.redirect_uri,
    )
    return redirect(url_for("login.login", flow=state.id))


def _needs_consent(
    s: Session, client: Client, user: User, areq: authz.AuthorizationRequest
) -> bool:
    if client.first_party:
        return False
    if "consent" in areq.prompt:
        return True
    given = s.scalar(
        select(Consent).where(Consent.user_id == user.id, Consent.client_id == client.client_id)
    )
    return given is None or not set(scope_claims.split(areq.scope)) <= set(given.scopes)


def _remember_consent(s: Session, user: User, client: Client,
                      areq: authz.AuthorizationRequest, now: int) -> None:  # fmt: skip
    given = s.scalar(
        select(Consent).where(Consent.user_id == user.id, Consent.client_id == client.client_id)
    )
    scopes = scope_claims.split(areq.scope)
    if given is None:
        s.add(Consent(user_id=user.id, client_id=client.client_id, scopes=scopes,
                      created_at=now))  # fmt: skip
    else:
        given.scopes = sorted(set(given.scopes) | set(scopes))


def _issue(s: Session, ctx: Context, areq: authz.AuthorizationRequest, client: Client,
           user: User, auth: AuthContext, remembered: bool) -> ResponseReturnValue:  # fmt: skip
    """A code for the session's verified factors; ``remembered``: the policy's second factor
    was met by a remembered browser (never a factor: acr and amr say what was verified)."""
    if not session.get("sid"):
        session["sid"] = secrets.token_urlsafe(16)
    who = authz.principal(areq, user, auth, _flow_request(ctx, client, areq).not_before(),
                          session["sid"], ctx.acr_levels())  # fmt: skip
    who.remembered = remembered
    params = authz.issue_code(ctx, areq, who)
    _drop_pending(areq)
    return _deliver(areq, params, client.name)


# --- RP-initiated logout -------------------------------------------------------------------
@bp.route("/end-session", methods=["GET", "POST"])
def end_session() -> ResponseReturnValue:
    """OpenID Connect RP-Initiated Logout 1.0 section 2 (GET and POST)."""
    if request.method == "POST":
        return bounce(".end_session", request_params())
    params = {k: v[0] for k, v in request_params().items() if v}
    hint, target = params.get("id_token_hint"), params.get("post_logout_redirect_uri")
    with services().db.session() as s:
        ctx = context(s)
        claims: dict[str, Any] | None = None
        if hint:
            try:  # an expired hint still names the session (section 2: "even if expired")
                keyset = ctx.verifier()
                claims = id_token.verify(hint, keyset, ctx.issuer, ctx.now, leeway=10**9)
            except InvalidToken:
                raise LogoutError("The id_token_hint is not valid.") from None
        aud = claims.get("aud") if claims else None
        client_id = params.get("client_id") or (aud[0] if isinstance(aud, list) else aud)
        if claims and params.get("client_id") and params["client_id"] != claims.get("aud"):
            raise LogoutError("client_id does not match the id_token_hint.")
        client = (
            cached_client(s, ctx.keys.config, ctx.tenant, str(client_id)) if client_id else None
        )
        if claims is not None and client is None:
            raise LogoutError("The id_token_hint is not valid.")
        if target and (client is None or target not in client.post_logout_redirect_uris):
            raise LogoutError("The post_logout_redirect_uri is not registered.")
        asked = {
            "id": secrets.token_urlsafe(12),
            "target": target,
            "state": params.get("state"),
            "client_name": client.name if client else "",
        }
        auth = assurance.session_context()
        same_session = claims is not None and claims.get("sid") == session.get("sid")
        if auth is None or same_session:
            return _sign_out(s, ctx, asked)
    session["end_session"] = asked
    page = render_template(
        "login/confirm_sign_out.html",
        tenant=ctx.tenant,
        asker=asked["client_name"],
        action=url_for(".end_session_confirm", req=asked["id"]),
    )
    return allow_form_target(make_response(page), target)


@bp.post("/end-session/confirm")
def end_session_confirm() -> ResponseReturnValue:
    asked = session.get("end_session")
    if not asked or asked.get("id") != request.args.get("req"):
        raise HttpError("This sign-out request has expired. Go back and try again.")
    session.pop("end_session", None)
    if request.form.get("action") != "logout":
        return render_template(
            "errors/error.html",
            tenant=current_tenant(),
            title="Still signed in",
            message="You are still signed in.",
        )
    with services().db.session() as s:
        return _sign_out(s, context(s), asked)


def _sign_out(s: Session, ctx: Context, logout: dict[str, Any]) -> ResponseReturnValue:
    sign_out(s, ctx.tenant, "oidc_logout")
    if logout.get("target"):
        extra = [("state", logout["state"])] if logout.get("state") else []
        return redirect(authz.query_redirect(logout["target"], extra))
    return render_template("login/signed_out.html", tenant=ctx.tenant)
