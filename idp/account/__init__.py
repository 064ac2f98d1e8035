"""The signed-in user's own security page."""

from idp.account.views import bp

__all__ = ["bp"]
