"""Self-service sign-up (a tenant setting, off by default): email and username, a code sent to
the address, a password, then the login flow, so the tenant's MFA policy applies as at any
first login.

- Every sign-up URL is a 404 while the tenant has sign-up off, and a 503 when this server
  cannot send email (the address must be verified).
- No account enumeration: the first page always answers "We sent a code to ...". When the
  address already belongs to an account of this tenant, that mailbox gets "you already have
  an account" instead of a code, so only its owner learns it. A username already taken is
  told only on the last page, once the address is verified.
- The code (factors.codes: 6 digits, 5 minutes, 5 attempts, kept as an HMAC) and the sign-up
  in progress live in the ephemeral store, bound to this browser session, never in the URL.
- Starting a sign-up is limited per IP and per address, with atomic counters.
- The new account gets exactly what it verified: its password (level 1). The login flow then
  asks for what the policy needs (an enrolment under Required, the offer under Optional).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from email_validator import validate_email
from flask import g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from factors import codes
from factors.contact import InvalidContact, email_key, normalize_email
from factors.errors import DeliveryFailed, InvalidCode, WeakSecret
from factors.kinds import KINDS
from flows.context import VerifiedFactor
from flows.errors import FlowNotFound
from flows.policy import Request
from flows.state import FlowState
from flows.steps import USERNAME_MAX, normalize_username
from idp import clock, directory, passwords
from idp.audit_web import audit_event
from idp.errors import HttpError, NotFound, Unavailable
from idp.login import flow_store
from idp.security import form_fields
from idp.services import services
from idp.store.models import Tenant, User
from idp.tenancy import current_tenant, tenant_blueprint, tenant_in

bp = tenant_blueprint("signup", __name__)

SESSION_KEY = "signup"
TTL = 30 * 60  # a sign-up in progress; its code lasts codes.LIFETIME
IP_LIMIT, IP_WINDOW = 10, 3600  # sign-ups started (and codes resent) per IP
ADDRESS_LIMIT, ADDRESS_WINDOW = 3, 3600  # emails sent per address
CREATING_TTL = 30  # seconds: one account creation at a time per address
FLOW_ID_MAX = 64
LIMITS = {"email": 254, "username": USERNAME_MAX * 4, "flow": FLOW_ID_MAX}


class TooMany(HttpError):
    code, status, title = "too_many_requests", 429, "Too many attempts"


@bp.context_processor
def _frame() -> dict[str, object]:
    return {"tenant": g.get("tenant")}  # none on the 404 of an unknown tenant


@bp.before_request
def _open() -> None:
    """Sign-up exists only where the tenant turned it on; it needs a way to send email."""
    if not current_tenant().signup_enabled:
        raise NotFound("There is nothing at this address.")
    if services().mail is None:
        raise Unavailable("Sign-up is not available right now. Please ask your administrator.")


# --- the sign-up in progress ----------------------------------------------------------------
@dataclass
class Pending:
    """One sign-up in progress, kept in the ephemeral store under :data:`SESSION_KEY`'s id."""

    id: str
    tenant: str
    email: str
    username: str
    challenge: dict[str, Any]  # codes.Challenge.to_json()
    taken: bool = False  # the address has an account: no code was sent, none will pass
    verified: bool = False
    flow: str = ""  # the login flow (an application's sign-in) to continue after sign-up
    clash: bool = False  # the username is taken: the last page asks for another

    @property
    def key(self) -> str:
        return f"signup:{self.id}"

    def save(self) -> None:
        services().store.set(self.key, json.dumps(asdict(self)).encode(), TTL)


def _load() -> Pending | None:
    """This browser's sign-up in progress, if any (and if it is of this tenant)."""
    pending_id = session.get(SESSION_KEY)
    if not isinstance(pending_id, str):
        return None
    raw = services().store.get(f"signup:{pending_id}")
    if raw is None:
        return None
    try:
        pending = Pending(**json.loads(raw))
    except (TypeError, ValueError):  # written by another version: start again
        return None
    return pending if pending.tenant == current_tenant().slug else None


def _end(pending: Pending) -> None:
    services().store.delete(pending.key)
    session.pop(SESSION_KEY, None)


def _digest(address: str) -> str:
    """A keyed digest of an address, for counter keys: the store's keys name no one."""
    key = services().cipher.derive("signup: addresses")
    return hmac.new(key, email_key(address).encode(), hashlib.sha256).hexdigest()[:32]


def _count(key: str, limit: int, window: int, message: str) -> None:
    """One more of a limited thing (an atomic increment); refuse past ``limit``."""
    if services().store.incr(f"count:signup:{key}", window) > limit:
        raise TooMany(message)


def _limit(address: str) -> None:
    _count(f"ip:{request.remote_addr or '-'}", IP_LIMIT, IP_WINDOW,
           "Too many sign-ups from this network. Try again in an hour.")  # fmt: skip
    _count(f"to:{_digest(address)}", ADDRESS_LIMIT, ADDRESS_WINDOW,
           "Too many emails to this address. Try again in an hour.")  # fmt: skip


