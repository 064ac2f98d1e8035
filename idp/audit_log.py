"""The audit log, read and pruned: filters, keyset pages, export rows and retention.

No Flask here: the console (idp.admin.audit), the admin API (idp.admin.api.audit) and the
``idp audit`` command all use this module, so a filter means the same thing everywhere and an
exported row has the same columns in a download, an API export and the CLI's output.

- Newest first, by id: ids are handed out in insertion order, which is time order, and the
  primary key makes every page one indexed range read (keyset pagination, never an OFFSET).
- Times are whole seconds since the epoch in the database and ISO 8601 UTC on the way out;
  filter times are read as UTC.
- Usernames are resolved once per page or batch with one ``IN`` query; a user deleted since
  shows as ``#<id>``.
- Details never hold secrets (idp.directory.audit's callers pass names, ids and counts); they
  are exported as they are stored.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, false, or_, select
from sqlalchemy.orm import Session

from flows.steps import normalize_username
from idp.directory import Actor, DirectoryError, audit
from idp.store.db import Database
from idp.store.models import AuditEvent, Tenant, User

DAY = 86400
MAX_TEXT = 200  # longest filter value accepted
# At least 90 days: an admin may shorten the log, but not erase the recent past (what they
# just did included); owners keep it longer as their policy asks.
RETENTION_DEFAULT, RETENTION_MIN, RETENTION_MAX = 365, 90, 3650
EXPORT_BATCH = 500  # rows read per query while exporting
PRUNE_BATCH = 1000  # rows deleted per statement while pruning
RESULTS = ("success", "failure")
COLUMNS = (
    "id",
    "time",
    "event",
    "result",
    "subject_id",
    "subject",
    "actor_id",
    "actor",
    "actor_client",
    "ip",
    "details",
)
FILTER_KEYS = ("from", "to", "user", "actor", "event", "result")
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # never in a name; PostgreSQL refuses NUL
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_MINUTE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}([Zz]|[+-]\d{2}:?\d{2})?")


class FilterError(DirectoryError):
    """A filter that cannot be read (the console shows it, the API answers 400, the CLI
    exits 2)."""


@dataclass(frozen=True)
class Filters:
    """What to show. ``since`` is inclusive, ``until`` exclusive (seconds since the epoch);
    ``event`` ending in "." or "*" is a prefix (``mfa.``), else an exact name."""

    since: int | None = None
    until: int | None = None
    user: str = ""  # the subject: a username, or #<id>
    actor: str = ""  # a username, #<id>, an API client id, or "operator"
    event: str = ""
    result: str = ""  # "", "success" or "failure"


def parse_time(name: str, text: str, *, end: bool, now: int, ago: bool = False) -> int | None:
    """A filter time: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM`` (an HTML datetime-local input) or
    an ISO 8601 / RFC 3339 date-time with seconds, fractions and an offset; UTC unless an
    offset says otherwise. With ``ago``, also a number of seconds before ``now``.

    An end time covers its whole day, minute or second (``to`` a date includes that day), so
    it is returned as the exclusive bound just after it."""
    text = text.strip()
    if not text:
        return None
    if ago and text.isascii() and text.isdigit():
        if len(text) > 12:
            raise FilterError(f"{name}: too many seconds")
        return max(0, now - int(text))
    step, when = 0, None
    if len(text) <= 40 and text.isascii():
        try:
            if _DATE.fullmatch(text):
                step, when = DAY, datetime.fromisoformat(text + "T00:00")
            elif _DATETIME.match(text):
                step = 60 if _MINUTE.fullmatch(text) else 1
                when = datetime.fromisoformat(re.sub("[Zz]$", "+00:00", text))
        except ValueError:
            step = 0
    if not step or when is None:
        also = " or a number of seconds ago" if ago else ""
        raise FilterError(f"{name}: not a date (YYYY-MM-DD) or a UTC time (YYYY-MM-DDTHH:MM){also}")
    start = int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())
    return start + step if end else start


def _text(name: str, value: str) -> str:
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise FilterError(f"{name}: at most {MAX_TEXT} characters")
    if CONTROL.search(value):
        raise FilterError(f"{name}: control characters are not allowed")
    return value


def parse_filters(
    values: Mapping[str, str], now: int, *, ago: bool = False, empty_range: bool = False
) -> Filters:
    """Filters from text (a query string, the API's parameters, the CLI's options), keyed
    by :data:`FILTER_KEYS`; unknown keys are ignored. Raises :class:`FilterError`; a range
    that ends before it starts too, unless ``empty_range`` (then it matches nothing)."""
    got = {key: _text(key, values.get(key) or "") for key in FILTER_KEYS}
    since = parse_time("from", got["from"], end=False, now=now, ago=ago)
    until = parse_time("to", got["to"], end=True, now=now, ago=ago)
    if since is not None and until is not None and since >= until and not empty_range:
        raise FilterError("from must be before to")
    result = got["result"].lower()
    if result not in ("", *RESULTS):
        raise FilterError("result: success or failure")
    return Filters(since, until, got["user"], got["actor"], got["event"], result)


def _user_ids(s: Session, tenant_id: int, who: str) -> int | None:
    """The id ``who`` names in this tenant: ``#<id>`` or a username (None: nobody)."""
    if who.startswith("#") and who[1:].isascii() and who[1:].isdigit() and len(who) < 19:
        return int(who[1:])
    return s.scalar(
        select(User.id).where(
            User.tenant_id == tenant_id, User.username_norm == normalize_username(who)
        )
    )


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def conditions(s: Session, tenant_id: int, f: Filters) -> list[ColumnElement[bool]]:
    """The WHERE clause of ``f`` for one tenant (a name nobody has matches nothing)."""
    where: list[ColumnElement[bool]] = [AuditEvent.tenant_id == tenant_id]
    if f.since is not None:
        where.append(AuditEvent.at >= f.since)
    if f.until is not None:
        where.append(AuditEvent.at < f.until)
    if f.result:
        where.append(AuditEvent.result == f.result)
    if f.event:
        if f.event.endswith((".", "*")):
            where.append(AuditEvent.event.like(_like_prefix(f.event.rstrip("*")), escape="\\"))
        else:
            where.append(AuditEvent.event == f.event)
    if f.user:
        subject = _user_ids(s, tenant_id, f.user)
        where.append(false() if subject is None else AuditEvent.subject_id == subject)
    if f.actor:
        if f.actor.lower() == "operator":
            where.append(and_(AuditEvent.actor_id.is_(None), AuditEvent.actor_client.is_(None)))
        else:
            by = _user_ids(s, tenant_id, f.actor)
            where.append(
                AuditEvent.actor_id == by if by is not None else AuditEvent.actor_client == f.actor
            )
    return where


