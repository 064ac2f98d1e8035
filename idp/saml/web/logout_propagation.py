"""Single Logout across the session's SPs (SAML 2.0 profiles 4.4.3.3): ask each SP in turn
with a LogoutRequest, end the session (``idp.signout.sign_out``), then answer the SP that
asked with a LogoutResponse. ``POST /logout`` starts it from the account page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import render_template, session
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from idp import clock
from idp.saml import logout
from idp.saml.sps import find_sp, slo_for
from idp.saml.web.bindings import send_logout
from idp.saml.web.blueprint import bp, entity_id, signer
from idp.services import services
from idp.signout import sign_out
from idp.store.models import ServiceProvider, Tenant
from idp.tenancy import current_tenant


def start_logout(s: Session, tenant: Tenant, initiator: Mapping[str, Any]) -> ResponseReturnValue:
    """Single Logout for ``initiator`` (sp, id, relay): the session's other SPs, then the
    session itself, then the LogoutResponse."""
    session["slo"] = {
        "initiator": {"sp": initiator["sp"], "id": initiator["id"], "relay": initiator["relay"]},
        "pending": [e["sp"] for e in session.get("saml_sps", []) if e["sp"] != initiator["sp"]],
    }
    return continue_logout(s, tenant)


@bp.post("/logout")
def idp_logout() -> ResponseReturnValue:
    """IdP-initiated Single Logout from the account page: every SP of the session, then us."""
    session["slo"] = {"initiator": None, "pending": [e["sp"] for e in session.get("saml_sps", [])]}
    with services().db.session() as s:
        return continue_logout(s, current_tenant())


def continue_logout(s: Session, tenant: Tenant) -> ResponseReturnValue:
    """Ask the next SP of the session to log out, or finish: end the session and answer."""
    state = dict(session.get("slo") or {})
    pending = list(state.get("pending", []))
    ours = signer(s, s.get_one(Tenant, tenant.id))
    entries = {e["sp"]: e for e in session.get("saml_sps", [])}
    while pending:
        sp = find_sp(s, tenant, pending.pop(0))
        endpoint = slo_for(sp, response=False) if sp is not None else None
        if sp is None or endpoint is None or sp.entity_id not in entries:
            continue  # no front-channel logout endpoint: nothing to ask
        entry = entries[sp.entity_id]
        request_id, xml = logout.build_request(
            entity_id(tenant),
            endpoint[1],
            entry["name_id"],
            entry["format"],
            sp.entity_id,
            session.get("saml_index", ""),
            clock.now(),
        )
        session["slo"] = {**state, "pending": pending, "waiting": request_id}
        return send_logout(endpoint, "SAMLRequest", xml, None, ours, sp.name)
    initiator = state.get("initiator")
    sign_out(s, tenant, "saml_slo")
    if initiator is None:
        return render_template("login/signed_out.html", tenant=tenant)
    sp = find_sp(s, tenant, initiator["sp"])
    if sp is None:
        return render_template("login/signed_out.html", tenant=tenant)
    return _answer(s, tenant, sp, initiator["id"], initiator.get("relay"))


def _answer(
    s: Session, tenant: Tenant, sp: ServiceProvider, request_id: str, relay: str | None
) -> ResponseReturnValue:
    """The Success LogoutResponse to the SP that asked (its SingleLogoutService)."""
    endpoint = slo_for(sp, response=True)
    if endpoint is None:
        return render_template("login/signed_out.html", tenant=tenant)
    xml = logout.build_response(entity_id(tenant), endpoint[1], request_id, clock.now())
    return send_logout(
        endpoint, "SAMLResponse", xml, relay, signer(s, s.get_one(Tenant, tenant.id)), sp.name
    )
