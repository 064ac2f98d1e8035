"""``idp audit``: export and prune a tenant's audit log.

The rows are idp.audit_log's, exactly as the console and the admin API export them. A bad
option is a user error: one line on stderr, exit status 2 (idp.cli.main).
"""

from __future__ import annotations

import os
import sys

import click

from idp import audit_log, clock, directory
from idp.app import build_services
from idp.services import Services
from idp.settings import load


def _services() -> Services:
    return build_services(load())


@click.group("audit")
def audit() -> None:
    """Read and prune tenants' audit logs."""


@audit.command("export")
@click.argument("tenant")
@click.option("--since", default="", help="UTC date or time (YYYY-MM-DD[THH:MM[:SS]]), "
              "or a number of seconds ago")  # fmt: skip
@click.option("--until", default="", help="same forms as --since; a date includes its day")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv",
              show_default=True)  # fmt: skip
@click.option("--event", default="", help='an event name, or a prefix ending in "." (mfa.)')
@click.option("--result", type=click.Choice(audit_log.RESULTS), help="success or failure only")
@click.option("--user", default="", help="the subject: a username or #id")
@click.option("--actor", default="", help='an admin username or #id, a client id, "operator"')
def export(
    tenant: str,
    since: str,
    until: str,
    fmt: str,
    event: str,
    result: str | None,
    user: str,
    actor: str,
) -> None:
    """Write TENANT's audit events, newest first, to stdout as CSV or JSON Lines."""
    values = {"from": since, "to": until, "event": event, "result": result or ""}
    values |= {"user": user, "actor": actor}
    f = audit_log.parse_filters(values, clock.now(), ago=True)
    svc = _services()
    with svc.db.session() as s:
        tenant_id = directory.require_tenant(s, tenant).id
    out = sys.stdout
    try:
        for chunk in audit_log.export(svc.db, tenant_id, f, fmt):
            out.write(chunk)
        out.flush()
    except BrokenPipeError:  # e.g. piped into head: stop quietly (Python's signal docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        sys.exit(1)


@audit.command("prune")
@click.argument("tenant", required=False)
def prune(tenant: str | None) -> None:
    """Delete events older than each tenant's retention (all tenants without TENANT)."""
    svc = _services()
    now = clock.now()
    with svc.db.session() as s:
        tenants = [directory.require_tenant(s, tenant)] if tenant else directory.list_tenants(s)
        slugs = [t.slug for t in tenants]
    for slug in slugs:
        with svc.db.session() as s:  # one transaction per tenant
            t = directory.require_tenant(s, slug)
            count = audit_log.prune(s, t, now, by="operator")
            days = audit_log.retention_of(t)
        click.echo(f"{slug}: {count} events deleted (older than {days} days)")
