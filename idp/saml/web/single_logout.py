"""``/slo``: Single Logout messages from SPs (SAML 2.0 profiles 4.4; core 3.7), over
HTTP-Redirect or HTTP-POST. A LogoutRequest starts the sign-out across the session's SPs
(``.logout_propagation``); a LogoutResponse is an SP's answer to ours, and it goes on.

A LogoutRequest we refuse once its SP is known gets a non-success LogoutResponse (``.errors``).
"""

from __future__ import annotations

from flask import session
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from idp import clock
from idp.saml import logout
from idp.saml.authn import decode
from idp.saml.errors import SamlError, WrongSubject
from idp.saml.query import RedirectQuery
from idp.saml.signatures import verify_post, verify_redirect
from idp.saml.sps import find_sp, slo_for
from idp.saml.web.bindings import Incoming, incoming
from idp.saml.web.blueprint import bp, saml_url, skew
from idp.saml.web.errors import ToSlo, reply_to
from idp.saml.web.logout_propagation import continue_logout, start_logout
from idp.saml.web.signout_confirm import ask
from idp.services import services
from idp.store.models import ServiceProvider, Tenant
from idp.tenancy import current_tenant

REPLAY_TTL = 3600


@bp.route("/slo", methods=["GET", "POST"])
def slo() -> ResponseReturnValue:
    """A LogoutRequest from an SP (start), or a LogoutResponse from one we asked (continue)."""
    message = incoming(".slo")
    if not isinstance(message, Incoming):
        return message
    source, tenant = message.source, current_tenant()
    with services().db.session() as s:
        if "SAMLRequest" in source:
            return _logout_request(s, tenant, message)
        if "SAMLResponse" in source:
            answer = logout.parse_response(decode(source["SAMLResponse"], message.redirected))
            state = session.get("slo")
            if state is None or answer.in_response_to != state.get("waiting"):
                raise SamlError("This logout response does not belong to a logout.")
            return continue_logout(s, tenant)
    raise SamlError("The request has no SAMLRequest or SAMLResponse.")


def _logout_request(s: Session, tenant: Tenant, message: Incoming) -> ResponseReturnValue:
    """An SP's LogoutRequest (SAML 2.0 profiles 4.4.3). Signed, it starts Single Logout; an
    unsigned one (only from an SP without signing certificates) first asks the user."""
    xml = decode(message.source["SAMLRequest"], deflated=message.redirected)
    req = logout.parse_request(xml)
    sp = find_sp(s, tenant, req.issuer)
    if sp is None:
        raise SamlError("This service provider is not registered here.")
    relay = message.source.get("RelayState")
    reply_to(ToSlo(sp.name, slo_for(sp, response=True), req.id, relay))
    req, signed = _verified(sp, req, xml, message.query)
    here = saml_url(tenant, "/slo")
    logout.check_request(req, here, clock.now(), skew(), signed)
    if not services().store.add(f"saml:logout:{sp.id}:{req.id}", b"1", REPLAY_TTL):
        raise SamlError("This logout request was already used.")
    mine = next((e for e in session.get("saml_sps", []) if e["sp"] == sp.entity_id), None)
    if mine is None:
        # This SP has no assertion in this browser's session: nothing of ours to end for it
        # (and no way for any SP to sign out a session it is not in).
        raise SamlError("This service provider has no session here.")
    if req.name_id not in (None, mine["name_id"]):
        raise WrongSubject("This logout request is for someone else.")
    initiator = {"sp": sp.entity_id, "id": req.id, "relay": relay}
    if not signed:
        return ask(s, tenant, sp, initiator)
    return start_logout(s, tenant, initiator)


def _verified(
    sp: ServiceProvider, req: logout.LogoutRequest, xml: bytes, query: RedirectQuery | None
) -> tuple[logout.LogoutRequest, bool]:
    """The LogoutRequest as signed, and whether it was. A signature is required when the SP's
    metadata has a signing certificate (or says it signs), and checked whenever one is sent:
    over HTTP-Redirect on the query it was read from, over HTTP-POST by reading the request
    again from the signed element (SAML bindings 3.4.4.1, 3.5.4; profiles 4.4.3.1)."""
    required = bool(sp.signing_certs) or sp.authn_requests_signed
    if query is not None:
        if not required and query.get("Signature") is None:
            return req, False
        verify_redirect(query, sp.signing_certs)
        return req, True
    if not required and b"SignatureValue" not in xml:
        return req, False
    signed = logout.parse_request(verify_post(xml, sp.signing_certs))
    if signed.issuer != sp.entity_id:
        raise SamlError("The signed logout request names another issuer.")
    return signed, True
