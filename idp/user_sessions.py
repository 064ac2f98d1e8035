"""The record of each browser sign-in: when, from where, with what, and whether it ended.

The session's state lives in the ephemeral store (idp.sessions); these rows, keyed by the
session's OpenID Connect ``sid``, let the console and the account page list a user's
sessions. A row is live while it has not ended, began after the user's ``sessions_revoked_at``
(sign out everywhere, disable) and is younger than the absolute session lifetime.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.store.models import User, UserSession

USER_AGENT_MAX = 400
# Key prefix, in the ephemeral store, of a session ended from elsewhere (idp.session_end).
ENDED_SID = "sid-ended:"
# idp.sessions writes a session's "last seen" at most this often (seconds).
SEEN_EVERY = 60


def record(
    s: Session,
    user: User,
    sid: str,
    *,
    ip: str | None,
    user_agent: str,
    level: int,
    amr: Sequence[str],
    now: int,
) -> None:
    """A sign-in, or a step-up within the same session (the level and amr it now holds)."""
    row = s.scalar(select(UserSession).where(UserSession.sid == sid))
    if row is None or row.user_id != user.id:
        s.add(UserSession(tenant_id=user.tenant_id, user_id=user.id, sid=sid, ip=ip,
                          user_agent=user_agent[:USER_AGENT_MAX], level=level, amr=list(amr),
                          created_at=now, last_seen_at=now))  # fmt: skip
        user.last_login_at = now
        return
    row.level, row.amr, row.last_seen_at, row.ip = level, list(amr), now, ip


def seen(s: Session, sid: str, now: int) -> None:
    """The session ``sid`` was used at ``now`` (idp.sessions calls this at most once a
    minute per session)."""
    s.execute(
        update(UserSession)
        .where(UserSession.sid == sid, UserSession.ended_at.is_(None))
        .values(last_seen_at=now)
    )


def live(
    s: Session, user: User, now: int, absolute: int, idle: int | None = None
) -> list[UserSession]:
    """The user's sessions that may still be in use, newest first. With ``idle`` (the idle
    timeout), not those unused for longer than it (and :data:`SEEN_EVERY`, the most "last
    seen" can lag): their state has expired from the ephemeral store.

    The absolute lifetime counts from the session's last authentication (a re-authentication
    or step-up restarts it, idp.sessions), which ``last_seen_at`` is never older than; the
    first sign-in (``created_at``) would drop a session that re-authenticated and lives on."""
    stmt = select(UserSession).where(
        UserSession.user_id == user.id,
        UserSession.ended_at.is_(None),
        UserSession.last_seen_at > now - absolute,
    )
    if idle is not None:
        stmt = stmt.where(UserSession.last_seen_at > now - idle - SEEN_EVERY)
    if user.sessions_revoked_at is not None:
        stmt = stmt.where(UserSession.created_at > user.sessions_revoked_at)
    return list(s.scalars(stmt.order_by(UserSession.created_at.desc())))


def end(s: Session, sid: str, now: int) -> None:
    """The session signed out."""
    s.execute(
        update(UserSession)
        .where(UserSession.sid == sid, UserSession.ended_at.is_(None))
        .values(ended_at=now)
    )


def end_all(s: Session, user: User, now: int) -> None:
    """Every session of ``user`` ended (sign out everywhere; the sessions themselves stop
    counting through ``sessions_revoked_at``)."""
    s.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .values(ended_at=now)
    )
