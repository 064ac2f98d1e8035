"""Admin API: MFA adoption (the console's overview)."""

from __future__ import annotations
