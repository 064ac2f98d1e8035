"""The SAML surface's one error handler (installed with ``idp.errors.install``).

An error is answered to the SP only when it is ``redirectable`` and the view has named where
its answer goes (:func:`reply_to`), which it does once the request and the SP's endpoint were
validated: a refused AuthnRequest gets a signed Response with the error's SAML status at the
ACS (profiles 4.1.4.2), a refused LogoutRequest a LogoutResponse at the SingleLogoutService
(profiles 4.4.3.4). Anything else is a page with the error's HTTP status; nothing is ever sent
to an address that was not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flask import g, render_template, request
from flask.typing import ResponseReturnValue

from factors.errors import StepwiseError
from idp import clock
from idp import errors as app_errors
from idp import pending as waiting
from idp.metrics import SAML_RESPONSES
from idp.saml import logout, response
from idp.saml.errors import status_of
from idp.saml.web.bindings import post_form, send_logout
from idp.saml.web.blueprint import entity_id, signer
from idp.services import services
from idp.tenancy import current_tenant, tenant_in

REPLY = "saml_reply"


class Reply(Protocol):
    def answer(self, error: StepwiseError) -> ResponseReturnValue: ...


@dataclass(frozen=True)
class ToAcs:
    """A refused AuthnRequest (or IdP-initiated sign-on): a signed Response carrying only the
    status, no assertion, posted to the validated ACS."""

    sp_name: str
    acs: str
    in_response_to: str | None
    relay_state: str | None
    parked: str = ""  # the request's key while the user signs in, forgotten once answered

    def answer(self, error: StepwiseError) -> ResponseReturnValue:
        status, tenant = status_of(error), current_tenant()
        with services().db.session() as s:
            ours = signer(s, tenant_in(s))
            body = response.failure(
                entity_id(tenant),
                self.acs,
                self.in_response_to,
                ours,
                clock.now(),
                status.top,
                status.second,
                error.message,
            )
        if self.parked:
            waiting.drop("saml", self.parked)
        label = f"{status.top}/{status.second}" if status.second else status.top
        SAML_RESPONSES.labels(tenant.slug, label).inc()
        return post_form(self.acs, body, self.relay_state, self.sp_name)


@dataclass(frozen=True)
class ToSlo:
    """A refused LogoutRequest: a non-success LogoutResponse to the SP's SingleLogoutService
    ``endpoint``; when it has none, a page saying the user is still signed in."""

    sp_name: str
    endpoint: tuple[str, str] | None
    in_response_to: str
    relay_state: str | None

    def answer(self, error: StepwiseError) -> ResponseReturnValue:
        tenant = current_tenant()
        if self.endpoint is None:
            message = f"{self.sp_name} could not sign you out here. You are still signed in."
            page = render_template(
                "errors/error.html", tenant=tenant, title="Still signed in", message=message
            )
            return page, 400
        status = status_of(error)
        xml = logout.build_response(
            entity_id(tenant),
            self.endpoint[1],
            self.in_response_to,
            clock.now(),
            status.top,
            status.second,
        )
        with services().db.session() as s:
            ours = signer(s, tenant_in(s))
        return send_logout(self.endpoint, "SAMLResponse", xml, self.relay_state, ours, self.sp_name)


def reply_to(target: Reply) -> None:
    """From now on in this request, answer a redirectable error to ``target``."""
    g.saml_reply = target


def render(error: StepwiseError) -> ResponseReturnValue:
    """A SAML status to the validated SP endpoint, or a page."""
    target: Reply | None = g.get(REPLY)
    if error.redirectable and target is not None:
        return target.answer(error)
    return page(error)


def page(error: StepwiseError) -> ResponseReturnValue:
    """The app's error page, in the tenant's name."""
    tenant = g.get("tenant")
    if tenant is None or request.accept_mimetypes.best == "application/json":
        return app_errors.page(error)
    html = render_template(
        "errors/error.html", tenant=tenant, title=error.title, message=error.message
    )
    return html, error.status
