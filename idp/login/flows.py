"""Flow state storage and the bridge between the flow engine and the web app.

A flow lives in the ephemeral store under a random id with a TTL. Its id is also recorded in
the browser session, and a flow is only found through that session: a flow id that leaks
(in a log or a Referer) is useless in another browser.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import session
from sqlalchemy.orm import Session

from factors.password import PasswordFactor
from flows.context import AuthContext, VerifiedFactor, merge
from flows.engine import Engine
from flows.errors import FlowNotFound
from flows.plan import plan
from flows.policy import Request
from flows.state import FlowState
from flows.steps import STEPS, Subject
from flows.throttle import Throttle
from idp.directory import facts_of, find_user, policy_of, set_status, subject_of
from idp.services import services
from idp.store.models import Tenant, User

MAX_FLOWS_PER_SESSION = 5


def session_context() -> AuthContext | None:
    raw = session.get("auth")
    return AuthContext.from_json(raw) if raw else None


def safe_return_to(tenant: Tenant, target: str | None) -> str:
    """Only paths inside this tenant are followed after login (no open redirects)."""
    default = f"/t/{tenant.slug}/account"
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(f"/t/{tenant.slug}/"):
        return default
    if "//" in parts.path or "/../" in parts.path:
        return default
    return target


def start(tenant: Tenant, request: Request, return_to: str, continue_to: str = "") -> FlowState:
    """Create a flow for this browser session; a signed-in user is already identified."""
    state = FlowState(
        id=secrets.token_urlsafe(24),
        tenant=tenant.slug,
        request=request,
        created_at=int(time.time()),
        return_to=safe_return_to(tenant, return_to),
        continue_to=continue_to,
    )
    ctx = session_context()
    if ctx is not None:
        with services().db.session() as s:
            user = s.get(User, ctx.user_id)
            if user is not None and user.tenant_id == tenant.id:
                state.identified = state.reauth = True
                state.user_id = user.id
                state.username = user.username_norm
    save(state)
    flows = [f for f in session.get("flows", []) if f != state.id][-(MAX_FLOWS_PER_SESSION - 1) :]
    session["flows"] = [*flows, state.id]
    return state


def load(flow_id: str) -> FlowState:
    if flow_id not in session.get("flows", []):
        raise FlowNotFound()
    raw = services().store.get(f"flow:{flow_id}")
    if raw is None:
        raise FlowNotFound()
    return FlowState.from_json(raw)


def save(state: FlowState) -> None:
    svc = services()
    svc.store.set(f"flow:{state.id}", state.to_json().encode(), svc.settings.flow_ttl)


def finish(state: FlowState) -> None:
    services().store.delete(f"flow:{state.id}")
    session["flows"] = [f for f in session.get("flows", []) if f != state.id]


def engine_for(s: Session, tenant: Tenant) -> Engine:
    """An engine whose planner sees this tenant's policy and this session's context."""
    policy, ctx = policy_of(tenant), session_context()

    def planner(state: FlowState) -> list[str]:
        user = s.get(User, state.user_id) if state.user_id is not None else None
        # A forced fresh login (prompt=login, max_age=0, ForceAuthn) counts only this flow's
        # factors: the session's may carry the same second as the request.
        achieved: list[VerifiedFactor] = []
        if ctx is not None and ctx.user_id == state.user_id and not state.request.force_fresh:
            achieved = list(ctx.factors)
        for factor in state.verified:
            achieved = merge(achieved, factor)
        facts = facts_of(user) if user is not None else None
        return plan(state.request, policy, facts, state.identified, achieved)

    return Engine(STEPS, planner)


@dataclass
class WebEnv:
    """The flow engine's view of the world during one request (implements flows.steps.Env)."""

    s: Session
    tenant: Tenant
    now: int
    client_ip: str
    passwords: PasswordFactor

    def find_subject(self, tenant: str, user_id: int | None, username: str) -> Subject | None:
        user = (
            self.s.get(User, user_id)
            if user_id is not None
            else find_user(self.s, self.tenant, username)
        )
        if user is None or user.tenant_id != self.tenant.id:
            return None
        return subject_of(user)

    def throttle(self, scope: str) -> Throttle:
        return services().throttle(scope)

    def lock_account(self, user_id: int) -> None:
        user = self.s.get(User, user_id)
        if user is not None and user.status == "active":
            set_status(self.s, self.tenant, user, "locked")

    def store_password_hash(self, user_id: int, encoded: str) -> None:
        user = self.s.get(User, user_id)
        if user is not None:
            user.password_hash = encoded
