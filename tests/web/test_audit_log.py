"""The audit log (issue 14): the console page's filters and keyset pages, the streamed CSV and
JSON Lines exports, the acting admin or API client of each action, retention and pruning by
the server, and the admin API's audit endpoints."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from idp import audit_log, directory
from idp.oidc import keys
from idp.store.models import AuditEvent, User
from testkit.html import csrf_of
from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser
from tests.web.test_mfa_policy import admin_token

DAY = 86400
ROW = re.compile(r'<tr id="event-(\d+)">\s*<td><time[^>]*>[^<]*</time></td>\s*<td>([^<]*)</td>')


def seed(app: Flask, event: str, *, tenant: str = "acme", at: int | None = None,
         subject: str | None = None, actor: str | None = None, **fields: Any) -> int:  # fmt: skip
    """One event written as idp.directory.audit writes it, with a chosen time."""
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, tenant)
        ids = {
            "subject_id": directory.require_user(s, t, subject).id if subject else None,
            "actor_id": directory.require_user(s, t, actor).id if actor else None,
        }
        row = AuditEvent(tenant_id=t.id, event=event, at=at or int(time.time()),
                         result=fields.pop("result", "success"), details=fields.pop("details", {}),
                         **ids, **fields)  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def shown(client: FlaskClient, **params: str) -> list[tuple[int, str]]:
    resp = client.get("/t/acme/admin/audit", query_string=params)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [(int(i), e) for i, e in ROW.findall(resp.get_data(as_text=True))]


def names(client: FlaskClient, **params: str) -> set[str]:
    return {e for _, e in shown(client, **params)}


def admin(mb: MfaBrowser) -> None:
    mb.password("olivia", PASSWORD)
    assert mb.finished


@pytest.fixture
def day0() -> int:
    """Midnight UTC three days ago: seeded events sit on days 0, 1 and 2 (never old enough
    to be pruned)."""
    return (int(time.time()) // DAY - 3) * DAY


def test_each_filter_narrows_the_page(
    app: Flask, client: FlaskClient, mb: MfaBrowser, day0: int
) -> None:
    seed(app, "login.failed", at=day0 + 3600, subject="alice", ip="10.0.0.1", result="failure")
    seed(app, "mfa.code_failed", at=day0 + DAY + 60, subject="alice", result="failure")
    seed(app, "user.disabled", at=day0 + DAY + 120, subject="alice", actor="olivia", ip="::1")
    seed(app, "tenant.mfa_policy_changed", at=day0 + 2 * DAY + 5, actor_client="ops-client",
         details={"by_client": "ops-client"})  # fmt: skip
    seed(app, "mfa.enrolled", at=day0 + 2 * DAY + 10, subject="olivia", actor="olivia")
    admin(mb)
    d = [audit_log.iso(day0 + n * DAY)[:10] for n in range(3)]

    assert {"login.failed", "mfa.code_failed"} <= names(client, result="failure")
    assert "user.disabled" not in names(client, result="failure")
    alices = {"user.created", "login.failed", "mfa.code_failed", "user.disabled"}
    assert names(client, user="alice") == alices
    assert names(client, user="#999999") == set()
    assert names(client, user="nobody") == set()
    assert names(client, actor="olivia", event="user.disabled") == {"user.disabled"}
    assert "login.failed" not in names(client, actor="olivia")
    assert names(client, actor="ops-client") == {"tenant.mfa_policy_changed"}
    assert "login.failed" in names(client, actor="operator")
    assert names(client, event="mfa.") >= {"mfa.code_failed", "mfa.enrolled"}
    assert "login.failed" not in names(client, event="mfa.")
    assert names(client, event="mfa.code_failed") == {"mfa.code_failed"}
    assert names(client, event="mfa_") == set()  # "_" is no wildcard
    # Dates: "from" a day includes it, "to" a day includes all of it; datetime-local minutes.
    assert names(client, **{"from": d[0], "to": d[0]}) == {"login.failed"}
    assert names(client, **{"from": d[1], "to": d[1]}) == {"mfa.code_failed", "user.disabled"}
    assert names(client, **{"from": d[1] + "T00:02", "to": d[1] + "T00:02"}) == {"user.disabled"}
    assert names(client, **{"from": d[1], "to": d[1] + "T00:01"}) == {"mfa.code_failed"}
    both = names(client, **{"from": d[0], "to": d[1], "user": "alice", "result": "success"})
    assert both == {"user.disabled"}
    # The columns: the subject's and actor's usernames, the client, the IP, compact details.
    page = client.get("/t/acme/admin/audit", query_string={"user": "alice"}).get_data(True)
    assert "<td>alice</td>" in page and "<td>olivia</td>" in page and "<td>10.0.0.1</td>" in page
    page = client.get("/t/acme/admin/audit", query_string={"actor": "ops-client"}).get_data(True)
    assert "<td>API client ops-client</td>" in page and "by_client=ops-client" in page
    assert 'id="utc-note"' in page and "UTC" in page
    events = client.get("/t/acme/admin/audit").get_data(as_text=True)
    assert '<option value="mfa.code_failed">' in events  # the tenant's distinct event names


def test_a_deleted_user_shows_as_their_id(app: Flask, client: FlaskClient, mb: MfaBrowser) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        gone = directory.create_user(s, svc(app).passwords, t, "gone", "g@acme.test", "member")
        gone_id = gone.id
    seed(app, "login.failed", subject="gone", result="failure")
    with svc(app).db.session() as s:
        s.delete(s.get(User, gone_id))
    admin(mb)
    page = client.get("/t/acme/admin/audit", query_string={"user": f"#{gone_id}"})
    assert f"<td>#{gone_id}</td>" in page.get_data(as_text=True)


def test_pages_are_keyset_pages_newest_first(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    ids = [seed(app, "test.bulk", at=int(time.time()) - 100 + n // 10) for n in range(120)]
    admin(mb)
    seen: list[int] = []
    params: dict[str, str] = {"event": "test.bulk"}
    pages = 0
    while True:
        resp = client.get("/t/acme/admin/audit", query_string=params).get_data(as_text=True)
        seen += [int(i) for i, _ in ROW.findall(resp)]
        pages += 1
        older = re.search(r'href="([^"]+)" id="older"', resp)
        if not older:
            break
        assert "event=test.bulk" in older.group(1)  # the filters are kept
        params = {"event": "test.bulk", "before": re.findall(r"before=(\d+)", older.group(1))[0]}
    assert pages == 3
    assert seen == sorted(ids, reverse=True)


def test_console_and_api_actions_show_their_actor(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    admin(mb)
    page = client.get("/t/acme/admin/audit").get_data(as_text=True)
    resp = client.post("/t/acme/admin/audit/retention",
                       data={"csrf_token": csrf_of(page), "retention_days": "90"})  # fmt: skip
    assert resp.status_code == 303
    api = client.patch("/t/acme/admin/api/audit/settings", json={"retention_days": 120},
                       headers=bearer)  # fmt: skip
    assert api.status_code == 200 and api.get_json() == {"retention_days": 120}
    changed = client.get("/t/acme/admin/api/audit", headers=bearer,
                         query_string={"event": "audit.retention_changed"}).get_json()  # fmt: skip
    by_api, by_console = changed["items"]
    assert by_console["actor"] == "olivia" and by_console["actor_id"] is not None
    assert by_console["details"] == {"before": 365, "after": 90}
    assert by_api["actor"].startswith("API client ") and by_api["actor_client"]
    assert by_api["actor_id"] is None and by_api["details"]["after"] == 120
    listed = client.get("/t/acme/admin/audit", query_string={"event": "audit.retention_changed"})
    html = listed.get_data(as_text=True)
    assert "<td>olivia</td>" in html and f"<td>API client {by_api['actor_client']}</td>" in html
    assert client.get("/t/acme/admin/api/audit/settings", headers=bearer).get_json() == {
        "retention_days": 120
    }
    # Filter by the client id too.
    assert names(client, actor=by_api["actor_client"]) == {"audit.retention_changed"}


def _download(client: FlaskClient, url: str, **params: str) -> tuple[Any, str]:
    resp = client.get(url, query_string=params, headers=params.pop("headers", None) or {})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.is_streamed  # a generator, not a body built in memory
    return resp, resp.get_data(as_text=True)


def test_csv_and_jsonl_exports_keep_the_filters_and_match_the_page(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    for n in range(7):
        seed(app, "login.failed", subject="alice", ip=f"10.0.0.{n}", result="failure")
    seed(app, "user.disabled", subject="alice", actor="olivia")
    admin(mb)
    page_ids = [i for i, _ in shown(client, user="alice", result="failure")]
    assert len(page_ids) == 7

    resp, text = _download(client, "/t/acme/admin/audit/export", format="csv", user="alice",
                           result="failure")  # fmt: skip
    today = audit_log.iso(int(time.time()))[:10]
    assert resp.headers["Content-Disposition"] == f'attachment; filename="audit-acme-{today}.csv"'
    assert resp.mimetype == "text/csv"
    table = list(csv.reader(io.StringIO(text)))
    assert tuple(table[0]) == audit_log.COLUMNS
    assert [int(r[0]) for r in table[1:]] == page_ids
    for r in table[1:]:
        rec = dict(zip(audit_log.COLUMNS, r, strict=True))
        assert rec["event"] == "login.failed" and rec["result"] == "failure"
        assert rec["subject"] == "alice" and rec["actor"] == "anonymous"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["time"])
        assert json.loads(rec["details"]) == {}

    resp, text = _download(client, "/t/acme/admin/audit/export", format="jsonl", user="alice",
                           result="failure")  # fmt: skip
    assert resp.headers["Content-Disposition"].endswith(f'audit-acme-{today}.jsonl"')
    lines = [json.loads(line) for line in text.splitlines()]
    assert [r["id"] for r in lines] == page_ids
    assert all(list(r) == list(audit_log.COLUMNS) for r in lines)
    assert {r["ip"] for r in lines} == {f"10.0.0.{n}" for n in range(7)}

    # The API's export: the same rows for the same filters.
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    same = {"format": "jsonl", "user": "alice", "result": "failure"}
    api = client.get("/t/acme/admin/api/audit/export", headers=bearer, query_string=same)
    assert api.status_code == 200 and api.is_streamed
    assert [json.loads(x)["id"] for x in api.get_data(as_text=True).splitlines()] == page_ids


def test_an_export_reads_in_batches_across_many_rows(app: Flask, tenant: str) -> None:
    for _ in range(3):
        seed(app, "test.bulk")
    with svc(app).db.session() as s:
        tenant_id = directory.require_tenant(s, "acme").id
    got = list(audit_log.rows(svc(app).db, tenant_id, audit_log.Filters(event="test."), batch=2))
    assert len(got) == 3 and got == sorted(got, key=lambda r: -r["id"])


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    seed(app, "=HYPERLINK(\"http://evil\")", ip="+1", actor_client="-2+3",
         details={"note": "@SUM(A1)"})  # fmt: skip
    admin(mb)
    _, text = _download(client, "/t/acme/admin/audit/export", format="csv",
                        event='=HYPERLINK("http://evil")')  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(text)))
    (row,) = rows
    assert row["event"] == '\'=HYPERLINK("http://evil")'
    assert row["ip"] == "'+1" and row["actor_client"] == "'-2+3"
    assert row["actor"] == "API client -2+3"  # starts with "A": left as it is
    assert json.loads(row["details"]) == {"note": "@SUM(A1)"}  # JSON starts with "{"
    for cell in ("=1", "+1", "-1", "@x", "\tx", "\rx"):
        assert audit_log.safe_cell(cell) == "'" + cell
    assert audit_log.safe_cell("a=1") == "a=1" and audit_log.safe_cell(None) == ""


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "yesterday"}, "from: not a date"),
        ({"to": "2024-02-30"}, "to: not a date"),
        ({"from": "2024-03-01T10:00:99"}, "from: not a date"),
        ({"to": "2024-03-01T10:00+99:00"}, "to: not a date"),
        ({"user": "x" * 5000}, "user: at most 200 characters"),
        ({"event": "a\x01b"}, "event: control characters"),
        ({"result": "maybe"}, "result: success or failure"),
    ],
)
def test_bad_filters_are_a_message_not_an_error(
    app: Flask, client: FlaskClient, mb: MfaBrowser, params: dict[str, str], message: str
) -> None:
    admin(mb)
    for url in ("/t/acme/admin/audit", "/t/acme/admin/audit/export"):
        resp = client.get(url, query_string=params)
        assert resp.status_code == 400, url
        assert message in resp.get_data(as_text=True), url
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    for url in ("/t/acme/admin/api/audit", "/t/acme/admin/api/audit/export"):
        resp = client.get(url, query_string=params, headers=bearer)
        assert resp.status_code in (400, 422), (url, resp.get_data(as_text=True))
        assert resp.mimetype == "application/problem+json"


def test_a_range_that_ends_before_it_starts(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    """The console says so; the API's answer is the empty list it asked for."""
    backwards = {"from": "2024-03-02", "to": "2024-03-01"}
    admin(mb)
    resp = client.get("/t/acme/admin/audit", query_string=backwards)
    assert resp.status_code == 400 and "from must be before to" in resp.get_data(as_text=True)
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    api = client.get("/t/acme/admin/api/audit", query_string=backwards, headers=bearer)
    assert api.status_code == 200 and api.get_json() == {"items": [], "next_cursor": None}
    # An RFC 3339 time with an offset is read as the instant it names.
    with svc(app).db.session() as s:
        directory.require_tenant(s, "acme").audit_retention_days = 3650  # never pruned here
    seed(app, "test.at_noon", at=1_709_294_400)  # 2024-03-01T12:00:00Z
    at_noon = {"from": "2024-03-01T13:00:00+01:00", "to": "2024-03-01T12:00:00Z"}
    got = client.get("/t/acme/admin/api/audit", query_string=at_noon, headers=bearer).get_json()
    assert [e["event"] for e in got["items"]] == ["test.at_noon"]


