"""The sign-out confirmation for an unsigned LogoutRequest, and ``POST /slo/confirm``, the
user's answer. An unsigned request could come from any site, so the user is asked before the
session ends, as OpenID Connect RP-Initiated Logout does without an id_token_hint (section 2)."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Response, make_response, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from idp.errors import HttpError
from idp.saml.errors import SamlError
from idp.saml.sps import find_sp, slo_for
from idp.saml.web.blueprint import bp
from idp.saml.web.errors import ToSlo, reply_to
from idp.saml.web.logout_propagation import start_logout
from idp.security import CSP, form_target_source
from idp.services import services
from idp.store.models import ServiceProvider, Tenant
from idp.tenancy import current_tenant


def ask(
    s: Session, tenant: Tenant, sp: ServiceProvider, initiator: dict[str, Any]
) -> ResponseReturnValue:
    """The confirmation page for ``initiator`` (sp, id, relay), the LogoutRequest of ``sp``."""
    pending = {**initiator, "key": secrets.token_urlsafe(12)}
    session["slo_confirm"] = pending
    page = render_template(
        "login/confirm_sign_out.html",
        tenant=tenant,
        asker=sp.name,
        action=url_for(".slo_confirm", req=pending["key"]),
    )
    return _allow_logout_targets(s, tenant, make_response(page))


def _allow_logout_targets(s: Session, tenant: Tenant, resp: Response) -> Response:
    """Let the confirmation's form lead to every SLO endpoint the logout may go to next:
    ``form-action`` applies to the redirects after a form submission too."""
    sources = set()
    for entry in session.get("saml_sps", []):
        sp = find_sp(s, tenant, entry["sp"])
        for response_leg in (False, True):
            endpoint = slo_for(sp, response_leg) if sp is not None else None
            source = form_target_source(endpoint[1]) if endpoint is not None else None
            if source is not None:
                sources.add(source)
    if sources:
        resp.headers["Content-Security-Policy"] = CSP.replace(
            "form-action 'self'", "form-action 'self' " + " ".join(sorted(sources))
        )
    return resp


@bp.post("/slo/confirm")
def slo_confirm() -> ResponseReturnValue:
    """The user's answer: sign out (Single Logout goes on as for a signed request), or stay
    signed in (the SP gets a non-success LogoutResponse)."""
    pending = session.get("slo_confirm")
    given = request.args.get("req", "").encode()
    if not pending or not hmac.compare_digest(pending["key"].encode(), given):
        raise HttpError("This sign-out request has expired. Go back and try again.")
    session.pop("slo_confirm", None)
    tenant = current_tenant()
    with services().db.session() as s:
        sp = find_sp(s, tenant, pending["sp"])
        if sp is None:
            raise SamlError("This service provider is no longer registered.")
        reply_to(ToSlo(sp.name, slo_for(sp, response=True), pending["id"], pending["relay"]))
        if not any(e["sp"] == sp.entity_id for e in session.get("saml_sps", [])):
            raise SamlError("This service provider has no session here.")
        if request.form.get("action") != "logout":
            raise SamlError("You stayed signed in.", "declined")
        return start_logout(s, tenant, pending)
