"""A new password, and what it ends: a change from the account page or a reset by email link.

The password is checked by the caller (idp.passwords.check_new). Whoever may have known the old
one loses what it opened: the other browser sessions (a change keeps the one that made it; a
reset ends every one), every refresh-token family, every remembered browser and any reset link
still unused. The user is told by email (idp.mfa.notify). No Flask here; ``now`` is passed in.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from idp import links, remembered, user_sessions
from idp.directory import revoke_user_grants
from idp.mfa.notify import security_event
from idp.services import Services
from idp.session_end import end_sessions
from idp.store.models import Tenant, User


def _set(s: Session, svc: Services, user: User, password: str, now: int) -> None:
    user.password_hash = svc.passwords.hash(password)
    user.password_changed_at = user.updated_at = now
    remembered.forget_all(s, user, now)
    links.forget(s, user, now)  # a pending email change too: it may be an intruder's


def change(
    s: Session,
    svc: Services,
    tenant: Tenant,
    user: User,
    password: str,
    *,
    keep_sid: str,
    now: int,
    ip: str | None,
) -> int:
    """The user changed their password in the session ``keep_sid``: every other session ends.
    Returns how many sessions ended."""
    _set(s, svc, user, password, now)
    ended = end_sessions(s, svc.store, tenant, user, now, svc.settings.session_absolute_timeout,
                         keep_sid=keep_sid)  # fmt: skip
    revoke_user_grants(s, tenant, user, "password_changed")
    security_event(s, svc, tenant, user, "user.password_changed", actor=user.id, ip=ip,
                   sessions_ended=ended)  # fmt: skip
    return ended


def reset(
    s: Session,
    svc: Services,
    tenant: Tenant,
    user: User,
    password: str,
    *,
    now: int,
    ip: str | None,
    mailbox: bool,
) -> None:
    """The user set a new password through an emailed reset link: every session ends, this
    browser's too, and they sign in afresh. ``mailbox``: the link went to the address the
    account has, which it thereby verified."""
    _set(s, svc, user, password, now)
    if mailbox:
        user.email_verified = True
    user.sessions_revoked_at = now
    user_sessions.end_all(s, user, now)
    revoke_user_grants(s, tenant, user, "password_reset")
    security_event(s, svc, tenant, user, "user.password_reset", actor=user.id, ip=ip)
