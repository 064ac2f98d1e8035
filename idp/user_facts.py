"""A user's facts for the assurance authority (flows.assurance), read from the database.

No Flask here: the token endpoint and introspection use it as well as the web pages.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import ORMExecuteState, Session, object_session

from flows.assurance import Reason, token_still_counts
from flows.policy import MfaApply, Role, UserFacts, policy_level
from idp.directory import policy_of
from idp.store.models import BackupCode, Tenant, User

_MEMO = "stepwise.user_facts"  # Session.info key: facts computed since the last write


def facts_of(user: User, verifiable: tuple[str, ...] = ()) -> UserFacts:
    """What the authority knows of ``user``. Every enrolled factor counts as held, whether
    the tenant still allows its kind or not; ``verifiable`` names the kinds this deployment
    can check now (SMS and email need a sender).

    Computed once per unit of work: the planner asks several times per login POST. The
    answer is kept in the session until it writes anything (:func:`forget_facts`), and is
    not used while any row waits to be written."""
    s = object_session(user)
    if s is None:
        return _facts_of(user, verifiable, None)
    memo: dict[tuple[int, tuple[str, ...]], UserFacts] = s.info.setdefault(_MEMO, {})
    key = (user.id, verifiable)
    pending = bool(s.new or s.deleted or s.dirty)
    found = None if pending else memo.get(key)
    if found is None:
        found = _facts_of(user, verifiable, s)
        if not pending:
            memo[key] = found
    return found


def forget_facts(s: Session, *_: Any) -> None:
    """Drop the facts kept in ``s``: it wrote something (a flush, an UPDATE or DELETE)."""
    s.info.pop(_MEMO, None)


def _forget_after_statement(state: ORMExecuteState) -> None:
    if not state.is_select:
        forget_facts(state.session)


event.listen(Session, "after_flush", forget_facts)
event.listen(Session, "after_rollback", forget_facts)
event.listen(Session, "after_commit", forget_facts)
event.listen(Session, "do_orm_execute", _forget_after_statement)


def _facts_of(user: User, verifiable: tuple[str, ...], s: Session | None) -> UserFacts:
    kinds = verifiable
    creds = sorted(user.credentials, key=lambda c: (-(c.last_used_at or 0), -c.id))
    has_backup = bool(
        s is not None
        and s.scalar(
            select(func.count())
            .select_from(BackupCode)
            .where(BackupCode.user_id == user.id, BackupCode.used_at.is_(None))
        )
    )
    return UserFacts(
        role=Role(user.role),
        mfa_required_by_admin=user.mfa_required,
        mfa_enabled_by_user=user.mfa_enabled,
        enrolled=tuple(f"{c.type}:{c.id}" for c in creds if c.type in kinds),
        unverifiable=tuple(sorted({c.type for c in creds if c.type not in kinds})),
        has_backup_codes=has_backup,
        last_factor=user.mfa_last_factor,
        skipped_offer_at=user.mfa_skipped_at,
        status=user.status,
        reset_at=user.mfa_reset_at,
        sessions_revoked_at=user.sessions_revoked_at,
    )


def standing_facts(user: User) -> UserFacts:
    """The facts that decide whether an earlier authentication still counts (status, resets,
    sessions ended) and what the policy asks (role, MFA flags): read from the user's row
    alone, without loading factors (flows.assurance.counted, token_still_counts,
    flows.policy.policy_level)."""
    return UserFacts(
        role=Role(user.role),
        mfa_required_by_admin=user.mfa_required,
        mfa_enabled_by_user=user.mfa_enabled,
        status=user.status,
        reset_at=user.mfa_reset_at,
        sessions_revoked_at=user.sessions_revoked_at,
    )


def reset_applies(tenant: Tenant) -> bool:
    """Whether an admin's MFA reset ends the second factors sessions already verified."""
    return tenant.mfa_apply == MfaApply.IMMEDIATE.value


def family_reason(
    tenant: Tenant, user: User | None, level: int, auth_time: int, remembered: bool = False
) -> Reason | None:
    """For a token family or one of its tokens: None while the authentication it froze
    (``level`` at ``auth_time``) still counts for ``user``, else why not. ``remembered``: the
    family's sign-in met the policy's second factor through a remembered browser
    (``Grant.remembered``; flows.assurance.token_still_counts)."""
    if user is None or user.tenant_id != tenant.id:
        return Reason.USER_INACTIVE
    facts = standing_facts(user)
    needed = policy_level(policy_of(tenant), facts)
    return token_still_counts(facts, level, auth_time, needed, reset_applies(tenant), remembered)
