"""Typed errors of the flow engine; the web layer renders them in one place."""

from factors.errors import StepwiseError


class FlowError(StepwiseError):
    """Base class of every flow error. ``message`` is safe to show to the user."""

    title = "Cannot sign in"
    message = "The sign-in could not continue."


class FlowNotFound(FlowError):
    """The flow expired, was finished, or belongs to another browser session."""

    message = "This sign-in has expired. Please start again."


class Throttled(FlowError):
    """Too many attempts; the caller must wait ``retry_after`` seconds. ``scope`` names the
    limit that refused: ``account`` (its back-off gate, or another attempt on it in progress)
    or ``ip`` (the per-IP limit), for the web layer's metrics."""

    def __init__(self, retry_after: int, scope: str = "account") -> None:
        self.retry_after = max(1, retry_after)
        self.scope = scope
        super().__init__(f"Too many attempts. Try again in {self.retry_after} seconds.")


class AccountLocked(FlowError):
    """Too many consecutive failures: only an administrator can unlock (NIST SP 800-63B 5.2.2)."""

    message = "Too many failed attempts. Ask your administrator to unlock the account."


class UnmetAuthenticationRequirements(FlowError):
    """The required level cannot be reached with the steps available to this user.

    Mirrors OpenID Connect's ``unmet_authentication_requirements`` error.
    """

    code, status = "unmet_authentication_requirements", 403

    message = "This sign-in needs a stronger method than this account can use."


class NoUsableFactor(FlowError):
    """The user holds second factors, but none can be verified here now (an SMS or email
    sender was removed). Never answered with an enrolment: only an admin can help."""

    title = "Ask your administrator"
    message = (
        "Your second sign-in step cannot be used right now, and a new one can only be set up "
        "after it. Contact your administrator."
    )
