"""Ending one browser session, or all of a user's but this one, from anywhere.

A browser session's state lives in the ephemeral store under its cookie id, which rotates;
what stays the same for its whole life is its OpenID Connect ``sid`` (idp.user_sessions).
Ending a session marks that ``sid`` as ended in the ephemeral store for the absolute session
lifetime, so the next request carrying it finds no session (idp.sessions), whichever process
serves it; its ``user_sessions`` row ends and its token families (but ``offline_access``) end
with it (OpenID Connect Core 1.0 section 11). No Flask here; the caller passes ``now``.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from idp import user_sessions
from idp.ephemeral import EphemeralStore
from idp.grants import end_session_grants
from idp.store.models import Tenant, User, UserSession
from idp.user_sessions import ENDED_SID


def is_ended(store: EphemeralStore, sid: str) -> bool:
    """Whether the session with OpenID Connect ``sid`` was ended from elsewhere."""
    return store.get(f"{ENDED_SID}{sid}") is not None


def _end(
    s: Session, store: EphemeralStore, tenant: Tenant, row: UserSession, now: int, absolute: int
) -> None:
    store.set(f"{ENDED_SID}{row.sid}", b"1", absolute)
    user_sessions.end(s, row.sid, now)
    end_session_grants(s, tenant, row.sid, now)


def end_session(
    s: Session,
    store: EphemeralStore,
    tenant: Tenant,
    user: User,
    sid: str,
    now: int,
    absolute: int,
) -> bool:
    """End ``user``'s live session ``sid``; False when it is not one of theirs, or not live."""
    for row in user_sessions.live(s, user, now, absolute):
        if row.sid == sid:
            _end(s, store, tenant, row, now, absolute)
            return True
    return False


def end_sessions(
    s: Session,
    store: EphemeralStore,
    tenant: Tenant,
    user: User,
    now: int,
    absolute: int,
    keep_sid: str | None = None,
) -> int:
    """End every live session of ``user`` but ``keep_sid``; return how many ended."""
    ended = 0
    for row in user_sessions.live(s, user, now, absolute):
        if row.sid != keep_sid:
            _end(s, store, tenant, row, now, absolute)
            ended += 1
    return ended
