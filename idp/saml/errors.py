"""SAML errors, members of Stepwise's one error tree, and the one table of SAML statuses.

Each error's ``code`` is a key of :data:`STATUSES`, which gives the top-level and second-level
StatusCode an SP is answered with (SAML 2.0 core 3.2.2.2) and the StatusMessage when the
error names none. The assurance authority's reasons (``flows.assurance.Reason``) are keys
too, so a request that may not interact (IsPassive) or cannot be met is answered from the
same table.

A SAML error is ``redirectable``: once the request and its ACS or SingleLogoutService were
validated, the SAML surface answers it to that endpoint (``idp.saml.web.errors``); before
that, it is shown as a page with its HTTP ``status``.
"""

from __future__ import annotations

from dataclasses import dataclass

from factors.errors import StepwiseError
from flows.assurance import Reason

STATUS = "urn:oasis:names:tc:SAML:2.0:status:"
UNMET_CONTEXT = "The requested authentication context cannot be met."


@dataclass(frozen=True)
class Status:
    """A SAML status (core 3.2.2): StatusCode, an optional nested StatusCode, the message."""

    top: str
    second: str | None
    message: str


STATUSES: dict[str, Status] = {
    "invalid_request": Status("Requester", None, "The SAML request could not be handled."),
    "version_mismatch": Status("VersionMismatch", None, "Only SAML 2.0 requests."),
    "request_denied": Status("Requester", "RequestDenied", "The request is refused."),
    "no_authn_context": Status("Responder", "NoAuthnContext", UNMET_CONTEXT),
    "declined": Status("Responder", None, "The user declined."),
    "server_error": Status("Responder", None, "An unexpected error occurred."),
    # The assurance authority's reasons, for a request that may not interact or cannot be met.
    Reason.NO_SESSION: Status("Responder", "NoPassive", "The user would have to sign in."),
    Reason.USER_INACTIVE: Status("Requester", "RequestDenied", "This account cannot sign in."),
    Reason.FRESH_LOGIN: Status("Responder", "NoPassive", "The user would have to sign in."),
    Reason.LEVEL_MISSING: Status("Responder", "NoPassive", "The user would have to sign in."),
    Reason.CONSENT_NEEDED: Status("Responder", "NoPassive", "The user would have to consent."),
    Reason.UNMET: Status("Responder", "NoAuthnContext", UNMET_CONTEXT),
}


def status_of(error: StepwiseError) -> Status:
    """The SAML status to answer ``error`` with; an error of no SAML code is ours (Responder)."""
    return STATUSES.get(error.code, STATUSES["server_error"])


class SamlError(StepwiseError):
    """A SAML message we refuse; ``code`` is its row in :data:`STATUSES`."""

    code = "invalid_request"
    status = 400
    redirectable = True
    title = "Cannot sign in"

    def __init__(self, message: str | None = None, code: str | None = None) -> None:
        if code is not None:
            if code not in STATUSES:
                raise ValueError(f"no SAML status for {code!r}")
            self.code = code
        super().__init__(message or STATUSES[self.code].message)


class XmlError(SamlError):
    """Not an XML document we accept (``idp.saml.xml``); the message says why."""


class SignatureInvalid(SamlError):
    """A request that must be signed is not, or its signature does not verify (core 5)."""

    code = "request_denied"


class Unsatisfiable(SamlError):
    """The RequestedAuthnContext names no class we know, or asks for what no level can be
    (core 3.3.2.2.1)."""

    code = "no_authn_context"


class WrongSubject(SamlError):
    """A LogoutRequest for someone other than this browser's user: shown, never answered."""

    redirectable = False