def page(
    s: Session, tenant_id: int, f: Filters, *, before: int | None = None, limit: int = 50
) -> tuple[list[AuditEvent], int | None]:
    """One page, newest first, of events older than id ``before``; and the ``before`` of
    the next page (None on the last)."""
    stmt = select(AuditEvent).where(*conditions(s, tenant_id, f))
    if before is not None:
        stmt = stmt.where(AuditEvent.id < before)
    rows = list(s.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def event_names(s: Session, tenant_id: int) -> list[str]:
    """The event names present in the tenant's log (for the console's event filter)."""
    return list(
        s.scalars(
            select(AuditEvent.event)
            .where(AuditEvent.tenant_id == tenant_id)
            .distinct()
            .order_by(AuditEvent.event)
        )
    )


def usernames(s: Session, tenant_id: int, events: Iterable[AuditEvent]) -> dict[int, str]:
    """The usernames of the subjects and actors of ``events``, in one query."""
    ids = {i for e in events for i in (e.subject_id, e.actor_id) if i is not None}
    if not ids:
        return {}
    rows = s.execute(
        select(User.id, User.username).where(User.tenant_id == tenant_id, User.id.in_(ids))
    )
    return {uid: name for uid, name in rows}


def iso(at: int) -> str:
    """Seconds since the epoch as ISO 8601 UTC, e.g. ``2025-01-31T09:15:00Z``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def name_of(user_id: int | None, names: Mapping[int, str]) -> str | None:
    if user_id is None:
        return None
    return names.get(user_id, f"#{user_id}")


def actor_label(e: AuditEvent, names: Mapping[int, str]) -> str:
    """Who acted: an admin's (or the user's own) username, ``API client <id>``, "operator"
    (the ``idp`` command: no request, no IP), "system" (the server on its own, e.g. pruning)
    or "anonymous" (a request with nobody signed in, e.g. a failed sign-in)."""
    if e.actor_id is not None:
        return names.get(e.actor_id, f"#{e.actor_id}")
    if e.actor_client:
        return f"API client {e.actor_client}"
    if (e.details or {}).get("by") == "server":
        return "system"
    return "operator" if e.ip is None else "anonymous"


@dataclass(frozen=True)
class Recent:
    """An event as a user's page lists it; ``actor`` as :func:`actor_label` names it."""

    at: int
    event: str
    result: str
    actor: str
    actor_client: str | None
    ip: str | None
    details: dict[str, Any]


def recent(s: Session, tenant_id: int, user_id: int, limit: int = 20) -> list[Recent]:
    """The last ``limit`` events about or by one user, newest first."""
    events = list(
        s.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.tenant_id == tenant_id,
                or_(AuditEvent.subject_id == user_id, AuditEvent.actor_id == user_id),
            )
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        )
    )
    names = usernames(s, tenant_id, events)
    return [Recent(e.at, e.event, e.result, actor_label(e, names), e.actor_client, e.ip,
                   dict(e.details or {})) for e in events]  # fmt: skip


