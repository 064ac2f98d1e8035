"""Console: Overview, MFA adoption at a glance (idp.adoption; issue 14).

The figures are queried on every visit; the charts are SVG drawn here (idp.admin.charts),
each followed by a table of the same figures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from flask import render_template, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from werkzeug.routing import BuildError

from factors import backup
from idp import adoption
from idp.admin.charts import Bar, bar_chart, column_chart
from idp.admin.console import bp
from idp.clock import now
from idp.services import services
from idp.tenancy import current_tenant

day_iso = adoption.day_iso

TICK_EVERY = 15  # days between the enrolment chart's date labels


def day_label(start: int) -> str:
    d = datetime.fromtimestamp(start, UTC)
    return f"{d.day} {d:%b}"


def user_url(username: str) -> str:
    """The console page of ``username`` (the users area's)."""
    for endpoint in ("admin.user_page", "admin.user"):
        try:
            return url_for(endpoint, username=username)
        except BuildError:
            continue
    return url_for("admin.users") + "/" + quote(username, safe="")


def _users(n: int) -> str:
    return f"{n} user" if n == 1 else f"{n} users"


def charts(a: adoption.Adoption) -> dict[str, Markup]:
    s = a.states
    by_state = bar_chart(
        "chart-states",
        "Users by MFA state",
        f"Of {_users(s.total)}: "
        + ", ".join(f"{adoption.STATE_LABELS[k]}: {v}" for k, v in s.items())
        + ".",
        [Bar(adoption.STATE_LABELS[k], v, f"{_users(v)}: {adoption.STATE_LABELS[k]}")
         for k, v in s.items()],
    )  # fmt: skip
    by_kind = bar_chart(
        "chart-kinds",
        "Users by kind of second factor",
        "; ".join(f"{k.label}: {_users(k.users)}" for k in a.kinds) + ".",
        [Bar(k.label, k.users, f"{_users(k.users)} with {k.label.lower()}") for k in a.kinds],
    )
    days = a.enrolments
    total = sum(d.added for d in days)
    busiest = max(days, key=lambda d: d.added)
    summary = f"{total} second factors added from {day_iso(days[0].start)} to " + day_iso(
        days[-1].start
    )
    if total:
        summary += f"; the busiest day was {day_iso(busiest.start)} with {busiest.added}"
    per_day = column_chart(
        "chart-enrolments",
        f"Second factors added per day, last {adoption.WINDOW_DAYS} days",
        summary + ".",
        [Bar(day_label(d.start), d.added,
             f"{day_iso(d.start)}: {d.added} factor{'' if d.added == 1 else 's'} added")
         for d in days],
        ticks=[*range(0, len(days), TICK_EVERY), len(days) - 1],
    )  # fmt: skip
    return {"states": by_state, "kinds": by_kind, "enrolments": per_day}


@bp.get("/")
def console() -> ResponseReturnValue:
    tenant = current_tenant()
    with services().db.session() as s:
        figures = adoption.adoption(s, tenant, now())
    return render_template(
        "admin/overview.html",
        a=figures,
        charts=charts(figures),
        labels=adoption.STATE_LABELS,
        user_url=user_url,
        day_iso=day_iso,
        low=backup.LOW_WARNING,
        policy=tenant,
    )