# --- checks on what was typed ---------------------------------------------------------------
def _address(tenant: Tenant, typed: str) -> str:
    """The normalised address, or :class:`InvalidContact` with what is wrong (syntax only, no
    DNS; the tenant's domains)."""
    address = normalize_email(typed)
    domains = tenant.signup_domains or []
    if domains:
        domain = validate_email(address, check_deliverability=False).ascii_domain
        if domain not in domains:
            raise InvalidContact(f"Sign-up is open to addresses at: {', '.join(domains)}.")
    return address


def _username_problem(username: str) -> str | None:
    """What is wrong with a username by the directory's rules (idp.directory.create_user)."""
    if (
        not 0 < len(username) <= USERNAME_MAX
        or len(normalize_username(username)) > USERNAME_MAX
        or not directory.USERNAME_RE.match(username)
    ):
        return f"Choose a username of 1 to {USERNAME_MAX} characters, without spaces or slashes."
    if "@" in username:  # a chosen name spelt like someone's address could catch their mail
        return "Choose a username without @: your email address is asked for separately."
    return None


def _account_with(s: Session, tenant: Tenant, address: str) -> User | None:
    return s.scalar(
        select(User).where(User.tenant_id == tenant.id, User.email_norm == email_key(address))
    )


# --- mail -----------------------------------------------------------------------------------
def _send_code(tenant: Tenant, address: str, code: str) -> None:
    minutes = codes.LIFETIME // 60
    text = (
        f"{code} is your code to create an account at {tenant.name}. "
        f"It expires in {minutes} minutes.\n\n"
        f"If you did not ask for it, ignore this email: no account is made without it.\n"
        f"-- {tenant.name}"
    )
    _mail(address, f"{tenant.name}: your sign-up code", text)


def _send_already(tenant: Tenant, address: str) -> None:
    login = f"{services().settings.base_url.rstrip('/')}/t/{tenant.slug}/login"
    text = (
        f"Someone, perhaps you, tried to create an account at {tenant.name} with this email "
        f"address. You already have an account, so none was made.\n\n"
        f"Sign in here: {login}\n"
        f'If you forgot your password, choose "Forgot your password?" on that page.\n\n'
        f"If this was not you, you can ignore this email.\n-- {tenant.name}"
    )
    _mail(address, f"{tenant.name}: you already have an account", text)


def _mail(to: str, subject: str, text: str) -> None:
    mail = services().mail
    if mail is None:
        raise Unavailable("Sign-up is not available right now. Please ask your administrator.")
    try:
        mail.send(to, subject, text)
    except DeliveryFailed:
        raise Unavailable("We could not send an email just now. Please try again later.") from None


def _challenge(
    s: Session, tenant: Tenant, pending: Pending, now: int, previous: codes.Challenge | None = None
) -> None:
    """Send the address its code, or, when it has an account, the "you already have an
    account" email; either way the pending sign-up holds a fresh challenge (never answered
    for a taken address), so the two cases look and take alike. Raise
    :class:`codes.ResendTooSoon` within moments of the last email."""
    code, challenge = codes.issue(pending.email, now, previous)
    _limit(pending.email)
    pending.taken = _account_with(s, tenant, pending.email) is not None
    if pending.taken:
        _send_already(tenant, pending.email)
    else:
        _send_code(tenant, pending.email, code)
    pending.challenge = challenge.to_json()


# --- page 1: email and username -------------------------------------------------------------
def _start_page(
    values: dict[str, str], message: str | None = None, status: int = 200
) -> tuple[str, int]:
    return render_template("signup/start.html", values=values, message=message), status


@bp.get("/signup")
def start() -> ResponseReturnValue:
    flow = request.args.get("flow", "")[:FLOW_ID_MAX]
    return _start_page({"email": "", "username": "", "flow": flow})


@bp.post("/signup")
def begin() -> ResponseReturnValue:
    fields = form_fields(("email", "username", "flow"), LIMITS)
    tenant = current_tenant()
    username = fields["username"].strip()
    try:
        address = _address(tenant, fields["email"])
    except InvalidContact as exc:
        return _start_page(fields, exc.message, 400)
    problem = _username_problem(username)
    if problem:
        return _start_page(fields, problem, 400)
    now = clock.now()
    pending = Pending(secrets.token_urlsafe(24), tenant.slug, address, username, {},
                      flow=fields["flow"])  # fmt: skip
    with services().db.session() as s:
        _challenge(s, tenant, pending, now)
        audit_event(s, tenant, "signup.started")
    old = _load()
    if old is not None:
        _end(old)
    pending.save()
    session[SESSION_KEY] = pending.id
    return redirect(url_for(".code_page"), 303)


# --- page 2: the code -----------------------------------------------------------------------
def _code_page(pending: Pending, message: str | None = None, status: int = 200) -> tuple[str, int]:
    return render_template("signup/code.html", email=pending.email, message=message), status


def _pending_or_start() -> Pending | Response:
    pending = _load()
    return redirect(url_for(".start"), 303) if pending is None else pending


@bp.get("/signup/code")
def code_page() -> ResponseReturnValue:
    pending = _pending_or_start()
    if isinstance(pending, Response):
        return pending
    if pending.verified:
        return redirect(url_for(".password_page"), 303)
    return _code_page(pending)


