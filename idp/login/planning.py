"""The policy bridge: the steps a flow still needs, from the tenant's policy (flows.policy),
the planner (flows.plan) and this browser's session (idp.assurance)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from flows.context import VerifiedFactor, merge
from flows.plan import Pending, is_first_factor, plan
from flows.policy import Request
from flows.state import FlowState
from idp import assurance, clock
from idp.assurance import session_context, tenant_policy, user_facts
from idp.login import remember
from idp.login.flow_store import start
from idp.store.models import Tenant, User


def plan_for(s: Session, tenant: Tenant, state: FlowState) -> list[str]:
    """The steps ``state`` still needs, given the tenant's policy and this browser's session.

    The session's factors that still count (idp.assurance) are merged with the flow's; a
    forced fresh login (prompt=login, max_age=0, ForceAuthn) counts only this flow's, since
    the session's may carry the same second as the request.

    Once a first factor has passed, a remembered browser for this user (its cookie, idp.login
    .remember) may stand in for the policy's second factor (flows.policy.required_level).
    """
    user = s.get(User, state.user_id) if state.user_id is not None else None
    ctx = session_context()
    achieved: list[VerifiedFactor] = []
    cap: int | None = None
    if user is not None and ctx is not None and ctx.user_id == user.id:
        if not state.request.force_fresh:
            standing, cap = assurance.standing(tenant, user, ctx)
            achieved = list(standing.factors)
    for factor in state.verified:
        achieved = merge(achieved, factor)
    pending = Pending(state.choice, state.enrolling, bool(state.codes), state.offer_skipped)
    facts = user_facts(user) if user is not None else None
    now = clock.now()
    remembered_at: int | None = None
    if user is not None and any(is_first_factor(f) for f in achieved):
        record = remember.from_cookie(s, tenant, user, now)
        remembered_at = record.verified_at if record is not None else None
    return plan(state.request, tenant_policy(tenant), facts, state.identified, achieved, pending,
                now, cap, remembered_at)  # fmt: skip


def standing_flow(s: Session, tenant: Tenant, return_to: str) -> FlowState | None:
    """A flow to run when the signed-in session no longer meets the policy (after a stricter
    policy with ``apply=immediate``, an admin reset, or turning MFA off), else None."""
    now = clock.now()
    if assurance.decide(s, tenant, Request(started_at=now), now=now).verdict.ready:
        return None
    return start(tenant, Request(started_at=now), return_to)
