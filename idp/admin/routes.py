"""The console's pages, one module per area; importing this registers them on :data:`bp`."""

from idp.admin import (
    account_settings,
    applications,
    assurance,
    audit,
    keys,
    overview,
    policy,
    users,
)
from idp.admin.console import bp

__all__ = [
    "account_settings",
    "applications",
    "assurance",
    "audit",
    "bp",
    "keys",
    "overview",
    "policy",
    "users",
]