def row(e: AuditEvent, names: Mapping[int, str]) -> dict[str, Any]:
    """An exported row, keyed by :data:`COLUMNS`."""
    return {
        "id": e.id,
        "time": iso(e.at),
        "event": e.event,
        "result": e.result,
        "subject_id": e.subject_id,
        "subject": name_of(e.subject_id, names),
        "actor_id": e.actor_id,
        "actor": actor_label(e, names),
        "actor_client": e.actor_client,
        "ip": e.ip,
        "details": e.details or {},
    }


def compact(details: Mapping[str, Any]) -> str:
    """Details for a table cell: ``key=value`` pairs."""
    return ", ".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
        for k, v in sorted(details.items())
    )


def safe_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP "CSV Injection"): text
    starting with ``= + - @``, a tab or a carriage return gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_line(values: Iterable[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([safe_cell(v) for v in values])
    return out.getvalue()


def format_row(r: Mapping[str, Any], fmt: str) -> str:
    """One exported line: CSV (RFC 4180) or JSON Lines."""
    if fmt == "csv":
        details = json.dumps(r["details"], separators=(",", ":"), sort_keys=True)
        return csv_line([*(r[c] for c in COLUMNS[:-1]), details])
    return json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n"


def rows(
    db: Database, tenant_id: int, f: Filters, *, batch: int = EXPORT_BATCH
) -> Iterator[dict[str, Any]]:
    """Every matching event, newest first, read ``batch`` rows at a time by keyset; each
    batch is its own short read transaction, so a slow download holds no transaction."""
    before: int | None = None
    while True:
        with db.session() as s:
            events, before = page(s, tenant_id, f, before=before, limit=batch)
            names = usernames(s, tenant_id, events)
            out = [row(e, names) for e in events]
        yield from out
        if before is None:
            return


def export(db: Database, tenant_id: int, f: Filters, fmt: str) -> Iterator[str]:
    """The export of ``f`` as text chunks: CSV with a header row, or JSON Lines."""
    if fmt not in FORMATS:
        raise FilterError("format: csv or jsonl")
    if fmt == "csv":
        yield csv_line(COLUMNS)
    for r in rows(db, tenant_id, f):
        yield format_row(r, fmt)


def filename(tenant: str, now: int, fmt: str) -> str:
    return f"audit-{tenant}-{iso(now)[:10]}.{fmt}"


def set_retention(s: Session, tenant: Tenant, days: int, actor: Actor) -> None:
    """Keep the tenant's audit events ``days`` days (then :func:`prune` deletes them)."""
    if isinstance(days, bool) or not RETENTION_MIN <= days <= RETENTION_MAX:
        raise DirectoryError(
            f"Retention must be a whole number of days from {RETENTION_MIN} to {RETENTION_MAX}."
        )
    before = tenant.audit_retention_days
    tenant.audit_retention_days = days
    if before != days:
        audit(s, tenant, "audit.retention_changed", actor=actor.user_id, ip=actor.ip,
              before=before, after=days, **actor.details())  # fmt: skip


def retention_of(tenant: Tenant) -> int:
    """The days the tenant's events are kept: its setting, never below the floor (a value
    stored before the floor existed, or by hand, does not shorten it)."""
    return max(tenant.audit_retention_days, RETENTION_MIN)


def prune(s: Session, tenant: Tenant, now: int, *, limit: int | None = None, by: str) -> int:
    """Delete the tenant's events older than its retention, :data:`PRUNE_BATCH` rows per
    statement and at most ``limit`` rows in all; audit the count (``audit.pruned``, by
    "operator" or "server"). Safe to run in several processes at once: each statement
    deletes whatever is still there."""
    cutoff = now - retention_of(tenant) * DAY
    total = 0
    while limit is None or total < limit:
        size = PRUNE_BATCH if limit is None else min(PRUNE_BATCH, limit - total)
        ids = select(AuditEvent.id).where(AuditEvent.tenant_id == tenant.id, AuditEvent.at < cutoff)
        doomed = list(s.scalars(ids.order_by(AuditEvent.id).limit(size)))
        if not doomed:
            break
        done = s.execute(delete(AuditEvent).where(AuditEvent.id.in_(doomed)))
        total += int(getattr(done, "rowcount", 0) or 0)
        if len(doomed) < size:
            break
    if total:
        audit(s, tenant, "audit.pruned", count=total, before=iso(cutoff),
              retention_days=retention_of(tenant), by=by)  # fmt: skip
    return total
