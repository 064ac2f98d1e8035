"""Console: the audit log (filters, keyset pages, streamed CSV and JSON Lines export, the
retention setting), and the server's pruning of old events.

Filters, pages and rows come from idp.audit_log, shared with the admin API and ``idp audit``.

**Pruning by the server.** After a response under ``/t/<tenant>/`` has been sent
(``Response.call_on_close``, so the request never waits for it), the server deletes that
tenant's expired events, at most :data:`SERVER_PRUNE_LIMIT` rows in bounded batches. It runs
at most once per tenant per hour in the whole deployment: each process remembers the hour it
last tried (no store call on other requests), and the ephemeral store's atomic ``add`` of a
key naming the tenant and the hour lets only one process of several (Redis) take that hour.
Errors are logged, never raised. A tenant writing more than the limit per hour also needs
``idp audit prune`` from cron. A thread was not chosen: it would need its own schedule, app
context and shutdown in every worker process, for no gain over this.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from flask import Response, g, redirect, render_template, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue

from idp import audit_log, clock
from idp.admin.console import actor, back_to, bp, done
from idp.directory import DirectoryError
from idp.ephemeral import EphemeralUnavailable
from idp.services import Services, services
from idp.store.models import Tenant
from idp.tenancy import current_tenant
from idp.untrusted import ascii_int

log = logging.getLogger("idp.audit")
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
    before = ascii_int(request.args.get("before", ""), 18)
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
        audit_log.set_retention(s, s.merge(current_tenant()), days, actor())
    return done(f"Audit events are now kept {days} days.", url_for(".audit_log"))


@bp.after_app_request
def _prune_after(resp: Response) -> Response:
    """Prune the request's tenant after the response is sent, once an hour (module doc)."""
    tenant = g.get("tenant")
    if not isinstance(tenant, Tenant):
        return resp
    svc = services()
    now = clock.now()
    hour = now // HOUR
    tried: dict[int, int] = svc.cached("audit_prune_hours", dict)
    if tried.get(tenant.id) == hour:
        return resp
    tried[tenant.id] = hour
    try:
        mine = svc.store.add(f"audit-prune:{tenant.id}:{hour}", b"1", 2 * HOUR)
    except EphemeralUnavailable:
        log.warning("audit prune skipped: the ephemeral store is unavailable")
        return resp
    if mine:
        resp.call_on_close(partial(prune_now, svc, tenant.id, now))
    return resp


def prune_now(svc: Services, tenant_id: int, now: int) -> int:
    """The server's bounded prune of one tenant; errors are logged, never raised."""
    token = clock.bind(svc.clock)  # after the response: no app context any more
    try:
        with svc.db.session() as s:
            tenant = s.get(Tenant, tenant_id)
            if tenant is None:
                return 0
            count = audit_log.prune(s, tenant, now, limit=SERVER_PRUNE_LIMIT, by="server")
        if count:
            log.info("audit: pruned %d events of tenant %s", count, tenant_id)
        return count
    except Exception:
        log.exception("audit prune of tenant %s failed", tenant_id)
        return 0
    finally:
        clock.unbind(token)
