"""The tenant console: MFA policy, and each user's MFA (require for one user, reset).

Open to the tenant's admins and owners only; every change is audited (idp.mfa.admin).
"""

from __future__ import annotations

from flask import flash, get_flashed_messages, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from flows.policy import SECOND_FACTORS
from idp.directory import Actor, DirectoryError, require_user
from idp.errors import StepwiseError, install, page
from idp.login.guard import reauthenticate, reauthenticated, require_signed_in
from idp.mfa import admin as mfa_admin
from idp.mfa import credentials
from idp.saml import keys as saml_keys
from idp.saml.sps import add_sp, list_sps
from idp.services import services
from idp.store.models import User
from idp.tenancy import current_tenant, tenant_blueprint
from idp.untrusted import ascii_int

bp = tenant_blueprint("admin", __name__, "/admin")
ADMIN_ROLES = ("admin", "owner")


def _render(exc: StepwiseError) -> ResponseReturnValue:
    """The console surface: a refused change (DirectoryError; Forbidden too, since only owners
    change an owner) is rolled back with the transaction and shown on the console; any other
    error is the app's page."""
    if isinstance(exc, DirectoryError):
        flash(exc.message, "error")
        return redirect(url_for(".console"))
    return page(exc)


install(bp, _render)


@bp.before_request
def _guard() -> Response | None:
    """Admins and owners only; every write needs re-authentication at the admin's own level
    within the window (DESIGN.md "Sensitive actions"), then the form is sent again."""
    refused = require_signed_in(ADMIN_ROLES)
    if refused is None and request.method == "POST" and not reauthenticated():
        flash("Sign in again to confirm it's you, then repeat the change.", "error")
        return reauthenticate(url_for(".console"))
    return refused


def _actor() -> Actor:
    return Actor(user_id=int(current_user.get_id()), ip=request.remote_addr)


@bp.get("/")
def console() -> ResponseReturnValue:
    tenant = current_tenant()
    with services().db.session() as s:
        users = list(s.scalars(select(User).where(User.tenant_id == tenant.id)
                               .order_by(User.username_norm)))  # fmt: skip
        rows = [(u, len(credentials.enrolled(u))) for u in users]
        return render_template(
            "admin/console.html",
            service_providers=list_sps(s, tenant),
            metadata_url=url_for("saml.metadata"),
            tenant=tenant,
            policy=mfa_admin.policy_json(tenant),
            factors=SECOND_FACTORS,
            deliverable=services().deliverable,
            rows=rows,
            notices=get_flashed_messages(category_filter=["ok"]),
            errors=get_flashed_messages(category_filter=["error"]),
        )


@bp.post("/policy")
def policy() -> ResponseReturnValue:
    form = request.form
    changes = {
        "mode": form.get("mode", ""),
        "scope": form.get("scope", ""),
        "apply": form.get("apply", ""),
        "factors": form.getlist("factors"),
        **{flag: form.get(flag) == "on" for flag in mfa_admin.FLAGS},
    }
    raw_days = form.get("reoffer_days", "").strip()
    with services().db.session() as s:
        tenant = s.merge(current_tenant())
        days = ascii_int(raw_days, 3)
        if days is None:
            raise DirectoryError("reoffer_days must be a whole number from 0 to 365")
        changes["reoffer_days"] = days
        mfa_admin.set_policy(s, tenant, changes, _actor())
    flash("The MFA policy was saved.", "ok")
    return redirect(url_for(".console"))


@bp.post("/sps")
def add_service_provider() -> ResponseReturnValue:
    """Register a SAML service provider from pasted metadata (like ``idp sp add``)."""
    metadata = request.form.get("metadata", "").strip()
    svc = services()
    with svc.db.session() as s:
        tenant = s.merge(current_tenant())
        if not metadata:
            raise DirectoryError("Paste the service provider's SAML metadata.")
        saml_keys.ensure_key(s, svc.cipher, tenant)
        sp = add_sp(
            s,
            tenant,
            metadata.encode(),
            nameid=request.form.get("nameid", "persistent"),
            sign_response=request.form.get("sign_response") == "on",
            encrypt=request.form.get("encrypt") == "on",
            min_level=_level(request.form.get("min_level", "0")),
        )
        flash(f"Service provider {sp.entity_id} added.", "ok")
    return redirect(url_for(".console"))


def _level(raw: str) -> int:
    if raw not in ("0", "1", "2", "3"):
        raise DirectoryError("The minimum level must be 0, 1, 2 or 3.")
    return int(raw)


@bp.post("/users/<username>/mfa")
def user_mfa(username: str) -> ResponseReturnValue:
    action = request.form.get("action", "")
    svc = services()
    with svc.db.session() as s:
        tenant = s.merge(current_tenant())
        user = require_user(s, tenant, username)
        if action in ("require", "unrequire"):
            mfa_admin.require_for_user(s, tenant, user, action == "require", _actor())
            done = "required" if action == "require" else "no longer required for this user alone"
            message = f"MFA {done}: {user.username}."
        elif action == "reset":
            removed = mfa_admin.reset_user(s, svc, tenant, user, _actor())
            message = f"MFA reset for {user.username}: {removed} method(s) removed."
        else:
            raise DirectoryError("Unknown action.")
    flash(message, "ok")
    return redirect(url_for(".console"))
