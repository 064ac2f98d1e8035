"""Tenant MFA administration shared by the CLI, the console and the JSON admin API.

Each operation validates its input (raising :class:`idp.directory.DirectoryError` with a
message fit for the user), writes an audit event in the same transaction, and notifies the
user where the product promises it. Policy changes need no background job: sessions and token
families are held to the policy when they are next used (idp.login.planning, idp.oidc.grants).
Only owners act on an owner: :func:`idp.directory.check_may_manage` is the one rule (raising
:class:`idp.directory.Forbidden`), and an API client is never an owner.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from flows.policy import SECOND_FACTORS, MfaApply, MfaMode, MfaScope, Role, UserFacts, policy_level
from idp import links, remembered
from idp.directory import (
    Actor,
    DirectoryError,
    audit,
    check_may_manage,
    now,
    policy_of,
    require_owner,
    revoke_user_grants,
)
from idp.mfa import credentials
from idp.mfa.notify import security_event
from idp.services import Services
from idp.store.models import Tenant, User
from idp.user_facts import reset_applies

MAX_REOFFER_DAYS = 365
FLAGS = ("totp_two_codes", "admins_phishing_resistant", "webauthn_block_cloned")


def policy_json(tenant: Tenant) -> dict[str, Any]:
    """The policy as the admin API shows and accepts it."""
    return {
        "mode": tenant.mfa_mode,
        "scope": tenant.mfa_scope,
        "apply": tenant.mfa_apply,
        "factors": list(tenant.mfa_factors),
        "reoffer_days": tenant.mfa_reoffer_days,
        "totp_two_codes": tenant.totp_two_codes,
        "admins_phishing_resistant": tenant.admins_phishing_resistant,
        "webauthn_block_cloned": tenant.webauthn_block_cloned,
    }


def _choice(name: str, value: Any, allowed: type[Any]) -> str:
    options = [m.value for m in allowed]
    if value not in options:
        raise DirectoryError(f"{name} must be one of {', '.join(options)}")
    return str(value)


def _owner_level(tenant: Tenant) -> int:
    """The level the tenant policy alone asks of an owner (who has not turned MFA on)."""
    return policy_level(policy_of(tenant, SECOND_FACTORS), UserFacts(role=Role.OWNER))


def set_policy(s: Session, tenant: Tenant, changes: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """Apply ``changes`` (keys of :func:`policy_json`); return the new policy."""
    unknown = set(changes) - set(policy_json(tenant))
    if unknown:
        raise DirectoryError(f"unknown policy field(s): {', '.join(sorted(unknown))}")
    before = policy_json(tenant)
    owners_needed = _owner_level(tenant)
    if "mode" in changes:
        tenant.mfa_mode = _choice("mode", changes["mode"], MfaMode)
    if "scope" in changes:
        tenant.mfa_scope = _choice("scope", changes["scope"], MfaScope)
    if "apply" in changes:
        tenant.mfa_apply = _choice("apply", changes["apply"], MfaApply)
    if "factors" in changes:
        factors = changes["factors"]
        if not isinstance(factors, list) or not all(f in SECOND_FACTORS for f in factors):
            raise DirectoryError(f"factors must be a list of: {', '.join(SECOND_FACTORS)}")
        if not factors:
            raise DirectoryError("allow at least one factor")
        tenant.mfa_factors = [f for f in SECOND_FACTORS if f in factors]
    if "reoffer_days" in changes:
        days = changes["reoffer_days"]
        if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_REOFFER_DAYS:
            raise DirectoryError(
                f"reoffer_days must be a whole number from 0 to {MAX_REOFFER_DAYS}"
            )
        tenant.mfa_reoffer_days = days
    for flag in FLAGS:
        if flag in changes:
            if not isinstance(changes[flag], bool):
                raise DirectoryError(f"{flag} must be true or false")
            setattr(tenant, flag, changes[flag])
    if _owner_level(tenant) < owners_needed:
        require_owner(
            s, tenant, actor, "only an owner can relax the policy that owners sign in under"
        )
    after = policy_json(tenant)
    diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if diff:
        audit(s, tenant, "tenant.mfa_policy_changed", actor=actor.user_id, ip=actor.ip,
              changes=diff, **actor.details())  # fmt: skip
    return after


def require_for_user(s: Session, tenant: Tenant, user: User, required: bool, actor: Actor) -> None:
    """Switch MFA on (or back off) for one user, whatever the tenant's mode; only owners
    change an owner's (:func:`idp.directory.check_may_manage`)."""
    check_may_manage(s, tenant, actor, user)
    if user.mfa_required == required:
        return
    user.mfa_required, user.updated_at = required, now()
    event = "user.mfa_required" if required else "user.mfa_not_required"
    audit(s, tenant, event, actor=actor.user_id, subject=user.id, ip=actor.ip, **actor.details())


def reset_user(s: Session, svc: Services, tenant: Tenant, user: User, actor: Actor) -> int:
    """Remove all of ``user``'s second factors and backup codes; they enrol again at the next
    login, and no remembered browser skips that. With ``apply=immediate`` their sessions and
    token families must verify again too. Only owners reset an owner
    (:func:`idp.directory.check_may_manage`)."""
    check_may_manage(s, tenant, actor, user)
    removed = credentials.remove_all(s, user)
    user.mfa_enabled, user.mfa_skipped_at = False, None
    user.mfa_reset_at = user.updated_at = now()
    browsers = remembered.forget_all(s, user, user.mfa_reset_at)
    links.forget(s, user, user.mfa_reset_at, links.ACCOUNT_CHANGES)
    security_event(s, svc, tenant, user, "mfa.reset", actor=actor.user_id, ip=actor.ip,
                   removed=removed, browsers=browsers, **actor.details())  # fmt: skip
    if reset_applies(tenant):
        revoke_user_grants(s, tenant, user, "mfa_reset", actor)
    return removed


def user_mfa_json(s: Session, user: User) -> dict[str, Any]:
    """A user's MFA state as the admin API shows it (never a secret)."""
    factors = [
        {
            "kind": c.type,
            "label": c.label,
            "created_at": c.created_at,
            "last_used_at": c.last_used_at,
        }
        for c in credentials.enrolled(user)
    ]
    return {
        "username": user.username,
        "role": user.role,
        "mfa_required": user.mfa_required,
        "mfa_enabled": user.mfa_enabled,
        "factors": factors,
        "backup_codes_left": credentials.remaining_backup_codes(s, user.id),
    }
