"""Console: users (list, one user's page, and the actions on a user)."""

from __future__ import annotations

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from idp.admin.console import actor, back_to, bp, done
from idp.directory import DirectoryError, require_user
from idp.mfa import admin as mfa_admin
from idp.mfa import credentials
from idp.services import services
from idp.store.models import User
from idp.tenancy import current_tenant


@bp.get("/users")
def users() -> ResponseReturnValue:
    tenant = current_tenant()
    with services().db.session() as s:
        rows = [
            (u, len(credentials.enrolled(u)))
            for u in s.scalars(
                select(User).where(User.tenant_id == tenant.id).order_by(User.username_norm)
            )
        ]
        return render_template("admin/users.html", rows=rows)


@bp.post("/users/<username>/mfa")
def user_mfa(username: str) -> ResponseReturnValue:
    back_to(url_for(".users"))
    action = request.form.get("action", "")
    svc = services()
    with svc.db.session() as s:
        tenant = s.merge(current_tenant())
        user = require_user(s, tenant, username)
        if action in ("require", "unrequire"):
            mfa_admin.require_for_user(s, tenant, user, action == "require", actor())
            what = "required" if action == "require" else "no longer required for this user alone"
            message = f"MFA {what}: {user.username}."
        elif action == "reset":
            removed = mfa_admin.reset_user(s, svc, tenant, user, actor())
            message = f"MFA reset for {user.username}: {removed} method(s) removed."
        else:
            raise DirectoryError("Unknown action.")
    return done(message, url_for(".users"))
