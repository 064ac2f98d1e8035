"""Pages for signed-in users: sign in first, and keep meeting the tenant's MFA policy.

A session that falls below the policy (a stricter policy applied immediately, an admin reset,
MFA turned off while required) is sent through the login flow again before anything else.
"""

from __future__ import annotations

from flask import redirect, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from flows.policy import Request
from idp import assurance, clock
from idp.errors import HttpError
from idp.login import flow_store
from idp.login.planning import standing_flow
from idp.services import services
from idp.store.models import User
from idp.tenancy import current_tenant


def require_signed_in(roles: tuple[str, ...] = ()) -> Response | None:
    """``before_request`` check; ``roles`` limits the page to those roles."""
    here = request.full_path.rstrip("?")
    if not current_user.is_authenticated:
        return redirect(url_for("login.login", return_to=here))
    tenant = current_tenant()
    with services().db.session() as s:
        user = s.get(User, int(current_user.get_id()))
        assert user is not None
        state = standing_flow(s, tenant, here if request.method == "GET" else "")
        if state is not None:
            return redirect(url_for("login.login", flow=state.id))
        if roles and user.role not in roles:
            raise HttpError("Only the tenant's administrators can open this page.", 403)
    return None


def sudo_request() -> Request:
    """Re-authentication at the account's level (DESIGN.md, "Sensitive actions")."""
    return Request(started_at=clock.now(), reauth=True)


def reauthenticated(s: Session | None = None) -> bool:
    """Re-authenticated at the account's level within the window (DESIGN.md "Sensitive
    actions"; flows.assurance decides)."""
    if s is None:
        with services().db.session() as s:
            return reauthenticated(s)
    return assurance.decide(s, current_tenant(), sudo_request()).verdict.ready


def reauthenticate(return_to: str) -> Response:
    """Run the login flow for what re-authentication still needs, then go to ``return_to``."""
    state = flow_store.start(current_tenant(), sudo_request(), return_to)
    return redirect(url_for("login.login", flow=state.id))
