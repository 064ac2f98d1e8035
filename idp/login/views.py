"""GET shows the flow's current step; POST answers it (DESIGN.md "Login pages")."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import make_response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_user
from sqlalchemy.orm import Session

from factors.kinds import KINDS
from factors.webauthn_rp import MAX_RESPONSE
from flows.context import AuthContext
from flows.errors import FlowNotFound, NoUsableFactor, UnmetAuthenticationRequirements
from flows.policy import Request, policy_level
from flows.state import FlowState
from idp import clock, user_sessions
from idp.assurance import session_alive, session_context, tenant_policy, user_facts
from idp.audit_web import audit_event
from idp.errors import HttpError, StepwiseError, install, page
from idp.login import flow_store, outcomes, pages, remember
from idp.login.users import SignedInUser
from idp.login.web_env import WebEnv, engine_for
from idp.pending import SESSION_KEY as PENDING
from idp.security import allow_form_target, form_fields
from idp.services import services
from idp.sessions import ServerSession
from idp.signout import sign_out
from idp.store.models import User
from idp.tenancy import current_tenant, tenant_blueprint

bp = tenant_blueprint("login", __name__)
CONTACT_FIELDS = tuple(k.contact_field for k in KINDS.values() if k.contact_field)  # phone, email
ANSWER_FIELDS = ("username", "password", "code", "next_code", "factor", "action", *CONTACT_FIELDS,
                 "confirm", "credential", "label", "remember")  # fmt: skip
LIMITS = {"credential": MAX_RESPONSE}  # a WebAuthn response (JSON) from the browser


def _render(exc: StepwiseError) -> ResponseReturnValue:
    """The login surface: a flow that expired, finished, or belongs to another browser offers
    a fresh start; every other error is the app's page."""
    if isinstance(exc, FlowNotFound):
        return render_template("login/expired.html", tenant=current_tenant()), 400
    return page(exc)


install(bp, _render)


@bp.get("/login")
def login() -> ResponseReturnValue:
    tenant = current_tenant()
    flow_id = request.args.get("flow", "")
    if not flow_id:
        fresh = request.args.get("prompt") == "login"
        state = flow_store.start(
            tenant,
            Request(force_fresh=fresh, started_at=clock.now()),
            request.args.get("return_to", ""),
        )
        return redirect(url_for(".login", flow=state.id))
    return _show(flow_store.load(flow_id))


@bp.post("/login")
def answer() -> ResponseReturnValue:
    tenant = current_tenant()
    state = flow_store.load(request.args.get("flow", ""))
    try:
        answer = form_fields(ANSWER_FIELDS, LIMITS)
    except HttpError as exc:
        return _show(state, exc.message, 400)
    with services().db.session() as s:
        env = _env(s)
        engine = engine_for(s, tenant)
        step = request.form.get("step", "")
        if step.startswith("verify_") and remember.offered_days(tenant, state):
            state.remember = answer.get("remember") == "yes"  # "Don't ask again" (kept)
        try:  # inside the transaction: what the step recorded (a used code) is kept
            progress = engine.submit(state, step, answer, env)
        except (UnmetAuthenticationRequirements, NoUsableFactor) as exc:
            return _stopped(state, exc)
        outcomes.answered(tenant.slug, step, progress.result, bool(env.refusals))
        if progress.result is not None and (progress.result.rejected or progress.failed):
            _audit_failure(s, state, step, progress.result.message or "")
        if progress.failed:
            flow_store.finish(state)
            assert progress.result is not None
            return render_template(
                "errors/error.html", title="Cannot sign in", message=progress.result.message
            ), 403
        if not progress.finished:
            flow_store.save(state)
            message = progress.result.message if progress.result else None
            return _show(state, message, 200, progress.remaining, s)
        return _sign_in(s, state)


def _sign_in(s: Session, state: FlowState) -> ResponseReturnValue:
    """The flow has all it needs: sign its user in with the factors it verified."""
    tenant = current_tenant()
    user = s.get(User, state.user_id)
    assert user is not None
    needs = policy_level(tenant_policy(tenant), user_facts(user))
    prior = session_context()
    before = prior.level() if prior is not None and prior.user_id == user.id else None
    level = _complete(s, state, user, needs)
    browser = remember.after_login(s, tenant, state, user, level, needs, clock.now())
    factors = [f.kind for f in state.verified]
    extra = {"remembered_browser": True} if browser.used else {}
    audit_event(s, tenant, "login.succeeded", subject=user.id, factors=factors, **extra)
    # An application's flow that raised a signed-in user's level: a step-up met.
    stepped_up = bool(state.continue_to) and before is not None and level > before
    outcomes.signed_in(tenant.slug, factors, stepped_up)
    flow_store.finish(state)
    done = redirect(state.return_to)
    if browser.token is not None:
        remember.set_cookie(done, tenant, browser.token)
    return done


