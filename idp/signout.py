"""Signing a browser out: the one ``sign_out()`` every surface uses (the logout page, OIDC
RP-initiated logout, SAML Single Logout, turning MFA off)."""

from __future__ import annotations

from flask import request, session
from flask_login import logout_user
from sqlalchemy.orm import Session

from idp import clock, user_sessions
from idp.assurance import session_context
from idp.directory import audit
from idp.grants import end_session_grants
from idp.sessions import ServerSession
from idp.store.models import Tenant


def sign_out(s: Session, tenant: Tenant, reason: str) -> None:
    """End this browser's session: its OIDC grants (but ``offline_access``), the audit
    event, Flask-Login's user, and the server-side session with its cookie."""
    sid = session.get("sid")
    if sid:
        end_session_grants(s, tenant, sid, clock.now())
        user_sessions.end(s, sid, clock.now())
    ctx = session_context()
    if ctx is not None:
        audit(s, tenant, "logout", actor=ctx.user_id, subject=ctx.user_id, ip=request.remote_addr,
              reason=reason)  # fmt: skip
    logout_user()
    assert isinstance(session, ServerSession)
    session.destroy()
