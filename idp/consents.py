"""The third-party applications a user allowed, and taking that back, at the storage level.

A :class:`~idp.store.models.Consent` remembers the scopes a user granted to a third-party
client (idp.oidc.browser asks once, then again only for new scopes). Revoking it deletes
the consent, so the next authorization asks again, and ends every live token family the
client holds for the user, ``offline_access`` ones too: the permission they rest on is gone
(RFC 7009 section 2.1 lets a revocation end the whole grant). No Flask here; the caller
passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.grants import revoke_grant
from idp.store.models import Client, Consent, Grant, Tenant, User


class NoSuchConsent(LookupError):
    """The user gave no such consent (another user's, another tenant's, or revoked)."""


@dataclass(frozen=True)
class Given:
    """One application the user allowed: which, which scopes, and since when."""

    client_id: str
    name: str
    scopes: list[str]
    created_at: int


def given(s: Session, tenant: Tenant, user: User) -> list[Given]:
    """The consents ``user`` gave to applications of ``tenant``, by application name."""
    rows = s.execute(
        select(Consent, Client)
        .join(Client, Client.client_id == Consent.client_id)
        .where(Consent.user_id == user.id, Client.tenant_id == tenant.id)
        .order_by(Client.name, Client.client_id)
    )
    return [Given(c.client_id, app.name, list(c.scopes), c.created_at) for c, app in rows]


def revoke(s: Session, tenant: Tenant, user: User, client_id: str, now: int, ip: str = "-") -> int:
    """Delete ``user``'s consent to ``client_id`` and end the client's live token families
    for them; return how many ended. Raises :class:`NoSuchConsent` when there is none."""
    consent = s.scalar(
        select(Consent)
        .join(Client, Client.client_id == Consent.client_id)
        .where(
            Consent.user_id == user.id,
            Consent.client_id == client_id,
            Client.tenant_id == tenant.id,
        )
    )
    if consent is None:
        raise NoSuchConsent(client_id)
    s.delete(consent)
    gids = s.scalars(
        select(Grant.gid).where(
            Grant.tenant_id == tenant.id,
            Grant.user_id == user.id,
            Grant.client_id == client_id,
            Grant.revoked_at.is_(None),
        )
    ).all()
    for gid in gids:
        revoke_grant(s, tenant, gid, "consent_revoked", now, ip)
    return len(gids)
