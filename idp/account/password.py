"""The account page's password section: change the password.

A sensitive action (DESIGN.md): the page needs re-authentication at the account's level
(the password and, when the user holds one, a second factor at the highest level held) within
the window, and the form also takes the current password, checked under the login's password
throttle (per account and per IP, NIST SP 800-63B 5.2.2). The new one follows idp.passwords.
Afterwards every other session, every token family and every remembered browser ends
(idp.password_changes), this session gets a new id, and the user is told by email.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session

from factors.errors import InvalidCredentials, WeakSecret
from flows.errors import AccountLocked, Throttled
from idp import assurance, clock, password_changes, passwords
from idp.account.views import bp
from idp.directory import audit, lock_user, subject_of
from idp.login.guard import reauthenticate, reauthenticated
from idp.security import form_fields
from idp.services import services
from idp.sessions import ServerSession
from idp.store.models import User
from idp.tenancy import current_tenant, tenant_in
from idp.throttle_counted import CountedThrottle

__all__ = ["bp"]

LIMITS = {"current": 1024, "password": 1024, "confirmation": 1024}
WRONG = "Your current password is not correct."


def _user(s: Session) -> User:
    user = s.get(User, int(current_user.get_id()))
    assert user is not None
    return user


def _page(s: Session, user: User, status: int = 200, **context: Any) -> ResponseReturnValue:
    tenant = current_tenant()
    second = assurance.user_facts(user).has_second_factor
    return render_template(
        "account/password.html",
        tenant=tenant,
        user=user,
        min_length=passwords.min_length(tenant, second),
        **context,
    ), status


@bp.get("/account/password")
def password() -> ResponseReturnValue:
    with services().db.session() as s:
        if not reauthenticated(s):
            return reauthenticate(url_for(".password"))
        return _page(s, _user(s))


def _check_current(s: Session, user: User, typed: str) -> str | None:
    """Check the current password under the login's throttle; None when right, else why."""
    svc, tenant = services(), current_tenant()
    subject = subject_of(user)
    ip = request.remote_addr or "-"
    try:
        throttle = CountedThrottle(svc.throttle("password"), tenant.slug)
        attempt = throttle.begin(subject.throttle_key(tenant.slug), ip, clock.now())
    except (Throttled, AccountLocked) as exc:
        return exc.message
    try:
        svc.passwords.verify(user.password_hash, typed)
    except InvalidCredentials:
        if attempt.failed():
            lock_user(s, tenant_in(s), user)
        audit(s, tenant, "user.password_change_failed", actor=user.id, subject=user.id, ip=ip,
              reason="wrong current password")  # fmt: skip
        return WRONG
    attempt.succeeded()
    return None


@bp.post("/account/password")
def change_password() -> ResponseReturnValue:
    if not reauthenticated():
        return reauthenticate(url_for(".password"))  # what was typed is not carried along
    fields = form_fields(("current", "password", "confirmation"), LIMITS)
    svc, now = services(), clock.now()
    with svc.db.session() as s:
        user = _user(s)
        wrong = _check_current(s, user, fields["current"])
        if wrong is not None:
            return _page(s, user, 400, message=wrong)
        new = fields["password"]
        try:
            if new != fields["confirmation"]:
                raise WeakSecret("The two new passwords differ. Type the same password twice.")
            second = assurance.user_facts(user).has_second_factor
            passwords.check_new(tenant_in(s), new, username=user.username, email=user.email,
                                has_second_factor=second)  # fmt: skip
        except WeakSecret as exc:
            return _page(s, user, 400, message=str(exc))
        ended = password_changes.change(s, svc, tenant_in(s), user, new,
                                        keep_sid=session["sid"], now=now,
                                        ip=request.remote_addr)  # fmt: skip
        assert isinstance(session, ServerSession)
        session.rotate()
        return _page(s, user, changed=True, ended=ended)
