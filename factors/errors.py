"""Typed errors raised by factors. A failed verification raises; it never returns False."""


class FactorError(Exception):
    """Base class of every factor error."""


class InvalidCredentials(FactorError):
    """The secret presented (password, code, assertion) did not verify."""


class InvalidCode(InvalidCredentials):
    """A one-time code did not verify, was already used, or has expired."""


class DeliveryFailed(FactorError):
    """A code could not be handed to the SMS or email provider."""


class WeakSecret(FactorError):
    """A new secret (for example a password) does not meet the rules for one."""
