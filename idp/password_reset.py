"""Forgotten passwords: ask for a link, open it, pass the second factor, choose a new password.

- ``/forgot-password`` takes a username or an email address and always answers the same
  page (idp.recovery: no enumeration, rate limits, the mail sent off the request).
- ``/reset-password?token=...`` shows only a "Continue" button (no Referer leaves the page);
  posting it uses the link up, so the token leaves the address bar at once, and starts a
  reset flow bound to this browser session.
- ``/reset-password/flow`` runs the login's second-factor steps as flows.recovery plans them:
  the reset never bypasses MFA, and a user whose factors cannot be verified is sent to their
  administrator. Only then is the new password taken (idp.passwords rules).

The reset does not sign the user in: every session ends, and they sign in with the new
password, when the tenant's MFA policy applies as at any login.
"""

from __future__ import annotations

from flask import Response, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from factors.contact import email_key
from factors.errors import StepwiseError, WeakSecret
from factors.webauthn_rp import MAX_RESPONSE
from flows.errors import FlowNotFound, NoUsableFactor
from flows.state import FlowState
from idp import clock, links, password_changes, passwords, recovery
from idp.audit_web import audit_event
from idp.errors import HttpError, install, page
from idp.login import flow_store, pages
from idp.security import form_fields
from idp.services import services
from idp.store.models import User
from idp.tenancy import current_tenant, tenant_blueprint, tenant_in

bp = tenant_blueprint("reset", __name__)
INVALID = "This link is not valid any more. Ask for a new one."
EXPIRED = "This password reset has expired. Ask for a new link."
TOKEN_MAX = 64
ANSWER_FIELDS = ("code", "factor", "action", "credential")
LIMITS = {"credential": MAX_RESPONSE, "password": 1024, "confirmation": 1024}


def _render(exc: StepwiseError) -> ResponseReturnValue:
    """An unknown, used, expired or tampered link: one message for every reason."""
    if isinstance(exc, links.LinkInvalid):
        body = render_template("reset/link.html", tenant=current_tenant(), invalid=INVALID)
        return _no_referrer(body, 400)
    if isinstance(exc, FlowNotFound):
        return render_template("reset/link.html", tenant=current_tenant(), invalid=EXPIRED), 400
    return page(exc)


install(bp, _render)


def _no_referrer(body: str, status: int = 200) -> Response:
    """A page whose address holds a token: no Referer, no cache."""
    resp = make_response(body, status)
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/forgot-password")
def forgot() -> ResponseReturnValue:
    return render_template("reset/forgot.html", tenant=current_tenant())


