"""``GET /idp-init``: IdP-initiated single sign-on (SAML 2.0 profiles 4.1.5), an unsolicited
Response to the SP's default ACS after whatever sign-in the SP's minimum level needs."""

from __future__ import annotations

import secrets

from flask import request
from flask.typing import ResponseReturnValue

from idp import clock
from idp.saml.authn import AuthnRequest
from idp.saml.errors import SamlError
from idp.saml.sps import acs_for, find_sp
from idp.saml.web.blueprint import bp
from idp.saml.web.single_sign_on import proceed, relay_state, save
from idp.services import services
from idp.tenancy import current_tenant


@bp.get("/idp-init")
def idp_initiated() -> ResponseReturnValue:
    """Sign in to the SP named by ``sp`` (its entityID), with an optional ``RelayState``."""
    tenant = current_tenant()
    relay = relay_state(request.args.get("RelayState"))
    with services().db.session() as s:
        sp = find_sp(s, tenant, request.args.get("sp", ""))
        if sp is None:
            raise SamlError("This service provider is not registered here.")
        req = AuthnRequest(
            id="",
            issuer=sp.entity_id,
            issue_instant=clock.now(),
            relay_state=relay,
            binding="idp",
            key=secrets.token_urlsafe(18),
        )
        save(req)
        return proceed(s, tenant, sp, req, acs_for(sp, None, None), after_login=False)
