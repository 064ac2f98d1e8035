"""The signed-in user's own pages: security (views), password, profile, devices."""

from idp.account import devices, password, profile  # noqa: F401  # their routes join bp
from idp.account.views import bp

__all__ = ["bp"]