@bp.post("/signup/code")
def verify() -> ResponseReturnValue:
    fields = form_fields(("code", "action"), {"code": 64})
    pending = _pending_or_start()
    if isinstance(pending, Response):
        return pending
    if pending.verified:
        return redirect(url_for(".password_page"), 303)
    tenant, now = current_tenant(), clock.now()
    if fields["action"] == "resend":
        previous = codes.Challenge.from_json(pending.challenge)
        try:
            with services().db.session() as s:
                _challenge(s, tenant, pending, now, previous)
        except codes.ResendTooSoon as exc:
            return _code_page(pending, f"Wait {exc.wait} seconds, then ask for a new code.", 429)
        pending.save()
        return _code_page(pending, None)
    challenge = codes.Challenge.from_json(pending.challenge)
    attempt = services().store.incr(f"count:signup:code:{pending.id}:{challenge.digest[:16]}",
                                    TTL)  # fmt: skip
    try:
        codes.verify(challenge, fields["code"], now, attempt)
        if pending.taken:  # no code was sent: none may pass, however lucky the guess
            raise InvalidCode()
    except codes.CodeExpired:
        return _code_page(pending, "That code has expired. Send a new code.", 400)
    except InvalidCode:
        return _code_page(pending, "That code is not right. Check the email and try again.", 400)
    pending.verified, pending.challenge = True, {}
    pending.save()
    return redirect(url_for(".password_page"), 303)


# --- page 3: the password, then the account -------------------------------------------------
def _password_page(
    pending: Pending, message: str | None = None, status: int = 200
) -> tuple[str, int]:
    tenant = current_tenant()
    return render_template(
        "signup/password.html",
        pending=pending,
        message=message,
        min_length=passwords.min_length(tenant, has_second_factor=False),
    ), status


def _verified_or_back() -> Pending | Response:
    pending = _load()
    if pending is None:
        return redirect(url_for(".start"), 303)
    if not pending.verified:
        return redirect(url_for(".code_page"), 303)
    return pending


@bp.get("/signup/password")
def password_page() -> ResponseReturnValue:
    pending = _verified_or_back()
    if isinstance(pending, Response):
        return pending
    return _password_page(pending)


@bp.post("/signup/password")
def create() -> ResponseReturnValue:
    fields = form_fields(("username", "password", "confirmation"), LIMITS)
    pending = _verified_or_back()
    if isinstance(pending, Response):
        return pending
    tenant = current_tenant()
    if pending.clash:  # the username was taken: the page asked for another
        username = fields["username"].strip()
        problem = _username_problem(username)
        if problem:
            return _password_page(pending, problem, 400)
        pending.username = username
        pending.save()
    password = fields["password"]
    if password != fields["confirmation"]:
        return _password_page(pending, "The two passwords differ. Type the same password twice.",
                              400)  # fmt: skip
    try:
        passwords.check_new(tenant, password, username=pending.username, email=pending.email,
                            has_second_factor=False)  # fmt: skip
    except WeakSecret as exc:
        return _password_page(pending, str(exc), 400)
    store = services().store
    lock = f"signup:creating:{_digest(pending.email)}"
    if not store.add(lock, b"1", CREATING_TTL):
        raise HttpError("This account is being created. Reload the page in a moment.", 409)
    try:
        return _create(pending, password)
    finally:
        store.delete(lock)


def _create(pending: Pending, password: str) -> ResponseReturnValue:
    svc, now = services(), clock.now()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        if _account_with(s, tenant, pending.email) is not None:
            _end(pending)  # the address is verified: its owner may know
            return render_template("signup/exists.html", email=pending.email), 409
        try:
            with s.begin_nested():
                user = directory.create_user(s, svc.passwords, tenant, pending.username,
                                             pending.email, "member", password,
                                             directory.Actor(ip=request.remote_addr))  # fmt: skip
        except (directory.Conflict, IntegrityError):  # taken before, or in the meantime
            pending.clash = True
            pending.save()
            return _password_page(pending, "That username is taken. Choose another.", 409)
        user.email_verified = True
        audit_event(s, tenant, "user.signed_up", subject=user.id)
        s.flush()
        user_id, username = user.id, user.username_norm
    state = _login_flow(tenant, pending.flow, now)
    state.identified, state.reauth = True, False
    state.user_id, state.username = user_id, username
    state.verified = [VerifiedFactor("password", KINDS["password"].amr, now)]
    flow_store.save(state)
    _end(pending)
    return redirect(url_for("login.login", flow=state.id), 303)


def _login_flow(tenant: Tenant, flow_id: str, now: int) -> FlowState:
    """The sign-in that led here (an application's, from the login page's link), if it is
    still this browser's and nobody was identified in it yet; else a new one."""
    if flow_id:
        try:
            state = flow_store.load(flow_id)
        except FlowNotFound:
            state = None
        if state is not None and state.tenant == tenant.slug and not state.identified:
            state.forget_challenges()
            return state
    return flow_store.start(tenant, Request(started_at=now), "")
