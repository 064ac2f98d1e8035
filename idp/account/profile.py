"""The account page's profile section (issue 15; being built)."""

from __future__ import annotations

from idp.account.views import bp

__all__ = ["bp"]
