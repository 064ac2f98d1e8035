"""Admin API: the audit log (the console's audit page): events with the page's filters,
their streamed export, and the retention setting."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from sqlalchemy import select

from idp import audit_log, clock
from idp.admin.api.core import Body, Call, Query, operation, page_of, paginate
from idp.admin.audit import export_response
from idp.store.models import AuditEvent

FORMATS = [{"format": "date"}, {"format": "date-time"}]
# A date, an RFC 3339 date-time, or the console's YYYY-MM-DDTHH:MM (idp.audit_log.parse_time).
Time = Annotated[
    str,
    StringConstraints(max_length=40),
    WithJsonSchema({"type": "string", "maxLength": 40, "anyOf": FORMATS}),
]
NAME = r"^[^\x00-\x1f\x7f]*$"  # no control characters


class AuditFilters(BaseModel):
    """The console's filters. Times are UTC unless they carry an offset: ``YYYY-MM-DD``,
    ``YYYY-MM-DDTHH:MM`` or an RFC 3339 date-time; ``to`` includes the day, minute or second
    it names. A range that ends before it starts matches nothing."""

    model_config = ConfigDict(extra="forbid")
    since: Time | None = Field(None, alias="from", description="from this time")
    to: Time | None = Field(None, description="up to this time")
    user: str | None = Field(
        None,
        max_length=audit_log.MAX_TEXT,
        pattern=NAME,
        description="the subject: username or #id",
    )
    actor: str | None = Field(
        None,
        max_length=audit_log.MAX_TEXT,
        pattern=NAME,
        description='an admin\'s username or #id, an API client id, or "operator"',
    )
    event: str | None = Field(
        None,
        max_length=audit_log.MAX_TEXT,
        pattern=NAME,
        description='an event name, or a prefix ending in "." (mfa.)',
    )
    result: Literal["success", "failure"] | None = None

    def filters(self) -> audit_log.Filters:
        values = {
            "from": self.since or "",
            "to": self.to or "",
            "user": self.user or "",
            "actor": self.actor or "",
            "event": self.event or "",
            "result": self.result or "",
        }
        return audit_log.parse_filters(values, clock.now(), empty_range=True)


class AuditQuery(AuditFilters, Query):
    """Filters, then a cursor and a page size."""


class ExportQuery(AuditFilters):
    format: Literal["csv", "jsonl"] = "csv"


class AuditItem(BaseModel):
    """One event, as exported (``time`` is ISO 8601 UTC)."""

    id: int
    time: str
    event: str
    result: str
    subject_id: int | None
    subject: str | None
    actor_id: int | None
    actor: str
    actor_client: str | None
    ip: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditItem]
    next_cursor: str | None


class Retention(BaseModel):
    retention_days: int = Field(ge=audit_log.RETENTION_MIN, le=audit_log.RETENTION_MAX)


class RetentionChange(Body):
    retention_days: int = Field(ge=audit_log.RETENTION_MIN, le=audit_log.RETENTION_MAX)


@operation("GET", "/audit", summary="List audit events, newest first", tag="audit",
           query=AuditQuery, response=AuditPage)  # fmt: skip
def list_audit(call: Call, query: AuditQuery) -> dict[str, Any]:
    where = audit_log.conditions(call.s, call.tenant.id, query.filters())
    rows, cursor = paginate(
        call.s, select(AuditEvent).where(*where), AuditEvent.id, query, descending=True
    )
    names = audit_log.usernames(call.s, call.tenant.id, rows)
    return page_of(rows, cursor, lambda e: AuditItem.model_validate(audit_log.row(e, names)))


@operation("GET", "/audit/export", summary="Export audit events (CSV or JSON Lines, streamed)",
           tag="audit", query=ExportQuery)  # fmt: skip
def export_audit(call: Call, query: ExportQuery) -> Response:
    return export_response(call.svc, call.tenant, query.filters(), query.format)


@operation("GET", "/audit/settings", summary="Read the audit retention", tag="audit",
           response=Retention)  # fmt: skip
def get_audit_settings(call: Call) -> Retention:
    return Retention(retention_days=call.tenant.audit_retention_days)


@operation("PATCH", "/audit/settings", summary="Change the audit retention", tag="audit",
           body=RetentionChange, response=Retention)  # fmt: skip
def patch_audit_settings(call: Call, body: RetentionChange) -> Retention:
    audit_log.set_retention(call.s, call.tenant, body.retention_days, call.actor)
    return Retention(retention_days=call.tenant.audit_retention_days)
