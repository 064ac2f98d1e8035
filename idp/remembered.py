"""Remembered browsers ("Don't ask again on this browser"): the records, at the storage level.

A remembered browser satisfies the tenant policy's "second factor at every login" for its
user on that browser, and nothing else: it is never a factor (DESIGN.md "Remembered
browser"). Only an HMAC of the cookie's token is stored. No Flask here; ``now`` is passed in.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.store.models import RememberedBrowser, User


def live(s: Session, user: User, now: int) -> list[RememberedBrowser]:
    """``user``'s remembered browsers that still count, newest first."""
    return list(
        s.scalars(
            select(RememberedBrowser)
            .where(
                RememberedBrowser.user_id == user.id,
                RememberedBrowser.revoked_at.is_(None),
                RememberedBrowser.expires_at > now,
            )
            .order_by(RememberedBrowser.created_at.desc(), RememberedBrowser.id.desc())
        )
    )


def forget(s: Session, user: User, browser_id: int, now: int) -> bool:
    """Forget one of ``user``'s remembered browsers; False when it is not theirs, or already
    forgotten or expired (as :func:`live` no longer lists it)."""
    done = s.execute(
        update(RememberedBrowser)
        .where(
            RememberedBrowser.id == browser_id,
            RememberedBrowser.user_id == user.id,
            RememberedBrowser.revoked_at.is_(None),
            RememberedBrowser.expires_at > now,
        )
        .values(revoked_at=now)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


def forget_all(s: Session, user: User, now: int) -> int:
    """Forget every remembered browser of ``user`` (password change or reset, MFA reset,
    sign out everywhere); return how many were live (expired ones stay as they are)."""
    done = s.execute(
        update(RememberedBrowser)
        .where(
            RememberedBrowser.user_id == user.id,
            RememberedBrowser.revoked_at.is_(None),
            RememberedBrowser.expires_at > now,
        )
        .values(revoked_at=now)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]
