"""MFA adoption at a glance: the figures behind the console's overview and ``GET /adoption``.

Every figure is one aggregate query over the real tables (users, credentials, backup codes,
audit events), grouped and counted by the database: no counters kept aside, and no user is
loaded into Python except the admins listed as lacking MFA (at most :data:`ADMIN_LIST_LIMIT`).
The SQL is dialect-neutral (SQLite and PostgreSQL): day buckets are integer arithmetic on Unix
seconds, and each grouped expression is computed in a subquery so that the outer GROUP BY names
a plain column.

Definitions (the overview page states them too):

- *MFA on*: the user is asked for a second factor at every login (DESIGN.md "Who is asked at
  login"; :func:`flows.policy.mfa_on`): they turned it on, an admin requires it for them, the
  tenant's Required mode covers their role, or the tenant asks phishing-resistant MFA of its
  admins and they are an admin or owner. :func:`mfa_on_clause` is that rule in SQL.
- *Enrolled*: the user holds at least one second factor (a credential of a kind in
  :data:`idp.mfa.credentials.KINDS`). Backup codes alone do not count: they come with a factor.
- States: *on* (MFA on, whether or not a factor is enrolled yet; ``on_without_factor`` says how
  many of them will be asked to set one up at their next login), *enrolled but not on*, *none*.
- Disabled users are left out of every figure except ``disabled``, which counts them; locked
  users are counted (a lock is temporary).
- Enrolments: second factors added per UTC day over the last :data:`WINDOW_DAYS` days, from the
  audit log's ``mfa.factor_added`` events, which outlive the factors (a removal or an MFA reset
  deletes the credential but not its event); ``still_enrolled`` counts the credentials created
  that day that still exist. Days older than the tenant's audit retention show no events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, false, func, or_, select, true
from sqlalchemy.orm import Session

from factors import backup, kinds
from flows.policy import MfaMode, MfaScope, Role
from idp.mfa.credentials import KINDS
from idp.store.models import AuditEvent, BackupCode, Credential, Tenant, User

DAY = 86400
WINDOW_DAYS = 90
ADMIN_LIST_LIMIT = 100
ADMIN_ROLES = (Role.ADMIN.value, Role.OWNER.value)
DISABLED = "disabled"
ENROLMENT_EVENT = "mfa.factor_added"

# The kinds the overview counts users by, in the order it shows them: a WebAuthn credential is
# a passkey when registered as one (Credential.data["passkey"]), else a security key.
FACTOR_KINDS = ("totp", "sms", "email", "webauthn", "passkey")
STATES = ("on", "enrolled", "none")
STATE_LABELS = {"on": "MFA on", "enrolled": "Enrolled but not on", "none": "No second factor"}


@dataclass(frozen=True)
class States:
    """Users (not disabled) by MFA state, and the disabled users counted aside."""

    on: int
    enrolled: int
    none: int
    on_without_factor: int  # MFA on, no factor yet: asked to set one up at their next login
    disabled: int

    @property
    def total(self) -> int:
        return self.on + self.enrolled + self.none

    def items(self) -> list[tuple[str, int]]:
        return [(state, getattr(self, state)) for state in STATES]


@dataclass(frozen=True)
class KindCount:
    """Users (not disabled) holding at least one factor of ``kind``, and how many factors."""

    kind: str
    label: str
    users: int
    factors: int


@dataclass(frozen=True)
class BackupCodes:
    """Users (not disabled) by unused backup codes left."""

    none_left: int  # enrolled users with no unused code
    low: int  # 1 to backup.LOW_WARNING left
    plenty: int  # more than backup.LOW_WARNING left


@dataclass(frozen=True)
class AdminGap:
    """An admin or owner (not disabled) who is not asked for a second factor at every login,
    or who has none enrolled."""

    username: str
    role: str
    mfa_on: bool
    enrolled: bool


@dataclass(frozen=True)
class Day:
    """One UTC day of the enrolment series."""

    start: int  # Unix seconds at 00:00 UTC
    added: int  # mfa.factor_added events
    still_enrolled: int  # credentials created that day that still exist


@dataclass(frozen=True)
class Adoption:
    states: States
    kinds: list[KindCount]
    backup_codes: BackupCodes
    admins_without_mfa: list[AdminGap]  # at most ADMIN_LIST_LIMIT, owners first
    admins_without_mfa_total: int
    enrolments: list[Day]  # WINDOW_DAYS days, oldest first, ending today (UTC)
    generated_at: int


def mfa_on_clause(tenant: Tenant) -> ColumnElement[bool]:
    """SQL for :func:`flows.policy.mfa_on` over ``users`` rows of ``tenant``."""
    admin = User.role.in_(ADMIN_ROLES)
    by_tenant: ColumnElement[bool] = false()
    if tenant.mfa_mode == MfaMode.REQUIRED.value:
        by_tenant = true() if tenant.mfa_scope == MfaScope.ALL.value else admin
    phishing_resistant = admin if tenant.admins_phishing_resistant else false()
    return or_(User.mfa_enabled, User.mfa_required, by_tenant, phishing_resistant)


def enrolled_clause() -> ColumnElement[bool]:
    """SQL: the ``users`` row holds at least one second factor."""
    return exists().where(Credential.user_id == User.id, Credential.type.in_(KINDS))


def _flag(clause: ColumnElement[bool]) -> Any:
    return case((clause, 1), else_=0)


def states(s: Session, tenant: Tenant) -> States:
    per_user = (
        select(
            _flag(mfa_on_clause(tenant)).label("on"),
            _flag(enrolled_clause()).label("enrolled"),
            _flag(User.status == DISABLED).label("disabled"),
        )
        .where(User.tenant_id == tenant.id)
        .subquery()
    )
    rows = s.execute(
        select(per_user.c.on, per_user.c.enrolled, per_user.c.disabled, func.count()).group_by(
            per_user.c.on, per_user.c.enrolled, per_user.c.disabled
        )
    )
    on = enrolled = none = on_without = disabled = 0
    for is_on, is_enrolled, is_disabled, n in rows:
        if is_disabled:
            disabled += n
        elif is_on:
            on += n
            on_without += 0 if is_enrolled else n
        elif is_enrolled:
            enrolled += n
        else:
            none += n
    return States(on, enrolled, none, on_without, disabled)


def _kind_expr() -> Any:
    passkey = func.coalesce(Credential.data["passkey"].as_boolean(), false())
    return case((and_(Credential.type == "webauthn", passkey), "passkey"), else_=Credential.type)


def _active_users(tenant: Tenant) -> ColumnElement[bool]:
    return and_(User.tenant_id == tenant.id, User.status != DISABLED)


def by_kind(s: Session, tenant: Tenant) -> list[KindCount]:
    per_factor = (
        select(_kind_expr().label("kind"), Credential.user_id, Credential.id)
        .join(User, User.id == Credential.user_id)
        .where(_active_users(tenant), Credential.type.in_(KINDS))
        .subquery()
    )
    counted = {
        kind: (users, factors)
        for kind, users, factors in s.execute(
            select(
                per_factor.c.kind,
                func.count(func.distinct(per_factor.c.user_id)),
                func.count(per_factor.c.id),
            ).group_by(per_factor.c.kind)
        )
    }
    return [
        KindCount(kind, kinds.KINDS[kind].label, *counted.get(kind, (0, 0)))
        for kind in FACTOR_KINDS
    ]


def backup_codes(s: Session, tenant: Tenant) -> BackupCodes:
    unused = and_(BackupCode.user_id == User.id, BackupCode.used_at.is_(None))
    left = (
        select(func.count().label("n"))
        .select_from(BackupCode)
        .join(User, User.id == BackupCode.user_id)
        .where(_active_users(tenant), BackupCode.used_at.is_(None))
        .group_by(BackupCode.user_id)
        .subquery()
    )
    low = s.scalar(select(func.count()).where(left.c.n <= backup.LOW_WARNING)) or 0
    plenty = s.scalar(select(func.count()).where(left.c.n > backup.LOW_WARNING)) or 0
    none_left = (
        s.scalar(
            select(func.count())
            .select_from(User)
            .where(_active_users(tenant), enrolled_clause(), ~exists().where(unused))
        )
        or 0
    )
    return BackupCodes(none_left=none_left, low=low, plenty=plenty)


def admins_without_mfa(s: Session, tenant: Tenant) -> tuple[list[AdminGap], int]:
    """Admins and owners (not disabled) with MFA not on or no factor: the first
    :data:`ADMIN_LIST_LIMIT` (owners first, then by username), and how many in all."""
    on, enrolled = mfa_on_clause(tenant), enrolled_clause()
    gap = and_(_active_users(tenant), User.role.in_(ADMIN_ROLES), or_(~on, ~enrolled))
    total = s.scalar(select(func.count()).select_from(User).where(gap)) or 0
    owners_first = case((User.role == Role.OWNER.value, 0), else_=1)
    rows = s.execute(
        select(User.username, User.role, _flag(on), _flag(enrolled))
        .where(gap)
        .order_by(owners_first, User.username_norm)
        .limit(ADMIN_LIST_LIMIT)
    )
    gaps = [AdminGap(name, role, bool(is_on), bool(has)) for name, role, is_on, has in rows]
    return gaps, total


def day_iso(start: int) -> str:
    """``YYYY-MM-DD`` of the UTC day starting at ``start``."""
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")


def window_start(now: int) -> int:
    """00:00 UTC of the first day of the :data:`WINDOW_DAYS`-day window ending today."""
    return now - now % DAY - (WINDOW_DAYS - 1) * DAY


def _per_day(s: Session, at: Any, where: list[ColumnElement[bool]], start: int) -> dict[int, int]:
    days = select(((at - start) // DAY).label("day")).where(at >= start, *where).subquery()
    rows = s.execute(select(days.c.day, func.count()).group_by(days.c.day))
    return {int(day): n for day, n in rows}


def enrolments(s: Session, tenant: Tenant, now: int) -> list[Day]:
    start = window_start(now)
    end = start + WINDOW_DAYS * DAY
    added = _per_day(
        s,
        AuditEvent.at,
        [
            AuditEvent.tenant_id == tenant.id,
            AuditEvent.event == ENROLMENT_EVENT,
            AuditEvent.result == "success",
            AuditEvent.at < end,
        ],
        start,
    )
    kept = _per_day(
        s,
        Credential.created_at,
        [
            Credential.user_id.in_(select(User.id).where(User.tenant_id == tenant.id)),
            Credential.type.in_(KINDS),
            Credential.created_at < end,
        ],
        start,
    )
    return [Day(start + i * DAY, added.get(i, 0), kept.get(i, 0)) for i in range(WINDOW_DAYS)]


def adoption(s: Session, tenant: Tenant, now: int) -> Adoption:
    """Every figure of the overview for ``tenant`` at ``now``."""
    gaps, total = admins_without_mfa(s, tenant)
    return Adoption(
        states=states(s, tenant),
        kinds=by_kind(s, tenant),
        backup_codes=backup_codes(s, tenant),
        admins_without_mfa=gaps,
        admins_without_mfa_total=total,
        enrolments=enrolments(s, tenant, now),
        generated_at=now,
    )
