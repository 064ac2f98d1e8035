"""The account page's devices section (issue 15; being built)."""

from __future__ import annotations

from idp.account.views import bp

__all__ = ["bp"]
