"""SAML bindings at the HTTP layer (SAML 2.0 bindings 3.4 and 3.5): reading a message from an
HTTP-Redirect query or an HTTP-POST form, and sending one as an auto-submitting form or a
signed redirect."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from flask import make_response, redirect, render_template, request
from flask.typing import ResponseReturnValue

from idp.crosssite import bounce, bounced
from idp.saml import logout
from idp.saml.errors import SamlError
from idp.saml.metadata import REDIRECT
from idp.saml.query import RedirectQuery, parse_query
from idp.saml.signatures import Signer
from idp.security import allow_form_target
from idp.tenancy import current_tenant

FIELDS = ("SAMLRequest", "SAMLResponse", "RelayState")


@dataclass(frozen=True)
class Incoming:
    """A SAML message's fields and, when it came by HTTP-Redirect, the query they were read
    from: its signature, if any, is checked over exactly these fields (bindings 3.4.4.1)."""

    source: Mapping[str, str]
    query: RedirectQuery | None = None

    @property
    def redirected(self) -> bool:
        return self.query is not None


def incoming(endpoint: str) -> Incoming | ResponseReturnValue:
    """The SAML message of this request. An HTTP-POST message is first bounced to a same-site
    GET (``idp.crosssite``): then the answer is that redirect. A parameter sent twice is
    refused (SamlError), never read one way and verified another."""
    if request.method == "POST":
        if any(len(request.form.getlist(k)) > 1 for k in FIELDS):
            raise SamlError("The request carries a SAML parameter more than once.")
        return bounce(
            endpoint, {k: request.form.getlist(k)[:1] for k in FIELDS if k in request.form}
        )
    parked = bounced()
    if parked is None:
        query = parse_query(request.query_string)
        return Incoming(query.values(), query)
    if not parked:
        raise SamlError("This request has expired. Go back to the application and retry.")
    return Incoming({k: v[0] for k, v in parked.items() if v})


def post_form(
    location: str, body: bytes, relay_state: str | None, sp_name: str, param: str = "SAMLResponse"
) -> ResponseReturnValue:
    """HTTP-POST binding: an auto-submitting form to ``location`` (SAML bindings 3.5.4)."""
    params = [(param, base64.b64encode(body).decode())]
    if relay_state is not None:
        params.append(("RelayState", relay_state))
    page = render_template(
        "oidc/form_post.html",
        tenant=current_tenant(),
        redirect_uri=location,
        params=params,
        client_name=sp_name,
    )
    return allow_form_target(make_response(page), location)


def send_logout(
    endpoint: tuple[str, str],
    param: str,
    xml: bytes,
    relay: str | None,
    signer: Signer,
    sp_name: str,
) -> ResponseReturnValue:
    """A LogoutRequest or LogoutResponse to an SP's SingleLogoutService ``(binding,
    location)``: a signed HTTP-Redirect (bindings 3.4.4.1), or a signed message posted."""
    binding, location = endpoint
    if binding == REDIRECT:
        return redirect(logout.redirect_url(location, param, xml, relay, signer.key_pem))
    body = logout.signed(xml, signer.key_pem, signer.cert_pem)
    return post_form(location, body, relay, sp_name, param)
