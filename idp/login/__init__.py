"""The login pages: they show the current flow step and post answers to it."""

from idp.login.views import bp

__all__ = ["bp"]
