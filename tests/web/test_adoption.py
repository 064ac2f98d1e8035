"""The console's overview and ``GET /adoption`` (issue 14, "Overview: MFA adoption"): known users
and factors in, the page's numbers, the SVG's values, the tables, the admins without MFA and the
90-day series out; the same figures from the API; members refused; one tenant's figures never
count another's. The queries also run on a real PostgreSQL server (dialect-neutral SQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import html as lxml_html
from sqlalchemy.orm import Session

from factors.password import Argon2Params, PasswordFactor
from flows.policy import Role, UserFacts, mfa_on
from idp import adoption, directory
from idp.directory import Actor
from idp.mfa import admin as mfa_admin
from idp.oidc import clients, keys
from idp.store.db import Database
from idp.store.migrate import upgrade
from idp.store.models import AuditEvent, BackupCode, Credential, Tenant, User
from testkit.html import SECRET
from testkit.servers import create_database
from testkit.totp import oathtool
from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser, logout, set_policy, set_user
from tests.web.test_mfa_policy import admin_token

DAY = 86400
PF = PasswordFactor(Argon2Params(memory_kib=8192, time_cost=1))


def noon(app: Flask) -> int:
    """Freeze the app's clock at 12:00 UTC today, so no test straddles midnight."""
    clock = svc(app).clock
    clock.freeze()  # type: ignore[attr-defined]
    t = int(clock.time())
    later(app, (DAY // 2 - t % DAY) % DAY)
    return int(clock.time())


def populate(s: Session, tenant: Tenant, now: int, passwords: PasswordFactor = PF) -> None:
    """Known users of ``tenant`` (which already has alice, member, and olivia, owner):

    ======  ======  =====================================  ===========  ============
    user    role    factors (created days ago)             MFA          backup codes
    ======  ======  =====================================  ===========  ============
    tom     member  totp (2)                               enabled      10 unused
    sam     member  sms (10), email (10)                   off          3 unused, 7 used
    kim     member  security key (89), passkey (30)        required     none
    pat     member  none                                   required     none
    ada     admin   totp (95: outside the window)          off          none
    ed      admin   WebAuthn stored before passkeys (1)    enabled      none
    dan     member  totp (3), disabled                     enabled      5 unused
    ======  ======  =====================================  ===========  ============

    And audit events ``mfa.factor_added``: 2 days ago x1, 10 days ago x3 (one since removed),
    95 days ago x1, and a failed one today (not counted).
    """

    def user(name: str, role: str = "member", **fields: Any) -> User:
        u = directory.create_user(s, passwords, tenant, name, f"{name}@x.test", role, PASSWORD)
        for key, value in fields.items():
            setattr(u, key, value)
        return u

    def factor(u: User, kind: str, days_ago: int, **data: Any) -> None:
        s.add(Credential(user_id=u.id, type=kind, data=data, created_at=now - days_ago * DAY))

    def codes(u: User, unused: int, used: int = 0) -> None:
        for i in range(unused + used):
            used_at = now if i < used else None
            s.add(
                BackupCode(user_id=u.id, digest=uuid.uuid4().hex, created_at=now, used_at=used_at)
            )

    def added(days_ago: int, result: str = "success") -> None:
        at = now - days_ago * DAY
        s.add(AuditEvent(tenant_id=tenant.id, event="mfa.factor_added", result=result, at=at,
                         details={}))  # fmt: skip

    tom = user("tom", mfa_enabled=True)
    factor(tom, "totp", 2)
    codes(tom, 10)
    sam = user("sam")
    factor(sam, "sms", 10)
    factor(sam, "email", 10)
    codes(sam, 3, used=7)
    kim = user("kim", mfa_required=True)
    factor(kim, "webauthn", 89, passkey=False)
    factor(kim, "webauthn", 30, passkey=True)
    user("pat", mfa_required=True)
    factor(user("ada", "admin"), "totp", 95)
    factor(user("ed", "admin", mfa_enabled=True), "webauthn", 1)
    dan = user("dan", mfa_enabled=True, status="disabled")
    factor(dan, "totp", 3)
    codes(dan, 5)
    for days_ago in (2, 10, 10, 10, 95):
        added(days_ago)
    added(0, "failure")
    s.flush()


EXPECTED_STATES = {"on": 4, "enrolled": 2, "none": 2}  # tom kim pat ed / sam ada / alice olivia
EXPECTED_KINDS = {  # kind: (users, factors); dan is disabled
    "totp": (2, 2),
    "sms": (1, 1),
    "email": (1, 1),
    "webauthn": (2, 2),
    "passkey": (1, 1),
}


def acme(app: Flask, now: int) -> None:
    with svc(app).db.session() as s:
        populate(s, directory.require_tenant(s, "acme"), now, svc(app).passwords)


def other_tenant(app: Flask, now: int) -> None:
    """Tenant ``globex``: its owner gina, and two members with MFA on and a factor."""
    with svc(app).db.session() as s:
        t = directory.create_tenant(s, "globex", "Globex")
        directory.create_user(s, svc(app).passwords, t, "gina", "g@g.test", "owner", PASSWORD)
        for name in ("hal", "ivy"):
            u = directory.create_user(s, svc(app).passwords, t, name, f"{name}@g.test",
                                      "member", PASSWORD)  # fmt: skip
            u.mfa_enabled = True
            s.add(Credential(user_id=u.id, type="totp", data={}, created_at=now))
            s.add(AuditEvent(tenant_id=t.id, event="mfa.factor_added", at=now, details={}))


def overview(client: FlaskClient, tenant: str = "acme") -> Any:
    resp = client.get(f"/t/{tenant}/admin/")
    assert resp.status_code == 200
    return lxml_html.fromstring(resp.get_data(as_text=True))


def svg_values(doc: Any, chart: str) -> dict[str, int]:
    svg = doc.get_element_by_id(chart)
    assert svg.tag == "svg" and svg.get("role") == "img"
    return {r.get("data-label"): int(r.get("data-value")) for r in svg.iter("rect")}


def svg_titles(doc: Any, chart: str) -> list[str]:
    return [r.findtext("title") for r in doc.get_element_by_id(chart).iter("rect")]


def table_rows(doc: Any, table: str, key: str) -> dict[str, list[str]]:
    """``data-<key>`` of each body row -> the text of its data cells."""
    body = doc.get_element_by_id(table).find("tbody")
    return {tr.get(f"data-{key}"): [td.text_content().strip() for td in tr.findall("td")]
            for tr in body.findall("tr")}  # fmt: skip


def test_the_overview_counts_users_by_state_and_factor_kind(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    now = noon(app)
    acme(app, now)
    other_tenant(app, now)  # never counted in acme's figures
    mb.password("olivia", PASSWORD)
    assert mb.finished
    doc = overview(client)

    assert svg_values(doc, "chart-states") == {
        "MFA on": 4,
        "Enrolled but not on": 2,
        "No second factor": 2,
    }
    assert "4 users: MFA on" in svg_titles(doc, "chart-states")
    states = table_rows(doc, "table-states", "state")
    assert {k: int(v[0]) for k, v in states.items()} == EXPECTED_STATES
    assert doc.get_element_by_id("table-states").find("tfoot").findtext(".//td") == "8"
    assert doc.get_element_by_id("on-without-factor").text_content().strip().endswith(": 1")
    assert doc.get_element_by_id("disabled").text_content().strip().endswith(": 1")
    assert "4 of 8 users have MFA on" in doc.get_element_by_id("summary").text_content()

    kinds = table_rows(doc, "table-kinds", "kind")
    assert {k: (int(v[0]), int(v[1])) for k, v in kinds.items()} == EXPECTED_KINDS
    assert svg_values(doc, "chart-kinds") == {
        "Authenticator app": 2,
        "Text message": 1,
        "Email": 1,
        "Security key": 2,
        "Passkey": 1,
    }
    assert "1 user with passkey" in svg_titles(doc, "chart-kinds")

    # tom has 10 unused; sam 3; kim, ada and ed hold a factor and no code (dan is disabled).
    backup = table_rows(doc, "table-backup", "bucket")
    assert {k: int(v[0]) for k, v in backup.items()} == {"none": 3, "low": 1, "plenty": 1}

    # Each chart is named and described, and its table is in the DOM beside it.
    for chart in ("chart-states", "chart-kinds", "chart-enrolments"):
        svg = doc.get_element_by_id(chart)
        title, desc = svg.get("aria-labelledby").split()
        assert doc.get_element_by_id(title).tag == "title"
        assert doc.get_element_by_id(desc).tag == "desc"
    desc = doc.get_element_by_id("chart-states-desc").text_content()
    assert desc == "Of 8 users: MFA on: 4, Enrolled but not on: 2, No second factor: 2."


def test_admins_and_owners_without_mfa_are_listed_with_links(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    now = noon(app)
    acme(app, now)
    other_tenant(app, now)  # gina, globex's owner without MFA, is not acme's concern
    mb.password("olivia", PASSWORD)
    doc = overview(client)
    rows = doc.get_element_by_id("admins-without-mfa").find("tbody").findall("tr")
    assert [r.get("data-username") for r in rows] == ["olivia", "ada"]  # owners first
    links = [r.find(".//a").get("href") for r in rows]
    assert links == ["/t/acme/admin/users/olivia", "/t/acme/admin/users/ada"]
    cells = [r.findall("td")[-1].text_content().strip() for r in rows]
    assert cells == [
        "MFA is off and no second factor is set up",
        "Has a second factor, but MFA is off",
    ]

    # Required for admins: ada is covered now; olivia is on but still has no factor.
    set_policy(app, mfa_mode="required", mfa_scope="admins")
    doc = overview(client)
    rows = doc.get_element_by_id("admins-without-mfa").find("tbody").findall("tr")
    assert [r.get("data-username") for r in rows] == ["olivia"]
    assert "no second factor is set up yet" in rows[0].text_content()
    states = table_rows(doc, "table-states", "state")
    assert {k: int(v[0]) for k, v in states.items()} == {"on": 6, "enrolled": 1, "none": 1}
    assert doc.get_element_by_id("on-without-factor").text_content().strip().endswith(": 2")

    # Olivia sets up a factor: nobody is left, and the page says so.
    with svc(app).db.session() as s:
        olivia = directory.require_user(s, directory.require_tenant(s, "acme"), "olivia")
        s.add(Credential(user_id=olivia.id, type="totp", data={}, created_at=now))
    doc = overview(client)
    assert "Every admin and owner has MFA on" in doc.get_element_by_id("admins-all-covered").text
    assert doc.find('.//*[@id="admins-without-mfa"]') is None


def test_the_enrolment_series_covers_90_days_from_the_audit_log(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    now = noon(app)
    acme(app, now)
    other_tenant(app, now)  # globex's two enrolments today are not acme's
    mb.password("olivia", PASSWORD)
    doc = overview(client)
    day = [adoption.day_iso(now - n * DAY) for n in range(100)]

    rows = table_rows(doc, "table-enrolments", "day")
    assert len(rows) == 90 and next(iter(rows)) == day[89] and list(rows)[-1] == day[0]
    series = {d: (int(a), int(k)) for d, (a, k) in rows.items()}
    # (added per the audit log, still enrolled per the credentials)
    assert series[day[2]] == (1, 1)  # tom's TOTP
    assert series[day[10]] == (3, 2)  # sam's SMS and email; a third factor since removed
    assert series[day[30]] == (0, 1)  # kim's passkey, added without an audit event
    assert series[day[89]] == (0, 1)  # kim's security key: the first day of the window
    assert series[day[3]] == (0, 1)  # dan's TOTP: he is disabled, the factor still exists
    assert series[day[0]] == (0, 0)  # a failed enrolment is not counted; globex's are not ours
    assert sum(a for a, _ in series.values()) == 4  # 95 days ago is outside

    svg = doc.get_element_by_id("chart-enrolments")
    bars = list(svg.iter("rect"))
    assert len(bars) == 90
    assert [int(b.get("data-value")) for b in bars] == [a for a, _ in series.values()]
    assert bars[-3].findtext("title") == f"{day[2]}: 1 factor added"
    assert bars[-11].findtext("title") == f"{day[10]}: 3 factors added"
    desc = doc.get_element_by_id("chart-enrolments-desc").text_content()
    assert f"4 second factors added from {day[89]} to {day[0]}" in desc
    assert f"the busiest day was {day[10]} with 3" in desc
    ticks = [t.text for t in svg.iter("text") if t.get("class") == "y-tick"]
    assert ticks == ["0", "2", "5"]  # a round top above the busiest day (3)

    # 30 days on, the window has moved: sam's day is now 40 days back, tom's 32.
    later(app, 30 * DAY)
    mb.password("olivia", PASSWORD)  # the session ended meanwhile
    rows = table_rows(overview(client), "table-enrolments", "day")
    assert rows[day[10]] == ["3", "2"] and rows[day[2]] == ["1", "1"]
    assert day[89] not in rows and adoption.day_iso(now + 30 * DAY) in rows


def test_a_reset_removes_factors_but_not_their_enrolment_history(
    app: Flask, client: FlaskClient, mb: MfaBrowser
) -> None:
    """Alice enrols through the real login flow; an MFA reset deletes her factor, yet the
    day's enrolment stays in the chart (the audit log), while "still enrolled" drops to 0."""
    now = noon(app)
    set_user(app, "alice", mfa_required=True)
    mb.password("alice", PASSWORD)
    mb.submit(factor="totp")  # as mb.enroll_totp, with the code for the app's (moved) clock
    secret = SECRET.search(mb.html)
    assert mb.step == "enroll_totp" and secret
    mb.submit(code=oathtool(secret.group(1), at=now), action="verify")
    mb.backup_codes()
    assert mb.finished
    logout(client)
    mb.password("olivia", PASSWORD)
    today = adoption.day_iso(now)
    doc = overview(client)
    assert table_rows(doc, "table-enrolments", "day")[today] == ["1", "1"]
    assert table_rows(doc, "table-kinds", "kind")["totp"] == ["1", "1"]
    assert table_rows(doc, "table-backup", "bucket")["plenty"] == ["1"]

    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        olivia = directory.require_user(s, t, "olivia")
        alice = directory.require_user(s, t, "alice")
        mfa_admin.reset_user(s, svc(app), t, alice, Actor(user_id=olivia.id))
    doc = overview(client)
    assert table_rows(doc, "table-enrolments", "day")[today] == ["1", "0"]
    assert svg_values(doc, "chart-kinds")["Authenticator app"] == 0
    states = table_rows(doc, "table-states", "state")
    assert states["on"] == ["1"]  # still required by an admin; no factor until next login


def test_the_api_returns_the_same_figures(app: Flask, client: FlaskClient, tenant: str) -> None:
    now = noon(app)
    acme(app, now)
    other_tenant(app, now)
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    resp = client.get("/t/acme/admin/api/adoption", headers=bearer)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["states"] == {**EXPECTED_STATES, "on_without_factor": 1, "disabled": 1, "total": 8}
    assert {k["kind"]: (k["users"], k["factors"]) for k in body["kinds"]} == EXPECTED_KINDS
    assert body["backup_codes"] == {"none_left": 3, "low": 1, "plenty": 1, "low_threshold": 3}
    assert body["admins_without_mfa"] == [
        {"username": "olivia", "role": "owner", "mfa_on": False, "enrolled": False},
        {"username": "ada", "role": "admin", "mfa_on": False, "enrolled": True},
    ]
    assert body["admins_without_mfa_total"] == 2
    days = body["enrolments"]
    assert len(days) == 90 and days[-1]["day"] == adoption.day_iso(now)
    assert days[-11] == {"day": adoption.day_iso(now - 10 * DAY), "added": 3, "still_enrolled": 2}
    assert body["generated_at"] == now


def read_only_token(app: Flask, client: FlaskClient) -> str:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        keys.ensure_keys(s, svc(app).cipher, t)
        reg = clients.create_client(s, t, "reader", [], admin_api=True)
        cid, secret = reg.client.client_id, reg.client_secret
    resp = client.post(
        "/t/acme/token",
        auth=(cid, secret),
        data={"grant_type": "client_credentials", "scope": "stepwise:admin.read"},
    )
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["access_token"])


def test_a_read_only_token_reads_adoption_and_others_are_refused(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    reader = {"Authorization": f"Bearer {read_only_token(app, client)}"}
    resp = client.get("/t/acme/admin/api/adoption", headers=reader)
    assert resp.status_code == 200 and resp.get_json()["states"]["none"] == 2
    assert client.get("/t/acme/admin/api/adoption").status_code == 401
    not_admin = {"Authorization": f"Bearer {admin_token(app, client, admin_api=False)}"}
    refused = client.get("/t/acme/admin/api/adoption", headers=not_admin)
    assert refused.status_code in (401, 403)
    assert refused.headers["Content-Type"].startswith("application/problem+json")


def test_a_member_gets_403(app: Flask, client: FlaskClient, mb: MfaBrowser) -> None:
    mb.password("alice", PASSWORD)
    assert mb.finished
    resp = client.get("/t/acme/admin/")
    assert resp.status_code == 403
    assert "chart-states" not in resp.get_data(as_text=True)


def test_each_tenant_sees_only_its_own_users(app: Flask, client: FlaskClient, tenant: str) -> None:
    now = noon(app)
    acme(app, now)
    other_tenant(app, now)
    gmb = MfaBrowser(client, "globex")
    gmb.password("gina", PASSWORD)
    assert gmb.finished
    doc = overview(client, "globex")
    states = table_rows(doc, "table-states", "state")
    assert {k: int(v[0]) for k, v in states.items()} == {"on": 2, "enrolled": 0, "none": 1}
    assert svg_values(doc, "chart-kinds")["Authenticator app"] == 2
    rows = doc.get_element_by_id("admins-without-mfa").find("tbody").findall("tr")
    assert [r.get("data-username") for r in rows] == ["gina"]
    assert table_rows(doc, "table-enrolments", "day")[adoption.day_iso(now)] == ["2", "2"]
    # gina is no user of acme: acme's console sends her to acme's login.
    resp = client.get("/t/acme/admin/")
    assert resp.status_code == 302 and "/t/acme/login" in resp.headers["Location"]


def test_the_sql_rule_for_mfa_on_matches_the_planners(app: Flask, tenant: str) -> None:
    """idp.adoption.mfa_on_clause is flows.policy.mfa_on in SQL: they agree for every user
    under each policy (the figures cannot drift from who is really asked at login)."""
    acme(app, noon(app))
    policies: list[dict[str, Any]] = [
        {"mfa_mode": "off", "mfa_scope": "all", "admins_phishing_resistant": False},
        {"mfa_mode": "required", "mfa_scope": "all", "admins_phishing_resistant": False},
        {"mfa_mode": "required", "mfa_scope": "admins", "admins_phishing_resistant": False},
        {"mfa_mode": "optional", "mfa_scope": "all", "admins_phishing_resistant": True},
    ]
    for fields in policies:
        set_policy(app, **fields)
        with svc(app).db.session() as s:
            t = directory.require_tenant(s, "acme")
            policy = directory.policy_of(t)
            users = s.query(User).filter(User.tenant_id == t.id, User.status != "disabled")
            facts = [UserFacts(role=Role(u.role), mfa_required_by_admin=u.mfa_required,
                               mfa_enabled_by_user=u.mfa_enabled) for u in users]  # fmt: skip
            expected_on = sum(mfa_on(policy, f) for f in facts)
            assert adoption.states(s, t).on == expected_on, fields
    assert expected_on == 6  # the last policy: tom kim pat ed, ada (admin) and olivia (owner)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'adoption.db'}"
    else:
        url = create_database(request.getfixturevalue("postgres_url"), f"t_{uuid.uuid4().hex[:12]}")
    database = Database(url)
    upgrade(database.engine)
    yield database
    database.engine.dispose()


def test_the_figures_are_the_same_on_sqlite_and_postgresql(db: Database) -> None:
    now = 1_750_000_000 - 1_750_000_000 % DAY + DAY // 2
    with db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme")
        for name, role in (("alice", "member"), ("olivia", "owner")):
            directory.create_user(s, PF, t, name, f"{name}@x.test", role, PASSWORD)
        populate(s, t, now)
        a = adoption.adoption(s, t, now)
    assert a.states == adoption.States(on=4, enrolled=2, none=2, on_without_factor=1, disabled=1)
    assert {k.kind: (k.users, k.factors) for k in a.kinds} == EXPECTED_KINDS
    assert a.backup_codes == adoption.BackupCodes(none_left=3, low=1, plenty=1)
    assert [(g.username, g.mfa_on, g.enrolled) for g in a.admins_without_mfa] == [
        ("olivia", False, False),
        ("ada", False, True),
    ]
    assert [(d.added, d.still_enrolled) for d in a.enrolments if d.added or d.still_enrolled] == [
        (0, 1),  # 89 days ago
        (0, 1),  # 30
        (3, 2),  # 10
        (0, 1),  # 3 (dan, disabled since: his factor still exists)
        (1, 1),  # 2
        (0, 1),  # 1 (ed)
    ]
    assert a.enrolments[-1].start == now - DAY // 2