def test_bad_export_format_and_bad_retention_are_refused(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    admin(mb)
    assert (
        client.get("/t/acme/admin/audit/export", query_string={"format": "xml"}).status_code == 400
    )
    assert client.get("/t/acme/admin/audit", query_string={"before": "x" * 50}).status_code == 200
    page = client.get("/t/acme/admin/audit").get_data(as_text=True)
    for bad in ("0", "89", "3651", "abc", "", "-5", "1e3"):  # 89: below the floor
        resp = client.post("/t/acme/admin/audit/retention", follow_redirects=True,
                           data={"csrf_token": csrf_of(page), "retention_days": bad})  # fmt: skip
        assert resp.status_code == 200
        assert "Retention must be a whole number of days from 90 to 3650" in resp.get_data(True)
    no_csrf = client.post("/t/acme/admin/audit/retention", data={"retention_days": "30"})
    assert no_csrf.status_code == 400
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    for body in ({"retention_days": 0}, {"retention_days": "30"}, {"days": 30}, {}):
        resp = client.patch("/t/acme/admin/api/audit/settings", json=body, headers=bearer)
        assert resp.status_code == 400, body
    with svc(app).db.session() as s:
        assert directory.require_tenant(s, "acme").audit_retention_days == 365
    assert client.get("/t/acme/admin/api/audit", headers=bearer,
                      query_string={"limit": "0"}).status_code == 400  # fmt: skip
    assert client.get("/t/acme/admin/api/audit", headers=bearer,
                      query_string={"cursor": "nope"}).status_code == 400  # fmt: skip
    assert client.get("/t/acme/admin/api/audit", headers=bearer,
                      query_string={"unknown": "1"}).status_code == 400  # fmt: skip


def test_members_get_403(app: Flask, client: FlaskClient, mb: MfaBrowser) -> None:
    mb.password("alice", PASSWORD)
    assert mb.finished
    for url in ("/t/acme/admin/audit", "/t/acme/admin/audit/export?format=csv",
                "/t/acme/admin/audit/retention"):  # fmt: skip
        assert client.get(url).status_code == 403, url


def test_the_read_scope_reads_but_does_not_change_retention(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    admin_token(app, client)  # registers the "ops" admin client
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        from idp.oidc import clients

        reg = clients.create_client(s, t, "reader", [], admin_api=True)
        cid, secret = reg.client.client_id, reg.client_secret
    grant = {"grant_type": "client_credentials", "scope": "stepwise:admin.read"}
    tok = client.post("/t/acme/token", auth=(cid, secret), data=grant)
    bearer = {"Authorization": f"Bearer {tok.get_json()['access_token']}"}
    assert client.get("/t/acme/admin/api/audit", headers=bearer).status_code == 200
    assert client.get("/t/acme/admin/api/audit/settings", headers=bearer).status_code == 200
    resp = client.patch("/t/acme/admin/api/audit/settings", json={"retention_days": 5},
                        headers=bearer)  # fmt: skip
    assert resp.status_code == 403
    assert client.get("/t/acme/admin/api/audit").status_code == 401


def test_another_tenants_events_never_appear(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    with svc(app).db.session() as s:
        other = directory.create_tenant(s, "other", "Other")
        directory.create_user(s, svc(app).passwords, other, "alice", "a@o.test", "owner", PASSWORD)
        keys.ensure_keys(s, svc(app).cipher, other)
    seed(app, "secret.other_event", tenant="other", subject="alice", result="failure")
    seed(app, "mine.event", subject="alice")
    admin(mb)
    assert "secret.other_event" not in names(client)
    assert names(client, user="alice", event="secret.other_event") == set()
    page = client.get("/t/acme/admin/audit").get_data(as_text=True)
    assert "secret.other_event" not in page  # not even among the event names
    _, text = _download(client, "/t/acme/admin/audit/export", format="jsonl")
    assert "secret.other_event" not in text and "mine.event" in text
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    api = client.get("/t/acme/admin/api/audit", headers=bearer, query_string={"limit": "200"})
    assert "secret.other_event" not in api.get_data(as_text=True)
    # acme's admin is nobody in tenant "other"; acme's token is no token there.
    assert client.get("/t/other/admin/audit").status_code != 200
    assert client.get("/t/other/admin/api/audit", headers=bearer).status_code in (401, 403)
    assert client.get("/t/nosuch/admin/api/audit", headers=bearer).status_code == 404


def _count(app: Flask, **where: Any) -> int:
    with svc(app).db.session() as s:
        stmt = select(func.count()).select_from(AuditEvent)
        for k, v in where.items():
            stmt = stmt.where(getattr(AuditEvent, k) == v)
        return int(s.scalar(stmt) or 0)


def _request(client: FlaskClient) -> None:
    """Any request under the tenant; closing the response runs what waits for the close."""
    resp = client.get("/t/acme/login")
    assert resp.status_code in (200, 302)
    resp.close()


def test_the_server_prunes_expired_events_once_an_hour(app: Flask, client: FlaskClient,
                                                       tenant: str) -> None:  # fmt: skip
    svc(app).clock.freeze()  # type: ignore[attr-defined]  # the hour must not turn mid-test
    _request(client)  # this hour's prune is done (nothing to delete)
    with svc(app).db.session() as s:
        directory.require_tenant(s, "acme").audit_retention_days = 90
    for _ in range(4):
        seed(app, "test.old")
    old = _count(app)  # these and the tenant's own first events (user.created, ...)
    later(app, 91 * DAY)
    fresh = seed(app, "test.fresh", at=int(svc(app).clock.time()))
    before = _count(app)
    _request(client)
    assert _count(app, event="test.old") == 0, "expired events are pruned"
    assert _count(app, event="test.fresh") == 1
    with svc(app).db.session() as s:
        pruned = s.scalars(select(AuditEvent).where(AuditEvent.event == "audit.pruned")).one()
        assert pruned.details["count"] == old and pruned.details["by"] == "server"
        assert pruned.at == int(svc(app).clock.time())  # the app's clock, not the wall's
        assert pruned.actor_id is None and pruned.actor_client is None
    assert _count(app) == before - old + 1 == 2  # test.fresh and audit.pruned
    # Within the same hour no request prunes again; the next hour one does.
    seed(app, "test.old", at=1)
    _request(client)
    assert _count(app, event="test.old") == 1
    later(app, 3600)
    _request(client)
    assert _count(app, event="test.old") == 0
    assert fresh and _count(app, event="audit.pruned") == 2


def test_the_prune_hook_never_breaks_a_request(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    from idp.audit_pruning import prune_now

    broken = svc(app)
    with svc(app).db.session() as s:
        tid = directory.require_tenant(s, "acme").id
    assert prune_now(broken, 999_999, int(time.time())) == 0  # no such tenant
    seed(app, "test.old", at=1)
    assert prune_now(broken, tid, int(time.time())) == 1
    with svc(app).db.engine.begin() as conn:  # a broken table: logged, not raised
        conn.exec_driver_sql("ALTER TABLE audit_events RENAME TO audit_events_gone")
    try:
        assert prune_now(broken, tid, int(time.time())) == 0
    finally:
        with svc(app).db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE audit_events_gone RENAME TO audit_events")
