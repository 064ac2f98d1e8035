"""Flow state storage: where a sign-in flow lives between requests.

A flow lives in the ephemeral store under a random id with a TTL. Its id is also recorded in
the browser session, and a flow is only found through that session: a flow id that leaks
(in a log or a Referer) is useless in another browser.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import replace
from urllib.parse import urlsplit

from flask import session

from flows.errors import FlowNotFound
from flows.policy import Request
from flows.second_factor import begin_enrolment
from flows.state import FlowState
from idp import clock
from idp.assurance import session_alive, session_context
from idp.services import services
from idp.store.models import Tenant, User

MAX_FLOWS_PER_SESSION = 5
SEAL = "flow-state"  # associated data of secrets kept in a flow (idp.crypto)


def safe_return_to(tenant: Tenant, target: str | None) -> str:
    """Only paths inside this tenant are followed after login (no open redirects)."""
    default = f"/t/{tenant.slug}/account"
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. "http://[::1": an unclosed IPv6 literal
        return default
    if parts.scheme or parts.netloc or not parts.path.startswith(f"/t/{tenant.slug}/"):
        return default
    if "//" in parts.path or "/../" in parts.path:
        return default
    return target


def seal(value: str) -> str:
    """Encrypt a secret for keeping in a flow (the ephemeral store is storage too)."""
    return base64.urlsafe_b64encode(services().cipher.encrypt(value.encode(), SEAL)).decode()


def start(
    tenant: Tenant, request: Request, return_to: str, continue_to: str = "", enrolling: str = ""
) -> FlowState:
    """Create a flow for this browser session; a signed-in user is already identified.

    ``enrolling`` starts the flow at setting up that factor (the security page's "Add").
    """
    state = FlowState(
        id=secrets.token_urlsafe(24),
        tenant=tenant.slug,
        request=replace(request, reauth_max_age=services().settings.reauth_window),
        created_at=clock.now(),
        return_to=safe_return_to(tenant, return_to),
        continue_to=continue_to,
    )
    if enrolling:
        begin_enrolment(state, enrolling, seal)
    ctx = session_context()
    if ctx is not None:
        with services().db.session() as s:
            user = s.get(User, ctx.user_id)
            if user is not None and user.tenant_id == tenant.id and session_alive(user, ctx):
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
