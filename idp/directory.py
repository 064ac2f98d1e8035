"""Tenants and users: the operations the CLI, the console and the login flow share.

Every operation validates its input and raises :class:`DirectoryError` with a message fit for
the user; it writes an audit event in the same transaction as the change.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, event, func, or_, select, update
from sqlalchemy.orm import Session

from factors.contact import email_key
from factors.errors import DeliveryFailed, StepwiseError, WeakSecret
from factors.kinds import ALLOWABLE as SECOND_FACTOR_KINDS
from factors.password import PasswordFactor
from flows.env import Subject
from flows.policy import MfaMode, MfaScope, Role, TenantPolicy
from flows.steps import USERNAME_MAX, normalize_username
from idp import clock, links, remembered, user_sessions
from idp import passwords as passwords_rules
from idp.store.models import AuditEvent, Credential, Grant, Tenant, User, UserSession

audit_log = logging.getLogger("idp.audit")
AUDIT_LINE = (
    "audit %(event)s tenant=%(tenant)s actor=%(actor)s subject=%(subject)s result=%(result)s"
)

if TYPE_CHECKING:
    from idp.services import Services

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
USERNAME_RE = re.compile(r"^[^\s\x00-\x1f\x7f/\\]+$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STATUS_EVENTS = {"active": "user.enabled", "disabled": "user.disabled", "locked": "user.locked"}


class DirectoryError(StepwiseError):
    """A user-facing error: bad input, a duplicate, something not found."""


class Conflict(DirectoryError):
    """The change clashes with the current state: a duplicate, or a user in the wrong state
    for it (the admin API answers 409)."""

    code, status, title = "conflict", 409, "Conflict"


def new_subject() -> str:
    """A user's OpenID Connect ``sub``: 128 random bits, so it reveals nothing (Core 8)."""
    return secrets.token_urlsafe(16)


def now() -> int:
    """The current time in whole seconds (``idp.clock``; the request's time in one)."""
    return clock.now()


PENDING_AUDIT_LINES = "stepwise_audit_lines"


@event.listens_for(Session, "after_commit")
def _log_committed_audit(s: Session) -> None:
    for fields in s.info.pop(PENDING_AUDIT_LINES, ()):
        audit_log.info(AUDIT_LINE, fields, extra=fields)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back_audit(s: Session) -> None:
    s.info.pop(PENDING_AUDIT_LINES, None)


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
    """Append an audit event in the caller's transaction, and write it to the log stream
    when that transaction commits (a rolled-back change leaves no line).

    An admin API client named by ``by_client`` (:meth:`Actor.details`) is kept as the
    event's ``actor_client``; ``result`` defaults to "failure" for events named
    ``...failed`` or ``...rejected`` (``login.failed``, ``mfa.code_failed``), else "success".
    The log line names the event, tenant, ids and result only: ``details`` stay in the
    database (they hold reasons and names, which a log shipper need not copy).
    """
    if result is None:
        result = "failure" if event.endswith(("failed", "rejected")) else "success"
    fields = {"event": event, "tenant": tenant.slug if tenant else None, "actor": actor,
              "subject": subject, "result": result}  # fmt: skip
    s.info.setdefault(PENDING_AUDIT_LINES, []).append(fields)  # logged once committed
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


