"""Ending token families (OAuth grants), at the storage level.

A :class:`~idp.store.models.Grant` is one authorization's family of refresh and access tokens
(RFC 9700 4.14.2). Ending it here makes its refresh tokens unusable and its access tokens fail
introspection and UserInfo. Sign-out and the OpenID Provider share these functions, so no
shared module needs to import ``idp.oidc``; a user's grants as a whole end in
``idp.directory.revoke_user_grants``. Nothing here imports Flask; the caller passes ``now``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.directory import audit
from idp.store.models import Grant, Tenant

OFFLINE_ACCESS = "offline_access"


def revoke_grant(s: Session, tenant: Tenant, gid: str, reason: str, now: int,
                 ip: str = "-") -> None:  # fmt: skip
    """End the family ``gid`` of ``tenant`` (once) and audit why."""
    grant = s.scalar(select(Grant).where(Grant.gid == gid, Grant.tenant_id == tenant.id))
    if grant is None or grant.revoked_at is not None:
        return
    grant.revoked_at = now
    audit(s, tenant, "oauth.grant_revoked", subject=grant.user_id, ip=ip,
          client_id=grant.client_id, reason=reason)  # fmt: skip


def end_session_grants(s: Session, tenant: Tenant, sid: str, now: int) -> int:
    """At logout, end the session's families except those with ``offline_access``, which
    are meant to outlive the session (OpenID Connect Core 1.0 section 11)."""
    ended = 0
    for grant in s.scalars(
        select(Grant).where(
            Grant.tenant_id == tenant.id, Grant.sid == sid, Grant.revoked_at.is_(None)
        )
    ):
        if OFFLINE_ACCESS not in grant.scope.split():
            grant.revoked_at = now
            ended += 1
    return ended
