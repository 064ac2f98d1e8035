"""Remembered browsers ("Don't ask again on this browser"): the records, at the storage level.

A remembered browser satisfies the tenant policy's "second factor at every login" for its
user on that browser, and nothing else: it is never a factor (DESIGN.md "Remembered
browser"). Only an HMAC of the cookie's token is stored. No Flask here; ``now`` is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.store.models import RememberedBrowser, Tenant, User


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


# --- the cookie's token, issuing and looking up (the login flow, idp.assurance) -------------
COOKIE = "stepwise_remember"
KEY_PURPOSE = "remembered browsers"  # services().cipher.derive(KEY_PURPOSE) keys the HMAC
MAX_DAYS = 90
DAY = 86400
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def digest(key: bytes, token: str) -> str:
    """What is stored for a cookie's token: its HMAC-SHA256 under ``key`` (hex)."""
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def days_of(tenant: Tenant) -> int:
    """The tenant's setting, within 0 (off) and :data:`MAX_DAYS`, whatever the row holds."""
    return max(0, min(MAX_DAYS, tenant.remember_days or 0))


def issue(
    s: Session,
    tenant: Tenant,
    user: User,
    key: bytes,
    *,
    verified_at: int,
    user_agent: str,
    ip: str | None,
    now: int,
) -> tuple[str, RememberedBrowser]:
    """Remember this browser for ``user`` for the tenant's days: a random 256-bit token for
    the cookie, and the record that holds only its HMAC."""
    token = secrets.token_urlsafe(32)
    record = RememberedBrowser(
        tenant_id=tenant.id,
        user_id=user.id,
        digest=digest(key, token),
        user_agent=user_agent[:400],
        ip=(ip or None) and ip[:64],
        created_at=now,
        verified_at=verified_at,
        expires_at=now + days_of(tenant) * DAY,
    )
    s.add(record)
    s.flush()
    return token, record


def counts(record: RememberedBrowser, tenant: Tenant, user: User, now: int) -> bool:
    """Whether ``record`` still stands in for ``user``'s policy second factor: the tenant
    still remembers browsers, the record is theirs, in this tenant, neither forgotten nor
    expired, at most the tenant's current days past its last real second factor, and that
    second factor is newer than anything that ends remembered browsers (an MFA reset, a sign
    out everywhere, a password change), should forgetting them have been missed."""
    days = days_of(tenant)
    if not days or record.tenant_id != tenant.id or record.user_id != user.id:
        return False
    if record.revoked_at is not None or now >= record.expires_at:
        return False
    if now >= record.verified_at + days * DAY:
        return False
    ends = (user.mfa_reset_at, user.sessions_revoked_at, user.password_changed_at)
    return all(at is None or record.verified_at > at for at in ends)


def find(
    s: Session, tenant: Tenant, user: User, key: bytes, token: str, now: int
) -> RememberedBrowser | None:
    """The record a cookie's ``token`` names, when it still counts for ``user``; else None."""
    if not 32 <= len(token) <= 64 or not set(token) <= _TOKEN_CHARS:
        return None
    record = s.scalar(
        select(RememberedBrowser).where(RememberedBrowser.digest == digest(key, token))
    )
    return record if record is not None and counts(record, tenant, user, now) else None


def by_id(
    s: Session, tenant: Tenant, user: User, record_id: int, now: int
) -> RememberedBrowser | None:
    """The record a session signed in with (its id), when it still counts for ``user``."""
    record = s.get(RememberedBrowser, record_id)
    return record if record is not None and counts(record, tenant, user, now) else None


def renew(record: RememberedBrowser, tenant: Tenant, *, verified_at: int, now: int,
          extend: bool) -> None:  # fmt: skip
    """A real second factor on this browser: it is the record's last one now; ``extend``
    (the box ticked again) remembers the browser for the tenant's days from ``now``."""
    record.verified_at = max(record.verified_at, verified_at)
    if extend:
        record.expires_at = max(record.expires_at, now + days_of(tenant) * DAY)


def used(record: RememberedBrowser, now: int) -> None:
    """The record stood in for the policy's second factor at a sign-in."""
    record.last_used_at = now
