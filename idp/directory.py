"""Tenants and users: the operations the CLI, the console and the login flow share.

Every operation validates its input and raises :class:`DirectoryError` with a message fit for
the user; it writes an audit event in the same transaction as the change.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from factors.errors import StepwiseError, WeakSecret
from factors.password import PasswordFactor
from flows.env import Subject
from flows.policy import MfaMode, MfaScope, Role, TenantPolicy
from flows.steps import USERNAME_MAX, normalize_username
from idp import clock
from idp.store.models import AuditEvent, Grant, Tenant, User

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
USERNAME_RE = re.compile(r"^[^\s\x00-\x1f\x7f/\\]+$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STATUS_EVENTS = {"active": "user.enabled", "disabled": "user.disabled", "locked": "user.locked"}


class DirectoryError(StepwiseError):
    """A user-facing error: bad input, a duplicate, something not found."""


def new_subject() -> str:
    """A user's OpenID Connect ``sub``: 128 random bits, so it reveals nothing (Core 8)."""
    return secrets.token_urlsafe(16)


def now() -> int:
    """The current time in whole seconds (``idp.clock``; the request's time in one)."""
    return clock.now()


def audit(
    s: Session,
    tenant: Tenant | None,
    event: str,
    *,
    actor: int | None = None,
    subject: int | None = None,
    ip: str | None = None,
    result: str | None = None,
    **details: Any,
) -> None:
    """Append an audit event in the caller's transaction.

    An admin API client named by ``by_client`` (:meth:`Actor.details`) is kept as the
    event's ``actor_client``; ``result`` defaults to "failure" for events named
    ``*.failed`` or ``*.rejected``, else "success".
    """
    if result is None:
        result = "failure" if event.endswith((".failed", ".rejected")) else "success"
    client = details.get("by_client")
    s.add(
        AuditEvent(
            tenant_id=tenant.id if tenant else None,
            actor_id=actor,
            actor_client=str(client) if client else None,
            subject_id=subject,
            event=event,
            ip=ip,
            result=result,
            details=details,
            at=now(),
        )
    )


def get_tenant(s: Session, slug: str) -> Tenant | None:
    return s.scalar(select(Tenant).where(Tenant.slug == slug))


def require_tenant(s: Session, slug: str) -> Tenant:
    tenant = get_tenant(s, slug)
    if tenant is None:
        raise DirectoryError(f"no tenant {slug!r}")
    return tenant


def create_tenant(s: Session, slug: str, name: str | None = None, mfa: str = "off") -> Tenant:
    if not SLUG_RE.match(slug):
        raise DirectoryError("tenant slug must be 1-63 characters: a-z, 0-9 and '-' inside")
    if mfa not in set(MfaMode):
        raise DirectoryError("--mfa must be off, optional or required")
    if get_tenant(s, slug) is not None:
        raise DirectoryError(f"tenant {slug!r} already exists")
    name = (name or slug).strip()
    if not 0 < len(name) <= 200:
        raise DirectoryError("tenant name must be 1-200 characters")
    tenant = Tenant(
        slug=slug, name=name, mfa_mode=mfa, mfa_scope=MfaScope.ALL.value, created_at=now()
    )
    s.add(tenant)
    s.flush()
    audit(s, tenant, "tenant.created", mfa=mfa)
    return tenant


def list_tenants(s: Session) -> list[Tenant]:
    return list(s.scalars(select(Tenant).order_by(Tenant.slug)))


def find_user(s: Session, tenant: Tenant, username: str) -> User | None:
    return s.scalar(
        select(User).where(
            User.tenant_id == tenant.id, User.username_norm == normalize_username(username)
        )
    )


def require_user(s: Session, tenant: Tenant, username: str) -> User:
    user = find_user(s, tenant, username)
    if user is None:
        raise DirectoryError(f"no user {username!r} in tenant {tenant.slug!r}")
    return user


def create_user(
    s: Session,
    passwords: PasswordFactor,
    tenant: Tenant,
    username: str,
    email: str,
    role: str = "member",
    password: str | None = None,
) -> User:
    username = username.strip()
    if not 0 < len(username) <= USERNAME_MAX or not USERNAME_RE.match(username):
        raise DirectoryError(
            f"username must be 1-{USERNAME_MAX} characters, without spaces or slashes"
        )
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise DirectoryError(f"not an email address: {email!r}")
    if role not in set(Role):
        raise DirectoryError("--role must be member, admin or owner")
    if find_user(s, tenant, username) is not None:
        raise DirectoryError(f"user {username!r} already exists in tenant {tenant.slug!r}")
    password_hash = None
    if password is not None:
        try:
            PasswordFactor.check_new(password)
        except WeakSecret as exc:
            raise DirectoryError(str(exc)) from None
        password_hash = passwords.hash(password)
    t = now()
    user = User(
        tenant_id=tenant.id,
        username=username,
        username_norm=normalize_username(username),
        sub=new_subject(),
        email=email,
        role=role,
        status="active",
        password_hash=password_hash,
        mfa_required=False,
        mfa_enabled=False,
        created_at=t,
        updated_at=t,
    )
    s.add(user)
    s.flush()
    audit(s, tenant, "user.created", subject=user.id, role=role)
    return user


