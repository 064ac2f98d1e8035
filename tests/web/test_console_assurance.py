"""The console's Assurance page and the admin API's ``/acr`` (issue 14): the built-in rows
are read-only, the tenant's own OIDC values are added and removed (with a confirmation page),
validated alike in the console, the API and the CLI, audited with the actor, and then work in
an OIDC authorization request."""

from __future__ import annotations

import html
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.oidc import acr, acr_table, keys
from idp.store.models import AuditEvent
from testkit.html import HIDDEN, alert_of, csrf_of
from tests.cli_support import idp
from tests.conftest import PASSWORD, svc
from tests.mfa_helpers import MfaBrowser, logout
from tests.web.oidc_helpers import register
from tests.web.test_mfa_policy import admin_token
from tests.web.test_step_up import claims_of, run

PAGE = "/t/acme/admin/assurance"
HIGH = "https://acme.example/acr/high"


def own_rows(app: Flask) -> dict[str, int]:
    with svc(app).db.session() as s:
        return dict(directory.require_tenant(s, "acme").acr_levels)


def changes(app: Flask) -> list[AuditEvent]:
    with svc(app).db.session() as s:
        found = s.scalars(select(AuditEvent).where(AuditEvent.event == "tenant.acr_levels_changed"))
        return list(found)


def add(client: FlaskClient, value: str, level: str) -> str:
    """Send the add form; the page shown afterwards."""
    page = client.get(PAGE).get_data(as_text=True)
    resp = client.post(
        PAGE,
        data={"csrf_token": csrf_of(page), "value": value, "level": level},
        follow_redirects=True,
    )
    assert resp.status_code == 200
    return str(resp.get_data(as_text=True))


def signed_in_owner(app: Flask, mb: MfaBrowser) -> int:
    mb.password("olivia", PASSWORD)
    assert mb.finished
    with svc(app).db.session() as s:
        return directory.require_user(s, directory.require_tenant(s, "acme"), "olivia").id


