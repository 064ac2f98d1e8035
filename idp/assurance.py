"""The web side of the assurance authority (flows.assurance): the user's facts from the
database, this browser session's authentication context, and the one "ready, or why not"
decision that OIDC, SAML, the account page and the console ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from flask import session
from sqlalchemy.orm import Session

from flows.assurance import Verdict, counted, verdict
from flows.context import AuthContext
from flows.policy import Request, TenantPolicy, UserFacts
from idp import clock, remembered
from idp.directory import policy_of
from idp.services import services
from idp.store.models import Tenant, User
from idp.user_facts import facts_of, reset_applies, standing_facts


def tenant_policy(tenant: Tenant) -> TenantPolicy:
    """The tenant's policy, limited to the factors this deployment can deliver."""
    return policy_of(tenant, services().deliverable)


def user_facts(user: User) -> UserFacts:
    """What the authority knows of ``user``, with the kinds this deployment can verify."""
    return facts_of(user, services().deliverable)


def session_context() -> AuthContext | None:
    """This browser session's context as stored (not yet reduced to what counts)."""
    raw = session.get("auth")
    return AuthContext.from_json(raw) if raw else None


def session_alive(user: User, ctx: AuthContext) -> bool:
    """Whether anything this session proved still counts for ``user`` (cheap: no factors
    are loaded; a disable or sign-out everywhere ends the session)."""
    return user.status == "active" and bool(counted(ctx, standing_facts(user), False).factors)


def standing(tenant: Tenant, user: User, ctx: AuthContext) -> tuple[AuthContext, int | None]:
    """The session's factors that still count for ``user``, and the policy cap they keep:
    with ``mfa_apply=next_login`` a session keeps the policy level it signed in under."""
    return counted(ctx, standing_facts(user), reset_applies(tenant)), policy_cap(tenant)


def policy_cap(tenant: Tenant) -> int | None:
    """The policy level this session signed in under, which it keeps while the tenant applies
    policy changes at the next login; None when they apply at once."""
    raw = None if reset_applies(tenant) else session.get("policy_level")
    return int(raw) if raw is not None else None


REMEMBERED = "remembered"  # session key: the remembered browser's record the session signed in with


def remembered_at(s: Session, tenant: Tenant, user: User, now: int) -> int | None:
    """When this session signed in on a remembered browser (idp.login.remember) whose record
    still counts: its last real second factor (flows.policy.required_level), else None."""
    record_id = session.get(REMEMBERED)
    if not isinstance(record_id, int):
        return None
    record = remembered.by_id(s, tenant, user, record_id, now)
    return record.verified_at if record is not None else None


@dataclass(frozen=True)
class Decision:
    """The authority's verdict on this browser session, and the session's user."""

    verdict: Verdict
    user: User | None


def session_user(s: Session, tenant: Tenant) -> tuple[User | None, AuthContext | None]:
    """The session's user in ``tenant`` and the stored context, or (None, None)."""
    ctx = session_context()
    user = s.get(User, ctx.user_id) if ctx is not None else None
    if ctx is None or user is None or user.tenant_id != tenant.id:
        return None, None
    return user, ctx


def decide(
    s: Session,
    tenant: Tenant,
    request: Request,
    *,
    forced: bool = False,
    consent: Callable[[User], bool] | None = None,
    now: int | None = None,
) -> Decision:
    """Is this browser session ready for ``request``? (flows.assurance.verdict)

    ``consent`` tells whether the user still has to allow the application (OIDC). A session
    that signed in on a remembered browser keeps meeting the policy's second factor while
    that browser's record counts (one small query)."""
    user, ctx = session_user(s, tenant)
    facts = user_facts(user) if user is not None else None
    now = clock.now() if now is None else now
    found = verdict(
        replace(request, reauth_max_age=services().settings.reauth_window),
        tenant_policy(tenant),
        facts,
        ctx,
        now=now,
        reset_applies=reset_applies(tenant),
        policy_cap=policy_cap(tenant),
        forced=forced,
        consent_needed=bool(consent and user is not None and consent(user)),
        remembered_at=remembered_at(s, tenant, user, now) if user is not None else None,
    )
    return Decision(found, user)