def _audit_failure(s: Session, state: FlowState, step: str, message: str) -> None:
    """A wrong password or code, or a refused sign-in, in the audit log: ``login.failed`` at
    the password, ``mfa.code_failed`` at a second factor.

    When no account matched, the name typed is not kept (people type their password there):
    only a keyed digest of it, so that repeated attempts at one name can be told apart."""
    details: dict[str, str] = {"step": step[:40], "reason": message}
    if step in ("password", "identify"):
        event = "login.failed"
        if state.user_id is None:
            key = services().cipher.derive("audit: names typed")
            typed = (state.username or "").encode()
            details["name_digest"] = hmac.new(key, typed, hashlib.sha256).hexdigest()[:16]
    else:
        event = "mfa.code_failed"
    audit_event(s, current_tenant(), event, subject=state.user_id, **details)


def _stopped(
    state: FlowState, exc: UnmetAuthenticationRequirements | NoUsableFactor
) -> ResponseReturnValue:
    """The flow cannot go on; it ends here.

    - The level asked for cannot be reached: an application's request returns to it with
      ``unmet_authentication_requirements``; a sign-in of our own shows why.
    - The user's second factors cannot be verified here and nothing new may be bound after the
      password alone (NoUsableFactor): a page that sends them to their admin, never an
      enrolment.
    """
    flow_store.finish(state)
    if isinstance(exc, UnmetAuthenticationRequirements) and state.continue_to:
        return redirect(state.return_to + ("&" if "?" in state.return_to else "?") + "unmet=1")
    return render_template("errors/error.html", title=exc.title, message=exc.message), 403


def _env(s: Session) -> WebEnv:
    svc = services()
    return WebEnv(s, current_tenant(), clock.now(), request.remote_addr or "-",
                        svc.passwords)  # fmt: skip


def _complete(s: Session, state: FlowState, user: User, policy_needs: int) -> int:
    """Merge the flow's factors into the session's context, rotate the session id, sign in,
    and record the sign-in (idp.user_sessions); return the session's level.

    A new session remembers the level the tenant policy asked of this user, so that a later
    policy change can wait for the next login (``mfa_apply=next_login``).
    """
    ctx = session_context()
    if ctx is None or ctx.user_id != user.id or not session_alive(user, ctx):
        pending = [f for f in session.get("flows", []) if f != state.id]
        # OIDC and SAML requests waiting for this login survive the new session.
        waiting = {k: session[k] for k in (PENDING,) if k in session}
        session.clear()
        session["flows"] = pending
        session.update(waiting)
        session["sid"] = secrets.token_urlsafe(16)  # OpenID Connect session id (``sid``)
        session["policy_level"] = policy_needs
        ctx = AuthContext(user.id)
    for factor in state.verified:
        ctx = ctx.with_factor(factor)
    session["auth"] = ctx.to_json()
    user_sessions.record(s, user, session["sid"], ip=request.remote_addr,
                         user_agent=request.user_agent.string, level=ctx.level(), amr=ctx.amr(),
                         now=clock.now())  # fmt: skip
    login_user(SignedInUser.of(user))
    assert isinstance(session, ServerSession)
    session.rotate()
    return ctx.level()


def _show(
    state: FlowState,
    message: str | None = None,
    status: int = 200,
    remaining: list[str] | None = None,
    s: Session | None = None,
) -> ResponseReturnValue:
    if s is None:
        with services().db.session() as s:
            return _show(state, message, status, remaining, s)
    tenant = current_tenant()
    if remaining is None:
        try:
            remaining = engine_for(s, tenant).remaining(state)
        except (UnmetAuthenticationRequirements, NoUsableFactor) as exc:
            return _stopped(state, exc)
    if not remaining:
        if state.identified and state.verified:  # verified before the login pages (sign-up)
            return _sign_in(s, state)
        return redirect(state.return_to)
    page = render_template(
        f"login/{remaining[0]}.html",
        tenant=tenant,
        state=state,
        step=remaining[0],
        next_steps=remaining[1:],
        message=message,
        remember_days=remember.offered_days(tenant, state),
        **pages.page_data(s, tenant, state, remaining[0], _env(s)),
    )
    return allow_form_target(make_response(page, status), state.continue_to)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    tenant = current_tenant()
    if request.method == "GET":
        return render_template("login/logout.html", tenant=tenant)
    with services().db.session() as s:
        sign_out(s, tenant, "logout")
    return render_template("login/signed_out.html", tenant=tenant)
