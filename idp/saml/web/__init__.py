"""The SAML surface of a tenant, ``/t/<tenant>/saml``: one blueprint, one error handler.

- ``GET /metadata``: the IdP's signed metadata (:mod:`.metadata`);
- ``/sso`` and ``/resume``: SP-initiated single sign-on (:mod:`.single_sign_on`);
- ``GET /idp-init``: IdP-initiated single sign-on (:mod:`.idp_initiated`);
- ``/slo``: an SP's LogoutRequest or LogoutResponse (:mod:`.single_logout`), and the sign-out
  across the session's SPs it starts, as ``POST /logout`` does from the account page
  (:mod:`.logout_propagation`);
- ``POST /slo/confirm``: the user's answer to an unsigned LogoutRequest (:mod:`.signout_confirm`).

Every error is rendered by :func:`.errors.render`: a SAML status to the SP once its request
and endpoint were validated, else a page. Only this package imports Flask in ``idp.saml``.
"""

from idp.errors import install
from idp.saml.web import idp_initiated, metadata, signout_confirm
from idp.saml.web.blueprint import bp
from idp.saml.web.errors import render
from idp.saml.web.logout_propagation import idp_logout
from idp.saml.web.single_logout import slo
from idp.saml.web.single_sign_on import sso

install(bp, render)

# sso and slo take cross-site POSTs from SPs: the app factory exempts them from CSRF.
__all__ = ["bp", "idp_initiated", "idp_logout", "metadata", "signout_confirm", "slo", "sso"]
