"""The password rules (factors.password_rules) applied to one account of one tenant."""

from __future__ import annotations

from factors.password_rules import MIN_LENGTH, check
from idp.store.models import Tenant


def min_length(tenant: Tenant, has_second_factor: bool) -> int:
    """8 with a second factor; the tenant's setting (15 by default) when the password is the
    only factor."""
    return MIN_LENGTH if has_second_factor else max(MIN_LENGTH, tenant.password_min_alone)


def check_new(
    tenant: Tenant, password: str, *, username: str, email: str, has_second_factor: bool
) -> None:
    """Raise :class:`~factors.errors.WeakSecret` unless ``password`` may be set for this
    account (length, blocklist, and its context words: username, email, tenant)."""
    local = email.partition("@")[0]
    context = (username, email, local, tenant.name, tenant.slug)
    check(password, min_length=min_length(tenant, has_second_factor), context=context)