@bp.post("/forgot-password")
def send() -> ResponseReturnValue:
    entry = form_fields(("username",))["username"]
    tenant, svc = current_tenant(), services()
    if not entry.strip():
        return render_template("reset/forgot.html", tenant=tenant,
                               message="Enter your username or email address."), 400  # fmt: skip
    try:
        with svc.db.session() as s:
            mail = recovery.request_link(s, svc, tenant_in(s), entry,
                                         request.remote_addr or "-", clock.now())  # fmt: skip
    except recovery.TooManyRequests:
        message = "Too many requests from this network. Try again in an hour."
        return render_template("reset/forgot.html", tenant=tenant, message=message), 429
    if mail is not None:  # after the commit: the link works when the mail arrives
        mail.send_later(svc)
    return render_template("reset/sent.html", tenant=tenant, minutes=links.RESET_TTL // 60)


@bp.get("/reset-password")
def link() -> ResponseReturnValue:
    token = request.args.get("token", "")[: TOKEN_MAX + 1]
    svc = services()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        user = links.peek(s, svc.cipher.derive("links"), tenant, token, links.RESET_PASSWORD,
                          clock.now())  # fmt: skip
        if user.status != "active":
            raise links.LinkInvalid()
        body = render_template("reset/link.html", tenant=tenant, token=token,
                               username=user.username)  # fmt: skip
    return _no_referrer(body)


@bp.post("/reset-password")
def redeem() -> ResponseReturnValue:
    token = form_fields(("token",))["token"][: TOKEN_MAX + 1]
    svc, now = services(), clock.now()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        key = svc.cipher.derive("links")
        target = links.peek_link(s, key, tenant, token, links.RESET_PASSWORD, now).target
        user = links.redeem(s, key, tenant, token, links.RESET_PASSWORD, now)
        # A link sent to an address the account no longer has is void (the holder of the old
        # mailbox must not reset the password after an email change).
        if user.status != "active" or not target or email_key(target) != user.email_norm:
            raise links.LinkInvalid()
        recovery.start(tenant, user, email_key(target), now)
    return redirect(url_for(".flow"))


def _env(s: Session, mailbox: str) -> recovery.RecoveryEnv:
    return recovery.RecoveryEnv(s, current_tenant(), clock.now(), request.remote_addr or "-",
                                services().passwords, mailbox)  # fmt: skip


def _admin_page(state: FlowState, exc: NoUsableFactor) -> ResponseReturnValue:
    """No second factor of the user's can be verified here: only their admin can help."""
    recovery.finish(state)
    return render_template("errors/error.html", tenant=current_tenant(), title=exc.title,
                           message=exc.message), 403  # fmt: skip


def _show(
    s: Session, state: FlowState, mailbox: str, message: str | None = None, status: int = 200
) -> ResponseReturnValue:
    """The flow's current step, or the new password's form once nothing is missing."""
    env = _env(s, mailbox)
    try:
        remaining = recovery.engine(current_tenant(), env).remaining(state)
    except NoUsableFactor as exc:
        return _admin_page(state, exc)
    tenant = current_tenant()
    user = s.get(User, state.user_id)
    assert user is not None
    if not remaining:
        facts = env.facts(user.id)
        return render_template(
            "reset/new_password.html",
            tenant=tenant,
            username=user.username,
            min_length=passwords.min_length(tenant, facts.has_second_factor),
            message=message,
        ), status
    step = remaining[0]
    data = pages.page_data(s, tenant, state, step, env)
    if step == "verify_webauthn":
        data["options"] = []  # a key holder proves a key: no other method to switch to
    body = render_template(
        f"login/{step}.html",
        tenant=tenant,
        state=state,
        step=step,
        next_steps=remaining[1:],
        message=message,
        step_url=url_for(".answer"),
        **data,
    )
    flow_store.save(state)  # a WebAuthn challenge made for the page is kept with the flow
    return body, status


@bp.get("/reset-password/flow")
def flow() -> ResponseReturnValue:
    state, mailbox = recovery.load(current_tenant(), clock.now())
    with services().db.session() as s:
        return _show(s, state, mailbox)


@bp.post("/reset-password/flow")
def answer() -> ResponseReturnValue:
    state, mailbox = recovery.load(current_tenant(), clock.now())
    try:
        answer = form_fields(ANSWER_FIELDS, LIMITS)
    except HttpError as exc:
        with services().db.session() as s:
            return _show(s, state, mailbox, exc.message, 400)
    with services().db.session() as s:
        env = _env(s, mailbox)
        step = request.form.get("step", "")
        try:
            progress = recovery.engine(current_tenant(), env).submit(state, step, answer, env)
        except NoUsableFactor as exc:
            return _admin_page(state, exc)
        result = progress.result
        if result is not None and (result.rejected or progress.failed):
            audit_event(s, current_tenant(), "mfa.code_failed", subject=state.user_id,
                        step=step[:40], reason=result.message or "",
                        via="password_reset")  # fmt: skip
        if progress.failed:
            recovery.finish(state)
            assert result is not None
            return render_template("errors/error.html", tenant=current_tenant(),
                                   title="Cannot reset the password",
                                   message=result.message), 403  # fmt: skip
        flow_store.save(state)
        if progress.finished:
            return redirect(url_for(".flow"))
        return _show(s, state, mailbox, result.message if result else None)


@bp.post("/reset-password/new")
def new_password() -> ResponseReturnValue:
    state, mailbox = recovery.load(current_tenant(), clock.now())
    fields = form_fields(("password", "confirmation"), LIMITS)
    svc, tenant = services(), current_tenant()
    with svc.db.session() as s:
        env = _env(s, mailbox)
        try:
            remaining = recovery.engine(tenant, env).remaining(state)
        except NoUsableFactor as exc:
            return _admin_page(state, exc)
        if remaining:  # the second factor first: a password posted early is refused
            return _show(s, state, mailbox, "Verify it's you first.", 403)
        user = s.get(User, state.user_id)
        assert user is not None
        if user.status != "active":
            recovery.finish(state)
            raise links.LinkInvalid()
        password = fields["password"]
        try:
            if password != fields["confirmation"]:
                raise WeakSecret("The two passwords differ. Type the same password twice.")
            passwords.check_new(tenant_in(s), password, username=user.username,
                                email=user.email,
                                has_second_factor=env.facts(user.id).has_second_factor)  # fmt: skip
        except WeakSecret as exc:
            return _show(s, state, mailbox, str(exc), 400)
        password_changes.reset(s, svc, tenant_in(s), user, password, now=clock.now(),
                               ip=request.remote_addr, mailbox=bool(mailbox))  # fmt: skip
        username = user.username
    recovery.finish(state)
    return render_template("reset/done.html", tenant=tenant, username=username)