def find_login(s: Session, tenant: Tenant, entry: str) -> User | None:
    """The user an entry at the login page names. Under ``tenant.login_by_email`` an entry
    with "@" is first the one user whose verified address it is; several such users name
    nobody (as an unknown username does). Otherwise, and when no address matches, the
    entry is a username."""
    if tenant.login_by_email and "@" in entry:
        found = s.scalars(
            select(User)
            .where(
                User.tenant_id == tenant.id,
                User.email_norm == email_key(entry),
                User.email_verified.is_(True),
            )
            .limit(2)
        ).all()
        if found:
            return found[0] if len(found) == 1 else None
    return find_user(s, tenant, entry)


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
    actor: Actor | None = None,
) -> User:
    """Create a user; ``actor`` is who did (None: the operator at the CLI). Only an owner
    creates an owner; with no password the user waits for a set-password link
    (:func:`send_set_password_link`)."""
    username = username.strip()
    if (
        not 0 < len(username) <= USERNAME_MAX
        or len(normalize_username(username)) > USERNAME_MAX  # NFKC may lengthen it
        or not USERNAME_RE.match(username)
    ):
        raise DirectoryError(
            f"username must be 1-{USERNAME_MAX} characters, without spaces or slashes"
        )
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise DirectoryError(f"not an email address: {email!r}")
    if role not in set(Role):
        raise DirectoryError("--role must be member, admin or owner")
    actor = actor or Actor()
    if role == Role.OWNER.value:
        require_owner(s, tenant, actor, "only an owner can make an owner")
    if find_user(s, tenant, username) is not None:
        raise Conflict(f"user {username!r} already exists in tenant {tenant.slug!r}")
    password_hash = None
    if password is not None:
        try:
            passwords_rules.check_new(tenant, password, username=username, email=email,
                                      has_second_factor=False)  # fmt: skip
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
        email_norm=email_key(email),
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
    audit(s, tenant, "user.created", actor=actor.user_id, subject=user.id, ip=actor.ip, role=role,
          **actor.details())  # fmt: skip
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
    # Read afresh (not from the session's identity map): a lock taken before may have waited
    # for a change of this very role.
    by = s.get(User, actor.user_id, populate_existing=True) if actor.user_id is not None else None
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
    if removes_owner:
        # Changes that remove an owner queue on the tenant's row, before anything is read:
        # two owners demoting each other at once must not both see the other still there,
        # nor act on a role they have just lost (PostgreSQL; SQLite has one writer anyway).
        s.execute(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update())
    require_owner(s, tenant, actor, f"only an owner can change the owner {target.username!r}")
    if removes_owner and active_owners(s, tenant) == [target.id]:
        raise Forbidden(
            f"{target.username!r} is the last active owner of tenant {tenant.slug!r}: "
            "make another owner first"
        )


def revoke_user_grants(
    s: Session, tenant: Tenant, user: User, reason: str, actor: Actor | None = None
) -> int:
    """End every live token family of ``user`` (their refresh tokens stop working); ``actor``
    is who caused it (the admin whose disable or reset it follows)."""
    actor = actor or Actor()
    live = list(
        s.scalars(select(Grant.gid).where(Grant.user_id == user.id, Grant.revoked_at.is_(None)))
    )
    if live:
        s.execute(update(Grant).where(Grant.gid.in_(live)).values(revoked_at=now()))
        audit(s, tenant, "oauth.grants_revoked", actor=actor.user_id, subject=user.id,
              ip=actor.ip, reason=reason, count=len(live), **actor.details())  # fmt: skip
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
        revoke_user_grants(s, tenant, user, "user_disabled", actor)


def lock_user(s: Session, tenant: Tenant, user: User) -> bool:
    """Lock ``user`` after too many wrong passwords (the throttle, flows.throttle), if the
    row is still active in the database: the check ran after a slow hash, and an admin's
    disable committed meanwhile must stay a disable (a locked user can be unlocked, a
    disabled one only enabled). One conditional UPDATE decides; ``user`` is read again."""
    check_may_manage(s, tenant, Actor(), user)
    locked = s.execute(
        update(User)
        .where(User.id == user.id, User.status == "active")
        .values(status="locked", updated_at=now())
        .execution_options(synchronize_session=False)  # read again below, whatever happened
    )
    s.refresh(user)
    if locked.rowcount != 1:  # type: ignore[attr-defined]
        return False
    audit(s, tenant, STATUS_EVENTS["locked"], subject=user.id, previous="active")
    return True


def unlock_user(s: Session, tenant: Tenant, user: User, actor: Actor | None = None) -> None:
    """Lift a lock and restart the user's failure counters (NIST SP 800-63B 5.2.2)."""
    actor = actor or Actor()
    if user.status == "disabled":
        raise Conflict(f"user {user.username!r} is disabled, not locked: enable it instead")
    check_may_manage(s, tenant, actor, user)
    user.status, user.unlocked_at, user.updated_at = "active", now(), now()
    audit(s, tenant, "user.unlocked", actor=actor.user_id, subject=user.id, ip=actor.ip,
          **actor.details())  # fmt: skip


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


# --- Users as the console and the admin API manage them (issue 14) ---------------------------

ROLE_RANK = {Role.MEMBER.value: 0, Role.ADMIN.value: 1, Role.OWNER.value: 2}
MFA_STATES = ("on", "enrolled", "none")  # MFA on; a second factor but not on; no factor


