"""``idp audit``: export and prune a tenant's audit log."""

from __future__ import annotations

import click


@click.group("audit")
def audit() -> None:
    """Read and prune tenants' audit logs."""
