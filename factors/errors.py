"""The root of Stepwise's error tree, and the typed errors raised by factors.

A failed verification raises; it never returns False. Every error Stepwise raises on purpose
derives from :class:`StepwiseError` (DESIGN.md "Errors"); the web layer renders it in one
handler per surface (``idp.errors``).
"""


class StepwiseError(Exception):
    """An error that knows how each protocol shows it.

    - ``message``: safe to show to the user or the client;
    - ``code``: the protocol code (an OAuth ``error``, the key of the SAML status table, the
      admin API's problem type);
    - ``status``: the HTTP status of a page or JSON answer;
    - ``redirectable``: whether it may be sent back to the client, to its redirect URI or an
      SP's ACS (node-oidc-provider's ``allow_redirect``). Only errors raised after the client
      and its return address were validated may be.
    """

    code = "invalid_request"
    status = 400
    redirectable = False
    title = "Bad request"
    message = "The request could not be handled."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message:
            self.message = message


class FactorError(StepwiseError):
    """Base class of every factor error."""

    title = "Cannot sign in"


class InvalidCredentials(FactorError):
    """The secret presented (password, code, assertion) did not verify."""


class InvalidCode(InvalidCredentials):
    """A one-time code did not verify, was already used, or has expired."""


class DeliveryFailed(FactorError):
    """A code could not be handed to the SMS or email provider."""


class WeakSecret(FactorError):
    """A new secret (for example a password) does not meet the rules for one."""