@dataclass(frozen=True)
class Actor:
    """Who made a change: a console user, an API client or the operator at the CLI (all
    fields None)."""

    user_id: int | None = None
    client_id: str | None = None
    ip: str | None = None

    @property
    def operator(self) -> bool:
        return self.user_id is None and self.client_id is None

    def details(self) -> dict[str, Any]:
        return {"by_client": self.client_id} if self.client_id else {}


class Forbidden(DirectoryError):
    """The actor may not do this to this user (the admin API answers 403)."""

    code, status, title = "forbidden", 403, "Forbidden"


def active_owners(s: Session, tenant: Tenant) -> list[int]:
    """The ids of the tenant's active owners."""
    return list(
        s.scalars(
            select(User.id).where(
                User.tenant_id == tenant.id, User.role == Role.OWNER.value, User.status == "active"
            )
        )
    )


def require_owner(s: Session, tenant: Tenant, actor: Actor, message: str) -> None:
    """Raise :class:`Forbidden` with ``message`` unless ``actor`` is an active owner of
    ``tenant`` or the operator at the CLI (an API client never is an owner)."""
    if actor.operator:
        return
    by = s.get(User, actor.user_id) if actor.user_id is not None else None
    if by is None or by.tenant_id != tenant.id or (by.role, by.status) != ("owner", "active"):
        raise Forbidden(message)


def check_may_manage(
    s: Session, tenant: Tenant, actor: Actor, target: User, *, removes_owner: bool = False
) -> None:
    """The one rule for changing a user: only an owner (or the operator at the CLI) may
    change, reset, un-require, disable or demote an owner, and nobody may remove the last
    active owner (``removes_owner``: disable or demote). Raises :class:`Forbidden`."""
    if target.role != Role.OWNER.value:
        return
    require_owner(s, tenant, actor, f"only an owner can change the owner {target.username!r}")
    if removes_owner and active_owners(s, tenant) == [target.id]:
        raise Forbidden(
            f"{target.username!r} is the last active owner of tenant {tenant.slug!r}: "
            "make another owner first"
        )


def revoke_user_grants(s: Session, tenant: Tenant, user: User, reason: str) -> int:
    """End every live token family of ``user`` (their refresh tokens stop working)."""
    live = list(
        s.scalars(select(Grant.gid).where(Grant.user_id == user.id, Grant.revoked_at.is_(None)))
    )
    if live:
        s.execute(update(Grant).where(Grant.gid.in_(live)).values(revoked_at=now()))
        audit(s, tenant, "oauth.grants_revoked", subject=user.id, reason=reason, count=len(live))
    return len(live)


def set_status(
    s: Session, tenant: Tenant, user: User, status: str, actor: Actor | None = None
) -> None:
    """Set ``user``'s status (no actor: the operator, or the throttle locking an account).
    Disabling ends every session of the user (``sessions_revoked_at``) and every token
    family; the last active owner cannot be disabled (:func:`check_may_manage`)."""
    if status not in STATUS_EVENTS:
        raise DirectoryError(f"status must be one of {', '.join(STATUS_EVENTS)}")
    actor = actor or Actor()
    check_may_manage(s, tenant, actor, user, removes_owner=status == "disabled")
    previous, user.status, user.updated_at = user.status, status, now()
    audit(s, tenant, STATUS_EVENTS[status], actor=actor.user_id, subject=user.id, ip=actor.ip,
          previous=previous, **actor.details())  # fmt: skip
    if status == "disabled":
        user.sessions_revoked_at = user.updated_at
        revoke_user_grants(s, tenant, user, "user_disabled")


def unlock_user(s: Session, tenant: Tenant, user: User, actor: int | None = None) -> None:
    """Lift a lock and restart the user's failure counters (NIST SP 800-63B 5.2.2)."""
    if user.status == "disabled":
        raise DirectoryError(f"user {user.username!r} is disabled, not locked: enable it instead")
    user.status, user.unlocked_at, user.updated_at = "active", now(), now()
    audit(s, tenant, "user.unlocked", actor=actor, subject=user.id)


def count_users(s: Session, tenant: Tenant) -> int:
    return s.scalar(select(func.count()).select_from(User).where(User.tenant_id == tenant.id)) or 0


def policy_of(tenant: Tenant, deliverable: tuple[str, ...] = ("totp",)) -> TenantPolicy:
    """The tenant's policy; ``deliverable`` names the factors this deployment can run."""
    return TenantPolicy(
        mode=MfaMode(tenant.mfa_mode),
        scope=MfaScope(tenant.mfa_scope),
        enrollable=tuple(k for k in tenant.mfa_factors if k in deliverable),
        reoffer_days=tenant.mfa_reoffer_days,
        totp_two_codes=tenant.totp_two_codes,
        admins_phishing_resistant=tenant.admins_phishing_resistant,
    )


def subject_of(user: User) -> Subject:
    return Subject(
        user_id=user.id,
        username=user.username_norm,
        password_hash=user.password_hash,
        status=user.status,
        unlocked_at=user.unlocked_at,
    )


@dataclass(frozen=True)
class UserRow:
    """A user as listed by the CLI and the console."""

    username: str
    email: str
    role: str
    status: str


def list_users(s: Session, tenant: Tenant) -> list[UserRow]:
    users = s.scalars(select(User).where(User.tenant_id == tenant.id).order_by(User.username_norm))
    return [UserRow(u.username, u.email, u.role, u.status) for u in users]
