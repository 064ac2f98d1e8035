"""One-time emailed links (set or reset a password): single use, short-lived, stored as an HMAC.

The token is 256 random bits and leaves the server only in the email; the database keeps
``HMAC-SHA256(key, token)``, so a read of the table cannot be turned into a working link
(ASVS 2.5.1, NIST SP 800-63B 5.1.1.2 for the link's strength). Redeeming marks it used in the
same transaction as the change it authorises.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from factors.errors import StepwiseError
from idp.store.models import Tenant, User, UserLink

SET_PASSWORD = "set_password"  # noqa: S105  # a purpose, not a secret
INVITATION_TTL = 7 * 24 * 3600  # an invitation waits a week for the user
RESET_PASSWORD = "reset_password"  # noqa: S105  # a purpose, not a secret
RESET_TTL = 30 * 60  # a forgotten password's link: half an hour
VERIFY_EMAIL = "verify_email"  # an email address to verify, or to change to (idp.email_change)
# Links that change who controls the account: whoever may have planted one (a session the
# user then ended, an old mailbox) must lose it when the user takes the account back.
ACCOUNT_CHANGES = (RESET_PASSWORD, VERIFY_EMAIL)


class LinkInvalid(StepwiseError):
    """The link is unknown, used, expired, or for another purpose (one message for all)."""

    code, status, title = "invalid_link", 400, "Link not valid"
    message = "This link is not valid any more. Ask your administrator for a new one."


def digest(key: bytes, token: str) -> str:
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def forget(s: Session, user: User, now: int, purpose: str | tuple[str, ...] | None = None) -> None:
    """``user``'s unused links (of ``purpose`` or purposes, or all) stop working."""
    live = [UserLink.user_id == user.id, UserLink.used_at.is_(None)]
    if isinstance(purpose, str):
        live.append(UserLink.purpose == purpose)
    elif purpose is not None:
        live.append(UserLink.purpose.in_(purpose))
    s.execute(update(UserLink).where(*live).values(used_at=now))


def issue(
    s: Session,
    key: bytes,
    tenant: Tenant,
    user: User,
    purpose: str,
    ttl: int,
    now: int,
    target: str | None = None,
) -> str:
    """A new link token for ``user``; earlier unused links of the same purpose stop working.
    ``target``: what the link is about, kept with it (the new address an email change needs)."""
    forget(s, user, now, purpose)
    token = secrets.token_urlsafe(32)
    s.add(UserLink(tenant_id=tenant.id, user_id=user.id, purpose=purpose, target=target,
                   digest=digest(key, token), created_at=now, expires_at=now + ttl))  # fmt: skip
    return token


def peek(s: Session, key: bytes, tenant: Tenant, token: str, purpose: str, now: int) -> User:
    """The user a live link belongs to, without using it (to show the form)."""
    user = s.get(User, peek_link(s, key, tenant, token, purpose, now).user_id)
    if user is None:
        raise LinkInvalid()
    return user


def peek_link(
    s: Session, key: bytes, tenant: Tenant, token: str, purpose: str, now: int
) -> UserLink:
    """The live link ``token`` names (with its ``target``), without using it."""
    if not 20 <= len(token) <= 64:
        raise LinkInvalid()
    link = s.scalar(select(UserLink).where(UserLink.digest == digest(key, token)))
    if (
        link is None
        or link.tenant_id != tenant.id
        or link.purpose != purpose
        or link.used_at is not None
        or now >= link.expires_at
    ):
        raise LinkInvalid()
    return link


def redeem(s: Session, key: bytes, tenant: Tenant, token: str, purpose: str, now: int) -> User:
    """Use the link: the conditional update makes it single use under parallel requests."""
    user = peek(s, key, tenant, token, purpose, now)
    used = s.execute(
        update(UserLink)
        .where(UserLink.digest == digest(key, token), UserLink.used_at.is_(None))
        .values(used_at=now)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
        raise LinkInvalid()
    return user
