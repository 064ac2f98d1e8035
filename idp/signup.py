"""Self-service sign-up (a tenant setting, off by default).

(Issue 15; being built.)
"""

from __future__ import annotations

from idp.tenancy import tenant_blueprint

bp = tenant_blueprint("signup", __name__)
