"""The account page: who is signed in, and how strongly (level, amr, auth_time)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from idp.login.flows import session_context
from idp.tenancy import current_tenant, tenant_blueprint

bp = tenant_blueprint("account", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for(".security"))


@bp.get("/account")
@login_required
def security() -> ResponseReturnValue:
    ctx = session_context()
    assert ctx is not None
    auth_time = ctx.auth_time()
    when = (
        datetime.fromtimestamp(auth_time, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if auth_time
        else "-"
    )
    return render_template(
        "account/security.html",
        tenant=current_tenant(),
        user=current_user,
        level=ctx.level(),
        amr=ctx.amr(),
        auth_time=when,
    )
