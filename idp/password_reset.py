"""Forgotten passwords: the emailed reset link, the second factor, then the new password.

(Issue 15; being built.)
"""

from __future__ import annotations

from idp.tenancy import tenant_blueprint

bp = tenant_blueprint("reset", __name__)