def test_the_page_shows_built_in_rows_read_only_and_the_tenants_rows_with_remove(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    with svc(app).db.session() as s:
        directory.require_tenant(s, "acme").acr_levels = {HIGH: 3}
    signed_in_owner(app, mb)
    page = client.get(PAGE)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for value in acr.LEVELS:  # every built-in OIDC value, read-only, with no remove link
        row = text.split(f'<tr data-value="{value}">', 1)[1].split("</tr>", 1)[0]
        assert "Built-in (read-only)" in row and "Remove" not in row
    mine = text.split(f'<tr data-value="{HIGH}">', 1)[1].split("</tr>", 1)[0]
    assert "Added by this tenant" in mine and "3: phishing-resistant" in mine
    assert "/admin/assurance/remove?value=https" in mine
    assert "refeds.org/profile/mfa" in text  # the SAML classes, built-in
    assert "Values added above do not apply to SAML" in text


def test_an_added_value_is_audited_with_the_admin_and_works_in_an_oidc_request(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    olivia = signed_in_owner(app, mb)
    shown = add(client, HIGH, "2")
    assert f"{HIGH} now means level 2." in shown
    assert own_rows(app) == {HIGH: 2}
    (event,) = changes(app)
    assert event.actor_id == olivia and event.details["added"] == [f"{HIGH}=2"]
    # Discovery lists it, and asking for it makes alice take a second factor.
    doc = client.get("/t/acme/.well-known/openid-configuration").get_json()
    assert HIGH in doc["acr_values_supported"]
    logout(client)
    rp = register(app)
    mb2, totp = MfaBrowser(client, "acme"), {}
    body = run(mb2, client, rp, totp, acr_values=HIGH)
    assert "secret" in totp  # she was asked to set up a second factor for level 2
    assert claims_of(client, body["id_token"])["acr"] == HIGH


def test_bad_values_and_built_in_values_are_refused_with_a_message(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    signed_in_owner(app, mb)
    for value, level, message in [
        ("", "2", "an acr value is 1 to 200 printable characters"),
        ("has space", "2", "an acr value is 1 to 200 printable characters"),
        ('quo"te', "2", "an acr value is 1 to 200 printable characters"),
        ("x" * 201, "2", "an acr value is 1 to 200 printable characters"),
        ("urn:stepwise:loa:2", "1", "is a default value with a fixed level"),
        ("phr", "3", "is a default value with a fixed level"),
        ("ok-token", "4", "the level must be 1, 2 or 3"),
        ("ok-token", "0", "the level must be 1, 2 or 3"),
        ("ok-token", "²", "the level must be 1, 2 or 3"),
        ("ok-token", "", "the level must be 1, 2 or 3"),
    ]:
        shown = add(client, value, level)
        assert message in html.unescape(alert_of(shown) or ""), (value, level, shown[-600:])
    assert own_rows(app) == {} and changes(app) == []


def test_the_tenant_rows_are_capped(app: Flask, mb: MfaBrowser, client: FlaskClient) -> None:
    with svc(app).db.session() as s:
        directory.require_tenant(s, "acme").acr_levels = {
            f"v{i}": 1 for i in range(acr_table.MAX_TENANT_VALUES)
        }
    signed_in_owner(app, mb)
    shown = add(client, "one-more", "1")
    assert f"at most {acr_table.MAX_TENANT_VALUES} acr values" in (alert_of(shown) or "")
    assert "one-more" not in own_rows(app)
    assert "v0" in add(client, "v0", "2")  # re-levelling an existing row still works
    assert own_rows(app)["v0"] == 2


def test_removing_goes_through_a_confirmation_page(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    with svc(app).db.session() as s:
        directory.require_tenant(s, "acme").acr_levels = {HIGH: 2, "gold": 3}
    register(app, default_acr_values=[HIGH])
    signed_in_owner(app, mb)
    confirm = client.get(f"{PAGE}/remove", query_string={"value": HIGH})
    assert confirm.status_code == 200
    text = confirm.get_data(as_text=True)
    assert f"Remove acr value {HIGH}?" in text
    assert "count as level 1" in text and "list it as a default acr value" in text
    assert ("value", HIGH) in HIDDEN.findall(text)
    assert own_rows(app) == {HIGH: 2, "gold": 3}  # nothing changed by looking
    done = client.post(
        f"{PAGE}/remove",
        data={"csrf_token": csrf_of(text), "value": HIGH},
        follow_redirects=True,
    )
    assert f"{HIGH} was removed." in done.get_data(as_text=True)
    assert own_rows(app) == {"gold": 3}
    assert changes(app)[-1].details["removed"] == [HIGH]
    # A built-in or unknown value has no confirmation page, and cannot be removed.
    for value in ("phr", "never-added"):
        page = client.get(f"{PAGE}/remove", query_string={"value": value}, follow_redirects=True)
        assert "is not one of this tenant" in html.unescape(
            alert_of(page.get_data(as_text=True)) or ""
        )
        resp = client.post(
            f"{PAGE}/remove",
            data={"csrf_token": csrf_of(text), "value": value},
            follow_redirects=True,
        )
        assert "was not added to tenant" in html.unescape(
            alert_of(resp.get_data(as_text=True)) or ""
        )
    assert own_rows(app) == {"gold": 3}


def test_members_get_403_and_writes_need_the_csrf_token(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    mb.password("alice", PASSWORD)
    assert client.get(PAGE).status_code == 403
    assert client.get(f"{PAGE}/remove", query_string={"value": "x"}).status_code == 403
    page = client.get("/t/acme/account").get_data(as_text=True)
    resp = client.post(PAGE, data={"csrf_token": csrf_of(page), "value": "x", "level": "1"})
    assert resp.status_code == 403
    logout(client)
    signed_in_owner(app, mb)
    resp = client.post(PAGE, data={"value": "x", "level": "1"})
    assert resp.status_code == 400 and "Form expired" in resp.get_data(as_text=True)
    resp = client.post(f"{PAGE}/remove", data={"value": "x"})
    assert resp.status_code == 400
    assert own_rows(app) == {} and changes(app) == []


def test_an_admin_of_one_tenant_cannot_use_another_tenants_page(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    with svc(app).db.session() as s:
        keys.ensure_keys(s, svc(app).cipher, directory.create_tenant(s, "globex", "Globex"))
    signed_in_owner(app, mb)
    other = client.get("/t/globex/admin/assurance")
    assert other.status_code == 302 and "/t/globex/login" in other.headers["Location"]
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    assert client.get("/t/globex/admin/api/acr", headers=bearer).status_code == 401


# --- JSON admin API -------------------------------------------------------------------------
def test_api_lists_adds_and_removes_acr_values(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    table = client.get("/t/acme/admin/api/acr", headers=bearer)
    assert table.status_code == 200
    items: list[dict[str, Any]] = table.get_json()["items"]
    assert {"value": "phr", "level": 3, "protocol": "oidc", "built_in": True} in items
    assert {"value": "https://refeds.org/profile/mfa", "level": 2, "protocol": "saml",
            "built_in": True} in items  # fmt: skip
    assert not [i for i in items if not i["built_in"]]
    added = client.post("/t/acme/admin/api/acr", headers=bearer, json={"value": HIGH, "level": 3})
    assert added.status_code == 200 and added.get_json()["built_in"] is False
    items = client.get("/t/acme/admin/api/acr", headers=bearer).get_json()["items"]
    assert {"value": HIGH, "level": 3, "protocol": "oidc", "built_in": False} in items
    (event,) = changes(app)
    assert event.actor_client and event.actor_id is None
    gone = client.delete("/t/acme/admin/api/acr", headers=bearer, query_string={"value": HIGH})
    assert gone.status_code == 204 and own_rows(app) == {}
    again = client.delete("/t/acme/admin/api/acr", headers=bearer, query_string={"value": HIGH})
    assert again.status_code == 404


def test_api_refuses_bad_acr_input_with_problem_documents(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    for body, status, fragment in [
        ({"value": "has space", "level": 2}, 400, "value"),
        ({"value": "phr", "level": 1}, 409, "default value"),
        ({"value": "ok", "level": 4}, 400, "level"),
        ({"value": "ok", "level": "2"}, 400, "level"),
        ({"value": "", "level": 2}, 400, "value"),
        ({"value": "x" * 201, "level": 2}, 400, "value"),
        ({"value": "ok", "level": 2, "extra": 1}, 400, "extra"),
    ]:
        resp = client.post("/t/acme/admin/api/acr", headers=bearer, json=body)
        assert resp.status_code == status, body
        assert resp.mimetype == "application/problem+json"
        assert fragment in resp.get_json()["detail"], (body, resp.get_json())
    builtin = client.delete("/t/acme/admin/api/acr", headers=bearer, query_string={"value": "phr"})
    assert builtin.status_code == 409 and "default value" in builtin.get_json()["detail"]
    missing = client.delete("/t/acme/admin/api/acr", headers=bearer)
    assert missing.status_code == 400
    assert own_rows(app) == {} and changes(app) == []


def test_the_cli_shares_the_validation_and_the_audit(app: Flask, cli_env: dict[str, str]) -> None:
    added = idp(cli_env, "tenant", "acr", "acme", "--add", f"{HIGH}=2")
    assert added.returncode == 0 and f"2\t{HIGH}\tadded" in added.stdout
    shadow = idp(cli_env, "tenant", "acr", "acme", "--add", "phr=1")
    assert shadow.returncode == 2 and "'phr' is a default value with a fixed level" in shadow.stderr
    bad = idp(cli_env, "tenant", "acr", "acme", "--add", "a b=1")
    assert bad.returncode == 2 and "expected VALUE=1|2|3" in bad.stderr
    removed = idp(cli_env, "tenant", "acr", "acme", "--remove", "nope")
    assert removed.returncode == 2 and "'nope' was not added to tenant 'acme'" in removed.stderr
