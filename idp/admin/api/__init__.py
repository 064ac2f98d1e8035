"""The JSON admin API (``/t/{tenant}/admin/api/``): one module per area, and its OpenAPI
document. Importing this package registers every operation on :data:`bp`."""

from idp.admin.api import (
    account_settings,
    adoption,
    applications,
    assurance,
    audit,
    keys,
    openapi,
    policy,
    users,
)
from idp.admin.api.core import bp

__all__ = [
    "account_settings",
    "adoption",
    "applications",
    "assurance",
    "audit",
    "bp",
    "keys",
    "openapi",
    "policy",
    "users",
]
