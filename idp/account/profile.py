"""The account page's profile section: names and language, email address, contact number.

- Names and language change at once (the signed-in user; no re-authentication: they are not
  used to sign in or to recover an account).
- The email address is used to sign in (``Tenant.login_by_email``) and to reset a password,
  so a change needs re-authentication at the account's level (DESIGN.md "Sensitive
  actions") and takes effect only once the new address is proved by a link
  (idp.email_change). The link's page works signed out, as the link may be opened on
  another device.
- The contact number is one of the user's SMS factors, each verified at enrolment.

Links are limited per account and per client IP.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session

from idp import clock, email_change, profiles
from idp.account.views import bp
from idp.links import LinkInvalid
from idp.login.guard import reauthenticate, reauthenticated
from idp.services import services
from idp.store.models import User
from idp.tenancy import current_tenant, tenant_in

__all__ = ["bp"]

FIELD_MAX = 1000  # longer input is refused before it is looked at
TOKEN_MAX = 64
LINK_LIMITS = (("user", 5), ("ip", 20))  # links emailed per hour, per account and per IP
PENDING = "profile_new_email"  # the address typed before re-authentication
SAVED = {
    "names": "Your profile is saved.",
    "phone": "Your contact number is saved.",
    "email": "We sent a link to your new address. Your address changes when you open it.",
    "verify": "We sent a link to your address. Open it to verify the address.",
}
INVALID_LINK = "This link is not valid any more. Ask for a new one on your profile page."
DONE = "Thank you. The link is used: we sent the result to the address it was sent to."


def _user(s: Session) -> User:
    user = s.get(User, int(current_user.get_id()))
    assert user is not None
    return user


def _page(s: Session, user: User, status: int = 200, **context: Any) -> ResponseReturnValue:
    contact = profiles.contact_credential(user)
    saved = SAVED.get(request.args.get("saved", ""))
    page = render_template(
        "account/profile.html",
        tenant=current_tenant(),
        user=user,
        phones=[(f"sms:{c.id}", c.label) for c in profiles.sms_factors(user)],
        contact=f"sms:{contact.id}" if contact else "",
        saved=saved if status == 200 and "message" not in context else None,
        new_email=session.get(PENDING, ""),
        confirmed=reauthenticated(s),
        limits=profiles.NAME_LIMITS,
        **context,
    )
    return page, status


def _field(name: str) -> str:
    value = request.form.get(name, "")
    if len(value) > FIELD_MAX:
        raise profiles.ProfileInvalid(f"{profiles.FIELD_LABELS.get(name, name)}: too long.")
    return value


@bp.get("/account/profile")
def profile() -> ResponseReturnValue:
    with services().db.session() as s:
        return _page(s, _user(s))


@bp.post("/account/profile")
def save_names() -> ResponseReturnValue:
    with services().db.session() as s:
        user = _user(s)
        try:
            names = profiles.Names(**{f: _field(f) for f in profiles.FIELD_LABELS})
            profiles.update(s, current_tenant(), user, names, clock.now(), request.remote_addr)
        except profiles.ProfileInvalid as exc:
            return _page(s, user, 400, message=exc.message, typed=request.form)
    return redirect(url_for(".profile", saved="names"))


@bp.post("/account/profile/phone")
def save_phone() -> ResponseReturnValue:
    with services().db.session() as s:
        user = _user(s)
        try:
            profiles.set_contact_phone(s, current_tenant(), user, _field("phone"), clock.now(),
                                       request.remote_addr)  # fmt: skip
        except profiles.ProfileInvalid as exc:
            return _page(s, user, 400, message=exc.message)
    return redirect(url_for(".profile", saved="phone"))


class TooManyLinks(profiles.ProfileInvalid):
    code, status = "too_many_links", 429
    message = "Too many links were asked for. Try again later."


def _limit(user: User) -> None:
    """Count one more link for this account and this IP; raise :class:`TooManyLinks` when
    either is over its limit."""
    store = services().store
    who = {"user": str(user.id), "ip": request.remote_addr or "-"}
    counts = [
        (store.incr(f"count:email-link:{k}:{who[k]}", 3600), limit) for k, limit in LINK_LIMITS
    ]
    if any(n > limit for n, limit in counts):
        raise TooManyLinks()


def _refused(exc: profiles.ProfileInvalid) -> ResponseReturnValue:
    """The page again with why nothing was sent (the failed request's writes rolled back)."""
    with services().db.session() as s:
        return _page(s, _user(s), exc.status, message=exc.message)


@bp.post("/account/profile/email")
def change_email() -> ResponseReturnValue:
    svc = services()
    try:
        with svc.db.session() as s:
            user = _user(s)
            address = email_change.new_address(_field("email"))
            if not reauthenticated(s):
                session[PENDING] = address  # shown again in the form, to send once confirmed
                return reauthenticate(url_for(".profile", _anchor="email"))
            _limit(user)
            email_change.ask_change(s, svc, current_tenant(), user, address, clock.now(),
                                    request.remote_addr)  # fmt: skip
    except profiles.ProfileInvalid as exc:
        return _refused(exc)
    session.pop(PENDING, None)
    return redirect(url_for(".profile", saved="email"))


@bp.post("/account/profile/verify-email")
def verify_current() -> ResponseReturnValue:
    svc = services()
    try:
        with svc.db.session() as s:
            user = _user(s)
            _limit(user)
            email_change.ask_verification(s, svc, current_tenant(), user, clock.now(),
                                          request.remote_addr)  # fmt: skip
    except profiles.ProfileInvalid as exc:
        return _refused(exc)
    return redirect(url_for(".profile", saved="verify"))


# --- the emailed link's page: open to anyone who holds the link ------------------------------


def _link_page(status: int = 200, **context: Any) -> ResponseReturnValue:
    return render_template("account/verify_email.html", tenant=current_tenant(), **context), status


@bp.get("/account/verify-email")
def verify_email() -> ResponseReturnValue:
    """Show what the link confirms; only the button uses it (a mail scanner's GET does not)."""
    token = request.args.get("token", "")[: TOKEN_MAX + 1]
    svc = services()
    with svc.db.session() as s:
        try:
            masked = email_change.peek(s, svc, tenant_in(s), token, clock.now())
        except LinkInvalid:
            return _link_page(400, invalid=INVALID_LINK)
    return _link_page(token=token, address=masked)


@bp.post("/account/verify-email")
def confirm_email() -> ResponseReturnValue:
    token = request.form.get("token", "")[: TOKEN_MAX + 1]
    svc = services()
    try:
        with svc.db.session() as s:
            email_change.confirm(s, svc, tenant_in(s), token, clock.now(),
                                 request.remote_addr)  # fmt: skip
    except LinkInvalid:
        return _link_page(400, invalid=INVALID_LINK)
    return _link_page(done=DONE)
