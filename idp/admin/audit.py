"""Console: the audit log (filters, keyset pages, streamed CSV and JSON Lines export, the
retention setting).

Filters, pages and rows come from idp.audit_log, shared with the admin API and ``idp audit``.
The server's pruning is in idp.audit_pruning.
"""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, render_template, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue

from idp import audit_log, clock
from idp.admin.console import actor, back_to, bp, done
from idp.directory import DirectoryError
from idp.services import Services, services
from idp.store.models import Tenant
from idp.tenancy import current_tenant, tenant_in
from idp.untrusted import ascii_int, row_id

PAGE_SIZE = 50
SERVER_PRUNE_LIMIT = 10_000
HOUR = 3600


def _filter_args() -> dict[str, str]:
    """The filters of this request, as sent (for links that keep them)."""
    return {k: request.args[k] for k in audit_log.FILTER_KEYS if request.args.get(k)}


def _filters() -> audit_log.Filters:
    return audit_log.parse_filters(_filter_args(), clock.now())


def _page(error: str | None = None, status: int = 200) -> ResponseReturnValue:
    tenant = current_tenant()
    events: list[Any] = []
    names: dict[int, str] = {}
    older = None
    before = row_id(request.args.get("before", ""))
    with services().db.session() as s:
        if error is None:
            try:
                f = _filters()
                events, older = audit_log.page(s, tenant.id, f, before=before, limit=PAGE_SIZE)
                names = audit_log.usernames(s, tenant.id, events)
            except audit_log.FilterError as exc:
                error, status = exc.message, 400
        event_names = audit_log.event_names(s, tenant.id)
    return render_template(
        "admin/audit.html",
        events=events,
        names=names,
        actor_label=audit_log.actor_label,
        name_of=audit_log.name_of,
        iso=audit_log.iso,
        compact=audit_log.compact,
        event_names=event_names,
        args=_filter_args(),
        older=older,
        paged=before is not None,
        error=error,
        retention=tenant.audit_retention_days,
        retention_range=(audit_log.RETENTION_MIN, audit_log.RETENTION_MAX),
    ), status


@bp.get("/audit", endpoint="audit_log")
def audit_log_page() -> ResponseReturnValue:
    return _page()


@bp.get("/audit/export")
def audit_export() -> ResponseReturnValue:
    """The page's events (same filters) as CSV or JSON Lines, streamed in keyset batches."""
    fmt = request.args.get("format", "csv")
    if fmt not in audit_log.FORMATS:
        return _page("format: csv or jsonl", 400)
    try:
        f = _filters()
    except audit_log.FilterError as exc:
        return _page(exc.message, 400)
    return export_response(services(), current_tenant(), f, fmt)


def export_response(svc: Services, tenant: Tenant, f: audit_log.Filters, fmt: str) -> Response:
    """A streamed download of the tenant's events matching ``f`` (the console and the API)."""
    chunks = audit_log.export(svc.db, tenant.id, f, fmt)
    resp = Response(stream_with_context(chunks), mimetype=audit_log.FORMATS[fmt].split(";")[0])
    resp.headers["Content-Type"] = audit_log.FORMATS[fmt]
    name = audit_log.filename(tenant.slug, clock.now(), fmt)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/audit/retention")
def audit_retention_form() -> ResponseReturnValue:
    """The retention form is on the audit page (re-authentication comes back here)."""
    return redirect(url_for(".audit_log") + "#retention", 303)


@bp.post("/audit/retention")
def audit_retention() -> ResponseReturnValue:
    back_to(url_for(".audit_log") + "#retention")
    days = ascii_int(request.form.get("retention_days", "").strip(), 4)
    if days is None:
        raise DirectoryError(
            f"Retention must be a whole number of days from {audit_log.RETENTION_MIN} "
            f"to {audit_log.RETENTION_MAX}."
        )
    with services().db.session() as s:
        audit_log.set_retention(s, tenant_in(s), days, actor())
    return done(f"Audit events are now kept {days} days.", url_for(".audit_log"))