def set_role(s: Session, tenant: Tenant, user: User, role: str, actor: Actor) -> None:
    """Change ``user``'s role. Making an owner, or changing an owner, needs an owner; the last
    active owner cannot be demoted (:func:`check_may_manage`)."""
    if role not in ROLE_RANK:
        raise DirectoryError("role must be member, admin or owner")
    if role == user.role:
        return
    if role == Role.OWNER.value:
        require_owner(s, tenant, actor, "only an owner can make an owner")
    check_may_manage(s, tenant, actor, user, removes_owner=user.status == "active")
    previous, user.role, user.updated_at = user.role, role, now()
    if ROLE_RANK[role] > ROLE_RANK[previous]:
        # A link issued before the raise may have been shown to whoever asked for it (no
        # mail sender): it must not open an account that now holds more rights than theirs.
        links.forget(s, user, user.updated_at)
    audit(s, tenant, "user.role_changed", actor=actor.user_id, subject=user.id, ip=actor.ip,
          previous=previous, role=role, **actor.details())  # fmt: skip


def live_sessions(
    s: Session, user: User, absolute: int, idle: int | None = None
) -> list[UserSession]:
    """The user's sign-ins that may still be in use (idp.user_sessions.live), newest first;
    ``absolute`` and ``idle`` are the session timeouts (with ``idle``, sessions left unused
    longer are not listed)."""
    return user_sessions.live(s, user, now(), absolute, idle)


def sign_out_everywhere(s: Session, tenant: Tenant, user: User, actor: Actor, absolute: int) -> int:
    """End every browser session of ``user`` (``sessions_revoked_at``), every token family
    and every remembered browser; return how many sessions were live. ``absolute`` is the
    session lifetime."""
    check_may_manage(s, tenant, actor, user)
    t = now()
    ended = len(user_sessions.live(s, user, t, absolute))
    user.sessions_revoked_at = user.updated_at = t
    user_sessions.end_all(s, user, t)
    revoke_user_grants(s, tenant, user, "signed_out_everywhere", actor)
    browsers = remembered.forget_all(s, user, t)
    links.forget(s, user, t, links.ACCOUNT_CHANGES)
    audit(s, tenant, "user.signed_out_everywhere", actor=actor.user_id, subject=user.id,
          ip=actor.ip, sessions=ended, browsers=browsers, **actor.details())  # fmt: skip
    return ended


def delete_user(s: Session, tenant: Tenant, user: User, actor: Actor) -> None:
    """Delete ``user`` with their factors, codes, sessions, links and token families. Not the
    last active owner, an owner only by an owner, and never oneself. The audit event keeps the
    username, since the row goes."""
    if actor.user_id is not None and actor.user_id == user.id:
        raise Forbidden("you cannot delete your own account")
    check_may_manage(s, tenant, actor, user, removes_owner=user.status == "active")
    audit(s, tenant, "user.deleted", actor=actor.user_id, subject=user.id, ip=actor.ip,
          username=user.username, role=user.role, **actor.details())  # fmt: skip
    s.delete(user)
    s.flush()


@dataclass(frozen=True)
class SetPasswordLink:
    """A set-password link just issued: ``emailed`` tells whether it reached the user's
    mailbox; when it did not, whoever asked for it is shown ``url`` once."""

    url: str
    emailed: bool


def awaits_password(user: User) -> bool:
    """Whether a set-password link may serve ``user``: no password and no second factor yet
    (a reset for an account that has either is another flow)."""
    return user.password_hash is None and not user.credentials


def send_set_password_link(
    s: Session, svc: Services, tenant: Tenant, user: User, actor: Actor
) -> SetPasswordLink:
    """Issue a set-password link for ``user`` (earlier ones stop working) and email it when
    mail is configured. Only for a user who has no password and no second factor yet."""
    check_may_manage(s, tenant, actor, user)
    if not awaits_password(user):
        raise Conflict(
            f"{user.username!r} already has a password or a sign-in method: "
            "a set-password link is only for a new account"
        )
    t = now()
    token = links.issue(s, svc.cipher.derive("links"), tenant, user, links.SET_PASSWORD,
                        links.INVITATION_TTL, t)  # fmt: skip
    url = f"{svc.settings.base_url.rstrip('/')}/t/{tenant.slug}/set-password?token={token}"
    emailed = False
    if svc.mail is not None:
        days = links.INVITATION_TTL // 86400
        text = (
            f"An account was made for you at {tenant.name}: your username is {user.username}.\n\n"
            f"Choose your password here (the link works once, for {days} days):\n{url}\n\n"
            f"If you did not expect this, ignore this email.\n-- {tenant.name}"
        )
        try:
            svc.mail.send(user.email, f"{tenant.name}: set your password", text)
            emailed = True
        except DeliveryFailed:
            emailed = False
    if emailed:  # the link then proves the mailbox (idp.links: a link's target)
        links.peek_link(s, svc.cipher.derive("links"), tenant, token, links.SET_PASSWORD,
                        t).target = user.email  # fmt: skip
    audit(s, tenant, "user.set_password_link_sent", actor=actor.user_id, subject=user.id,
          ip=actor.ip, emailed=emailed, **actor.details())  # fmt: skip
    return SetPasswordLink(url=url, emailed=emailed)


