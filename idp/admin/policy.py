"""Console: the tenant's MFA policy."""

from __future__ import annotations

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue

from flows.policy import SECOND_FACTORS
from idp.admin.console import actor, back_to, bp, done
from idp.directory import DirectoryError
from idp.mfa import admin as mfa_admin
from idp.services import services
from idp.tenancy import current_tenant, tenant_in
from idp.untrusted import ascii_int


@bp.get("/policy")
def policy_page() -> ResponseReturnValue:
    return render_template(
        "admin/policy.html",
        policy=mfa_admin.policy_json(current_tenant()),
        factors=SECOND_FACTORS,
        deliverable=services().deliverable,
    )


@bp.post("/policy")
def policy() -> ResponseReturnValue:
    back_to(url_for(".policy_page"))
    form = request.form
    changes = {
        "mode": form.get("mode", ""),
        "scope": form.get("scope", ""),
        "apply": form.get("apply", ""),
        "factors": form.getlist("factors"),
        **{flag: form.get(flag) == "on" for flag in mfa_admin.FLAGS},
    }
    with services().db.session() as s:
        tenant = tenant_in(s)
        days = ascii_int(form.get("reoffer_days", "").strip(), 3)
        if days is None:
            raise DirectoryError("reoffer_days must be a whole number from 0 to 365")
        changes["reoffer_days"] = days
        mfa_admin.set_policy(s, tenant, changes, actor())
    return done("The MFA policy was saved.", url_for(".policy_page"))
