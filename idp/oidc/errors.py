"""OAuth 2.0 and OpenID Connect errors, as members of Stepwise's one error tree.

Every error the OpenID Provider raises on purpose is an :class:`OAuthError`, a
:class:`~factors.errors.StepwiseError` whose ``code`` is the OAuth ``error`` and whose
``message`` is the ``error_description`` (RFC 6749 5.2). The others are defined beside the code
that raises them: ``AuthorizeError`` and ``NotRedirectable`` (idp.oidc.authorize),
``BearerError`` (idp.oidc.resources), ``InvalidToken`` (idp.oidc.tokens).

Each surface renders them in one handler: the machine endpoints as OAuth JSON
(idp.oidc.endpoints), the browser endpoints as a redirect to the client when
``redirectable``, else a page (idp.oidc.browser).
"""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import OAuth2Error

from factors.errors import StepwiseError
from flows.assurance import Reason

UNMET = "unmet_authentication_requirements"
# The assurance authority's reasons as OpenID Connect errors (Core 3.1.2.6; unmet: OpenID
# Connect Extended Authentication Profile / RFC 9470 usage), one table.
OIDC_ERRORS: dict[Reason, tuple[str, str]] = {
    Reason.NO_SESSION: ("login_required", "The user is not signed in."),
    Reason.USER_INACTIVE: ("login_required", "The user is not signed in."),
    Reason.FRESH_LOGIN: ("login_required", "The user must sign in again."),
    Reason.LEVEL_MISSING: ("interaction_required", "The session does not meet the request."),
    Reason.CONSENT_NEEDED: ("consent_required", "The user has not consented."),
    Reason.UNMET: (UNMET, "The requested level cannot be met."),
}


class OAuthError(StepwiseError):
    """An OAuth error response (RFC 6749 5.2): ``code`` is ``error``, ``description`` the
    ``error_description`` (left out when empty). ``headers`` go on the response as they are
    (for example ``WWW-Authenticate`` for a client that authenticated with Basic, RFC 6749
    5.2); ``extra`` are further body members (``state``, ``error_uri``)."""

    title = "Cannot sign in"

    def __init__(self, description: str = "", *, code: str | None = None,
                 status: int | None = None) -> None:  # fmt: skip
        super().__init__(description or None)
        self.description = description
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers: list[tuple[str, str]] = []
        self.extra: list[tuple[str, str]] = []

    @classmethod
    def from_authlib(cls, exc: OAuth2Error) -> OAuthError:
        """authlib's error with its code, status, body and headers unchanged."""
        status, body, headers = exc()
        err = cls(body.get("error_description", ""), code=body["error"], status=status)
        err.extra = [(k, v) for k, v in body.items() if k not in ("error", "error_description")]
        err.headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        return err

    def body(self) -> dict[str, str]:
        """The JSON body of RFC 6749 5.2."""
        out = {"error": self.code}
        if self.description:
            out["error_description"] = self.description
        out.update(self.extra)
        return out


class LogoutError(OAuthError):
    """An RP-initiated logout request that cannot be honoured (RP-Initiated Logout 1.0
    section 2): shown as a page, never redirected."""

    title = "Cannot sign out"