def link_user(s: Session, svc: Services, tenant: Tenant, token: str) -> User:
    """The user a live set-password link is for, without using it; :class:`links.LinkInvalid`
    (one message for every reason) when it is not live or the user no longer waits for one."""
    user = links.peek(s, svc.cipher.derive("links"), tenant, token, links.SET_PASSWORD, now())
    if not awaits_password(user):
        raise links.LinkInvalid()
    return user


def set_password_from_link(
    s: Session, svc: Services, tenant: Tenant, token: str, password: str, ip: str | None
) -> User:
    """Set the first password of the user a set-password link names, and use the link up. A
    weak password raises :class:`WeakSecret` and leaves the link usable. A link that was
    emailed to the user's address proves it: the address is verified."""
    user = link_user(s, svc, tenant, token)
    passwords_rules.check_new(tenant, password, username=user.username, email=user.email,
                              has_second_factor=False)  # fmt: skip
    key = svc.cipher.derive("links")
    emailed_to = links.peek_link(s, key, tenant, token, links.SET_PASSWORD, now()).target
    user = links.redeem(s, key, tenant, token, links.SET_PASSWORD, now())
    user.password_hash, user.updated_at = svc.passwords.hash(password), now()
    user.password_changed_at = user.updated_at
    if emailed_to is not None and emailed_to == user.email:
        user.email_verified = True  # the link reached this mailbox
    audit(s, tenant, "user.password_set", actor=user.id, subject=user.id, ip=ip, via="link")
    return user


@dataclass(frozen=True)
class UserFilter:
    """What the console's and the API's user lists narrow to (all optional)."""

    q: str = ""  # a substring of the username or the email, any case
    role: str = ""
    status: str = ""
    mfa: str = ""  # one of MFA_STATES

    def check(self) -> UserFilter:
        """Itself, or :class:`DirectoryError` naming the value that is not allowed."""
        for name, value, allowed in (
            ("role", self.role, tuple(ROLE_RANK)),
            ("status", self.status, tuple(STATUS_EVENTS)),
            ("mfa", self.mfa, MFA_STATES),
        ):
            if value and value not in allowed:
                raise DirectoryError(f"{name} must be one of {', '.join(allowed)}")
        if len(self.q) > 254:
            raise DirectoryError("search: at most 254 characters")
        return self


def _has_factor() -> Any:
    return (
        select(Credential.id)
        .where(Credential.user_id == User.id, Credential.type.in_(SECOND_FACTOR_KINDS))
        .exists()
    )


def users_matching(tenant: Tenant, f: UserFilter) -> Select[Any]:
    """A query of the tenant's users that match ``f`` (unordered: callers page it by key)."""
    stmt = select(User).where(User.tenant_id == tenant.id)
    if f.q:
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", f.q.strip().lower()) + "%"
        stmt = stmt.where(
            or_(
                User.username_norm.like(pattern, escape="\\"),
                func.lower(User.email).like(pattern, escape="\\"),
            )
        )
    if f.role:
        stmt = stmt.where(User.role == f.role)
    if f.status:
        stmt = stmt.where(User.status == f.status)
    on = or_(User.mfa_enabled.is_(True), User.mfa_required.is_(True))
    if f.mfa == "on":
        stmt = stmt.where(on)
    elif f.mfa == "enrolled":
        stmt = stmt.where(~on, _has_factor())
    elif f.mfa == "none":
        stmt = stmt.where(~on, ~_has_factor())
    return stmt


def mfa_states(s: Session, users: list[User]) -> dict[int, str]:
    """Each listed user's MFA state (one of MFA_STATES), in one query."""
    ids = [u.id for u in users]
    with_factor = set(
        s.scalars(
            select(Credential.user_id).where(
                Credential.user_id.in_(ids), Credential.type.in_(SECOND_FACTOR_KINDS)
            )
        )
    )
    return {
        u.id: "on"
        if u.mfa_enabled or u.mfa_required
        else ("enrolled" if u.id in with_factor else "none")
        for u in users
    }
