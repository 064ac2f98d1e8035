"""A tenant's own acr rows: the one operation the CLI, the console and the admin API use to
add and remove them (idp.oidc.acr holds the table itself; this module writes it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy.orm import Session

from idp.directory import Actor, Conflict, DirectoryError, audit
from idp.oidc.acr import LEVELS, VALUE_RE
from idp.store.models import Tenant

MAX_TENANT_VALUES = 50  # a tenant's own rows; discovery lists them all


def check_entry(value: object, level: object) -> None:
    """Raise :class:`DirectoryError` unless ``value`` may be added at ``level``: a value as
    ``acr_values`` carries it (printable, no spaces, quotes or backslashes, at most 200
    characters), not a built-in value, and a level from 1 to 3."""
    if not isinstance(value, str) or not VALUE_RE.match(value):
        raise DirectoryError(
            "an acr value is 1 to 200 printable characters without spaces, quotes or backslashes"
        )
    if value in LEVELS:
        raise Conflict(f"{value!r} is a default value with a fixed level")
    if type(level) is not int or not 1 <= level <= 3:
        raise DirectoryError("the level must be 1, 2 or 3")


def change_table(
    s: Session,
    tenant: Tenant,
    actor: Actor,
    *,
    add: Mapping[str, int] | None = None,
    remove: Iterable[str] = (),
) -> dict[str, int]:
    """Add (or re-level) and remove the tenant's own acr values; audited as
    ``tenant.acr_levels_changed``. Returns the tenant's own rows afterwards."""
    own = dict(tenant.acr_levels or {})
    added = dict(add or {})
    for value, level in added.items():
        check_entry(value, level)
        own[value] = level
    removed = list(remove)
    for value in removed:
        if own.pop(value, None) is None:
            raise DirectoryError(f"{value!r} was not added to tenant {tenant.slug!r}")
    if len(own) > MAX_TENANT_VALUES:
        raise Conflict(f"a tenant can add at most {MAX_TENANT_VALUES} acr values")
    if added or removed:
        tenant.acr_levels = own
        audit(s, tenant, "tenant.acr_levels_changed", actor=actor.user_id, ip=actor.ip,
              added=[f"{v}={n}" for v, n in added.items()], removed=removed,
              **actor.details())  # fmt: skip
    return own
