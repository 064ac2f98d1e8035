"""A tenant's account settings (issue 15): the console's Accounts page, the admin API's
/account-settings and ``idp tenant set-accounts``; each validates what it is given (bad input is
a message, a 4xx or exit status 2, never a 500) and audits old and new values."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.store.models import AuditEvent, Tenant
from testkit.html import alert_of, csrf_of
from tests.cli_support import idp
from tests.conftest import PASSWORD, svc
from tests.mfa_helpers import MfaBrowser
from tests.web.test_mfa_policy import admin_token

PAGE = "/t/acme/admin/accounts"
API = "/t/acme/admin/api/account-settings"
DEFAULTS = {"signup_enabled": False, "signup_domains": [], "login_by_email": False,
            "password_min_alone": 15, "remember_days": 0}  # fmt: skip


def tenant_row(app: Flask) -> Tenant:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        s.expunge(t)
        return t


def changes(app: Flask) -> list[tuple[int | None, str | None, dict[str, object]]]:
    with svc(app).db.session() as s:
        rows = s.scalars(
            select(AuditEvent).where(AuditEvent.event == "tenant.account_settings_changed")
        )
        return [(e.actor_id, e.actor_client, dict(e.details)) for e in rows]


def form(**fields: str) -> dict[str, str]:
    base = {"signup_domains": "", "password_min_alone": "15", "remember_days": "0"}
    return {**base, **fields}


def post(client: FlaskClient, **data: str) -> tuple[int, str]:
    csrf = csrf_of(client.get(PAGE).get_data(as_text=True))
    resp = client.post(PAGE, data={"csrf_token": csrf, **data})
    if resp.status_code == 303:
        assert resp.headers["Location"] == PAGE
        resp = client.get(PAGE)
        return 303, resp.get_data(as_text=True)
    return resp.status_code, resp.get_data(as_text=True)


def test_the_console_page_shows_and_saves_the_settings(
    app: Flask, client: FlaskClient, tenant: str, mb: MfaBrowser
) -> None:
    mb.password("olivia", PASSWORD)
    assert mb.finished
    page = client.get(PAGE).get_data(as_text=True)
    assert 'href="/t/acme/admin/accounts" aria-current="page">Accounts<' in page
    for label in ("signup_domains", "password_min_alone", "remember_days"):
        assert f'<label for="{label}">' in page
    assert 'id="no-mail"' in page  # this app sends no email: sign-up cannot verify addresses
    status, page = post(client, **form(signup_enabled="on", login_by_email="on",
                                       signup_domains="Example.ORG\nbücher.ch, example.org",
                                       password_min_alone="20", remember_days="30"))  # fmt: skip
    assert status == 303 and "The account settings were saved." in page
    t = tenant_row(app)
    assert t.signup_enabled and t.login_by_email
    assert t.signup_domains == ["example.org", "xn--bcher-kva.ch"]
    assert (t.password_min_alone, t.remember_days) == (20, 30)
    assert "example.org\nxn--bcher-kva.ch</textarea>" in page
    ((actor, client_id, details),) = changes(app)
    assert actor is not None and client_id is None
    assert details["changes"] == {
        "signup_enabled": [False, True],
        "signup_domains": [[], ["example.org", "xn--bcher-kva.ch"]],
        "login_by_email": [False, True],
        "password_min_alone": [15, 20],
        "remember_days": [0, 30],
    }
    status, _ = post(client, **form(signup_enabled="on", login_by_email="on",
                                    signup_domains="example.org xn--bcher-kva.ch",
                                    password_min_alone="20", remember_days="30"))  # fmt: skip
    assert status == 303 and len(changes(app)) == 1  # nothing changed: nothing audited


def test_bad_input_on_the_console_is_a_message_and_changes_nothing(
    app: Flask, client: FlaskClient, tenant: str, mb: MfaBrowser
) -> None:
    mb.password("olivia", PASSWORD)
    cases = (
        (form(signup_domains="example.org not_a domain!"), "not an email domain"),
        (form(signup_domains="localhost"), "not an email domain"),
        (form(signup_domains="a" * 300 + ".com"), "not an email domain"),
        (form(signup_domains=" ".join(f"d{n}.example.org" for n in range(101))), "at most 100"),
        (form(password_min_alone="7"), "from 8 to 64"),
        (form(password_min_alone="65"), "from 8 to 64"),
        (form(password_min_alone="\uff11\uff15"), "from 8 to 64"),  # full-width 15
        (form(password_min_alone=""), "from 8 to 64"),
        (form(remember_days="91"), "from 0 to 90"),
        (form(remember_days="-1"), "from 0 to 90"),
    )
    for data, message in cases:
        status, page = post(client, signup_enabled="on", **data)
        assert status == 400, (data, status)
        assert message in (alert_of(page) or ""), (data, alert_of(page))
        assert 'name="signup_enabled" checked' in page  # what was chosen is kept
    status, page = post(client, **form(signup_domains="example.org\nbad domain!"))
    assert "example.org\nbad domain!</textarea>" in page  # what was typed is kept
    assert tenant_row(app).signup_enabled is False and changes(app) == []
    resp = client.post(PAGE, data=form(signup_enabled="on"))  # no CSRF token
    assert resp.status_code == 400 and tenant_row(app).signup_enabled is False


def test_members_get_403(app: Flask, client: FlaskClient, tenant: str, mb: MfaBrowser) -> None:
    mb.password("alice", PASSWORD)
    assert client.get(PAGE).status_code == 403
    csrf = csrf_of(client.get("/t/acme/account").get_data(as_text=True))
    assert client.post(PAGE, data={"csrf_token": csrf, **form(signup_enabled="on")}).status_code \
        == 403  # fmt: skip
    assert tenant_row(app).signup_enabled is False


def test_the_admin_api_reads_and_patches_with_etags(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    got = client.get(API, headers=bearer)
    assert got.status_code == 200 and got.get_json() == DEFAULTS
    etag = got.headers["ETag"]
    changed = client.patch(API, headers={**bearer, "If-Match": etag},
                           json={"signup_enabled": True, "signup_domains": ["Example.org"],
                                 "remember_days": 7})  # fmt: skip
    assert changed.status_code == 200, changed.get_json()
    want = {"signup_enabled": True, "signup_domains": ["example.org"], "remember_days": 7}
    assert changed.get_json() == {**DEFAULTS, **want}
    assert changed.headers["ETag"] != etag
    stale = client.patch(API, headers={**bearer, "If-Match": etag}, json={"remember_days": 1})
    assert stale.status_code == 412 and tenant_row(app).remember_days == 7
    ((actor, client_id, details),) = changes(app)
    assert actor is None and client_id and details["changes"] == {
        "signup_enabled": [False, True], "signup_domains": [[], ["example.org"]],
        "remember_days": [0, 7]}  # fmt: skip


def test_the_admin_api_refuses_bad_values(app: Flask, client: FlaskClient, tenant: str) -> None:
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    for body, status in (
        ({"signup_domains": ["not a domain"]}, 422),
        ({"signup_domains": ["localhost"]}, 422),
        ({"signup_domains": [f"d{n}.example.org" for n in range(101)]}, 400),
        ({"signup_domains": [""]}, 400),
        ({"password_min_alone": 7}, 400),
        ({"password_min_alone": 65}, 400),
        ({"password_min_alone": "15"}, 400),
        ({"remember_days": 91}, 400),
        ({"signup_enabled": "yes"}, 400),
        ({"unknown": True}, 400),
    ):
        resp = client.patch(API, headers=bearer, json=body)
        assert resp.status_code == status, (body, resp.get_json())
        assert resp.mimetype == "application/problem+json"
    assert client.get(API, headers=bearer).get_json() == DEFAULTS and changes(app) == []
    doc = client.get("/t/acme/admin/api/openapi.json").get_json()
    assert set(doc["paths"]["/account-settings"]) == {"get", "patch"}


def test_the_cli_sets_and_prints_the_settings(cli_env: dict[str, str]) -> None:
    done = idp(cli_env, "tenant", "set-accounts", "acme", "--signup", "on", "--signup-domains",
               "Example.org,bücher.ch", "--login-by-email", "on", "--password-min-alone", "12",
               "--remember-days", "30")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "signup_enabled=True signup_domains=example.org,xn--bcher-kva.ch login_by_email=True "
        "password_min_alone=12 remember_days=30"
    )
    shown = idp(cli_env, "tenant", "set-accounts", "acme")
    assert shown.returncode == 0 and shown.stdout == done.stdout
    cleared = idp(cli_env, "tenant", "set-accounts", "acme", "--signup-domains", "")
    assert "signup_domains= " in cleared.stdout
    for args in (
        ["--signup", "maybe"],
        ["--signup-domains", "bad domain!"],
        ["--password-min-alone", "7"],
        ["--password-min-alone", "x"],
        ["--remember-days", "91"],
    ):
        bad = idp(cli_env, "tenant", "set-accounts", "acme", *args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("idp: "), bad.stderr
        assert "Traceback" not in bad.stderr
    missing = idp(cli_env, "tenant", "set-accounts", "nope", "--signup", "on")
    assert missing.returncode == 2 and "no tenant 'nope'" in missing.stderr
