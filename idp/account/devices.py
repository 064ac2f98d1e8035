"""The account page's "Sessions and devices": where the user is signed in, which browsers skip
the policy's second factor, and which applications they allowed, each one revocable.

Every change here is a sensitive action (DESIGN.md): it needs re-authentication at the
account's level (idp.login.guard.reauthenticated) and is audited; ending every other session
is also confirmed by email. Ending a session works from any process, with Redis or the
in-process store (idp.session_end): the other browser's next request finds no session.
Ending this browser's own session signs it out here and now (idp.signout).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session

from idp import clock, consents, directory, remembered, session_end
from idp.account.views import bp
from idp.devices import label as device_of
from idp.directory import audit
from idp.errors import HttpError
from idp.login.guard import reauthenticate, reauthenticated
from idp.mfa.notify import security_event
from idp.oidc.claims import SCOPE_DESCRIPTIONS
from idp.services import services
from idp.signout import sign_out
from idp.store.models import RememberedBrowser, User, UserSession
from idp.tenancy import current_tenant

__all__ = ["bp"]


@dataclass(frozen=True)
class SignIn:
    """A live session as the page shows it."""

    id: int
    device: str
    ip: str | None
    signed_in_at: int
    last_seen_at: int
    level: int
    amr: list[str]
    current: bool

    @classmethod
    def of(cls, row: UserSession, current_sid: str | None) -> SignIn:
        return cls(row.id, device_of(row.user_agent), row.ip, row.created_at, row.last_seen_at,
                   row.level, list(row.amr), row.sid == current_sid)  # fmt: skip


@dataclass(frozen=True)
class Browser:
    """A remembered browser as the page shows it."""

    id: int
    device: str
    created_at: int
    last_used_at: int | None
    expires_at: int

    @classmethod
    def of(cls, row: RememberedBrowser) -> Browser:
        return cls(row.id, device_of(row.user_agent), row.created_at, row.last_used_at,
                   row.expires_at)  # fmt: skip


def _user(s: Session) -> User:
    user = s.get(User, int(current_user.get_id()))
    assert user is not None
    return user


def _here() -> str:
    return url_for(".devices")


def _live(s: Session, user: User) -> list[UserSession]:
    """The user's sessions still in use: neither ended, nor past the absolute or (as far as
    "last seen" tells) the idle timeout."""
    settings = services().settings
    return directory.live_sessions(s, user, settings.session_absolute_timeout,
                                   settings.session_idle_timeout)  # fmt: skip


@bp.get("/account/devices")
def devices() -> ResponseReturnValue:
    tenant, now = current_tenant(), clock.now()
    mine = session.get("sid")
    with services().db.session() as s:
        user = _user(s)
        signed_in = [SignIn.of(x, mine) for x in _live(s, user)]
        browsers = [Browser.of(b) for b in remembered.live(s, user, now)]
        return render_template(
            "account/devices.html",
            tenant=tenant,
            sessions=signed_in,
            browsers=browsers,
            remember_on=tenant.remember_days > 0,
            apps=consents.given(s, tenant, user),
            scope_names=SCOPE_DESCRIPTIONS,
            confirmed=reauthenticated(s),
        )


def _number(field: str) -> int:
    """A row id posted by the page; anything else is no row of this user (404)."""
    raw = request.form.get(field, "")
    if not raw.isdecimal() or len(raw) > 18:
        raise HttpError("There is no such item on this page.", 404)
    return int(raw)


@bp.post("/account/devices/sessions/end")
def end_one_session() -> ResponseReturnValue:
    """Sign out one session; this browser's own ends here and now."""
    if not reauthenticated():
        return reauthenticate(_here())
    wanted = _number("session")
    svc, tenant, now = services(), current_tenant(), clock.now()
    with svc.db.session() as s:
        user = _user(s)
        row = next((x for x in _live(s, user) if x.id == wanted), None)
        if row is None:
            raise HttpError("There is no such session.", 404)
        audit(s, tenant, "user.session_ended", actor=user.id, subject=user.id,
              ip=request.remote_addr, device=device_of(row.user_agent),
              current=row.sid == session.get("sid"))  # fmt: skip
        if row.sid == session.get("sid"):
            sign_out(s, tenant, "session_ended")
            return redirect(url_for("login.login"))
        session_end.end_session(s, svc.store, tenant, user, row.sid, now,
                                svc.settings.session_absolute_timeout)  # fmt: skip
    return redirect(_here())


@bp.post("/account/devices/sessions/end-others")
def end_other_sessions() -> ResponseReturnValue:
    """Sign out every session but this one."""
    if not reauthenticated():
        return reauthenticate(_here())
    svc, tenant, now = services(), current_tenant(), clock.now()
    with svc.db.session() as s:
        user = _user(s)
        ended = session_end.end_sessions(s, svc.store, tenant, user, now,
                                         svc.settings.session_absolute_timeout,
                                         keep_sid=session.get("sid"))  # fmt: skip
        security_event(s, svc, tenant, user, "user.other_sessions_ended", actor=user.id,
                       ip=request.remote_addr, count=ended)  # fmt: skip
    return redirect(_here())


@bp.post("/account/devices/browsers/forget")
def forget_browser() -> ResponseReturnValue:
    """Forget one remembered browser: it asks for the second factor again."""
    if not reauthenticated():
        return reauthenticate(_here())
    wanted = _number("browser")
    with services().db.session() as s:
        user = _user(s)
        if not remembered.forget(s, user, wanted, clock.now()):
            raise HttpError("There is no such browser.", 404)
        audit(s, current_tenant(), "user.browser_forgotten", actor=user.id, subject=user.id,
              ip=request.remote_addr)  # fmt: skip
    return redirect(_here())


@bp.post("/account/devices/browsers/forget-all")
def forget_all_browsers() -> ResponseReturnValue:
    """Forget every remembered browser of the user."""
    if not reauthenticated():
        return reauthenticate(_here())
    with services().db.session() as s:
        user = _user(s)
        count = remembered.forget_all(s, user, clock.now())
        audit(s, current_tenant(), "user.browsers_forgotten", actor=user.id, subject=user.id,
              ip=request.remote_addr, count=count)  # fmt: skip
    return redirect(_here())


@bp.post("/account/devices/applications/revoke")
def revoke_application() -> ResponseReturnValue:
    """Take back a consent: the application's tokens for the user end, and its next sign-in
    asks for consent again."""
    if not reauthenticated():
        return reauthenticate(_here())
    client_id = request.form.get("client_id", "")
    tenant = current_tenant()
    with services().db.session() as s:
        user = _user(s)
        try:
            ended = consents.revoke(s, tenant, user, client_id, clock.now(),
                                    request.remote_addr or "-")  # fmt: skip
        except consents.NoSuchConsent:
            raise HttpError("There is no such application.", 404) from None
        audit(s, tenant, "user.consent_revoked", actor=user.id, subject=user.id,
              ip=request.remote_addr, client_id=client_id, grants=ended)  # fmt: skip
    return redirect(_here())
