"""The emailed set-password link: read from the real SMTP outbox, single use, a week long,
only for an account with neither a password nor a second factor (issue 14: Users)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.directory import Actor
from idp.store.models import AuditEvent, Credential
from testkit.html import csrf_of
from tests.cli_support import idp
from tests.conftest import PASSWORD, later, make_app, svc
from tests.mfa_helpers import MfaBrowser, set_policy
from tests.outbox import Outboxes
from tests.password_support import user_row

pytestmark = pytest.mark.delivery
LINK = re.compile(r"(https?://\S+/t/acme/set-password\?token=[A-Za-z0-9_-]+)")
INVALID = "This link is not valid any more. Ask your administrator for a new one."
NEW_PASSWORD = "a new long passphrase"


def emailed_link(outboxes: Outboxes, to: str, after: int = 0) -> str:
    mail = outboxes.mail.wait(to, after)
    assert mail["subject"] == "Acme Inc: set your password"
    found = LINK.search(mail["text"])
    assert found, mail["text"]
    url = urlsplit(found.group(1))  # the test client's requests all go to one host
    return f"{url.path}?{url.query}"


def invite(app: Flask, username: str) -> None:
    """``username`` is created by the operator with no password, and emailed a link."""
    s_ = svc(app)
    with s_.db.session() as s:
        t = directory.require_tenant(s, "acme")
        user = directory.create_user(s, s_.passwords, t, username, f"{username}@acme.test")
        assert directory.send_set_password_link(s, s_, t, user, Actor()).emailed


def choose(
    client: FlaskClient, link: str, password: str, again: str | None = None
) -> tuple[int, str]:
    form = client.get(link)
    assert form.status_code == 200, form.get_data(as_text=True)
    html = form.get_data(as_text=True)
    token = link.rsplit("=", 1)[1]
    confirmation = password if again is None else again
    resp = client.post("/t/acme/set-password", data={"csrf_token": csrf_of(html), "token": token,
                       "password": password, "confirmation": confirmation})  # fmt: skip
    return resp.status_code, resp.get_data(as_text=True)


def has_password(app: Flask, username: str) -> bool:
    with svc(app).db.session() as s:
        return (
            directory.require_user(s, directory.require_tenant(s, "acme"), username).password_hash
            is not None
        )


def test_an_admin_invites_a_user_who_sets_a_password_and_signs_in_under_the_policy(
    app: Flask, mb: MfaBrowser, client: FlaskClient, outboxes: Outboxes
) -> None:
    mb.password("olivia", PASSWORD)
    form = client.get("/t/acme/admin/new-user").get_data(as_text=True)
    made = client.post("/t/acme/admin/new-user", follow_redirects=True, data={
        "csrf_token": csrf_of(form), "username": "nina", "email": "nina@acme.test",
        "role": "member"})  # fmt: skip
    assert "a set-password link was emailed to nina@acme.test" in made.get_data(as_text=True)
    link = emailed_link(outboxes, "nina@acme.test")
    assert "your username is nina" in outboxes.mail.wait("nina@acme.test")["text"]

    reader = app.test_client()
    page = reader.get(link).get_data(as_text=True)
    assert '<label for="password">New password</label>' in page
    assert '<label for="confirmation">New password again</label>' in page
    status, html = choose(reader, link, NEW_PASSWORD, again="something else")
    assert status == 400 and "The two passwords differ" in html
    status, html = choose(reader, link, "short")
    assert status == 400 and "at least 15 characters" in html
    assert not has_password(app, "nina")  # a refused password leaves the link usable
    status, html = choose(reader, link, NEW_PASSWORD)
    assert status == 200 and "Your password is set" in html
    assert has_password(app, "nina")
    again = reader.get(link)
    assert again.status_code == 400 and INVALID in again.get_data(as_text=True)  # single use
    with svc(app).db.session() as s:
        names = list(s.scalars(select(AuditEvent.event).order_by(AuditEvent.id)))
    assert "user.set_password_link_sent" in names and names[-1] == "user.password_set"
    nina_row = user_row(app, "nina")  # the emailed link proved the address
    assert nina_row.email_verified and nina_row.password_changed_at is not None

    set_policy(app, mfa_mode="required")  # the tenant's policy applies as at any first login
    nina = MfaBrowser(reader, "acme")
    assert nina.password("nina", NEW_PASSWORD) == "enroll"


def test_the_link_expires_after_seven_days(app: Flask, tenant: str, outboxes: Outboxes) -> None:
    invite(app, "nina")
    invite(app, "noah")
    nina, noah = emailed_link(outboxes, "nina@acme.test"), emailed_link(outboxes, "noah@acme.test")
    client = app.test_client()
    later(app, 7 * 86400 - 60)
    assert client.get(nina).status_code == 200
    later(app, 61)
    for link in (nina, noah):
        resp = client.get(link)
        assert resp.status_code == 400 and INVALID in resp.get_data(as_text=True)
    assert not has_password(app, "nina")


def test_a_user_with_a_factor_or_a_password_cannot_use_the_link(
    app: Flask, tenant: str, outboxes: Outboxes
) -> None:
    invite(app, "nina")
    link = emailed_link(outboxes, "nina@acme.test")
    client = app.test_client()
    html = client.get(link).get_data(as_text=True)  # the form, before the factor appears
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), "nina")
        s.add(Credential(user_id=user.id, type="totp", created_at=1, data={}))
    assert INVALID in client.get(link).get_data(as_text=True)
    token = link.rsplit("=", 1)[1]
    resp = client.post("/t/acme/set-password", data={"csrf_token": csrf_of(html), "token": token,
                       "password": NEW_PASSWORD, "confirmation": NEW_PASSWORD})  # fmt: skip
    assert resp.status_code == 400 and INVALID in resp.get_data(as_text=True)
    assert not has_password(app, "nina")
    with svc(app).db.session() as s:  # and no new link is issued for such an account
        t = directory.require_tenant(s, "acme")
        user = directory.require_user(s, t, "alice")
        with pytest.raises(directory.DirectoryError, match="already has a password"):
            directory.send_set_password_link(s, svc(app), t, user, Actor())


def test_unknown_tokens_and_missing_csrf(app: Flask, tenant: str, outboxes: Outboxes) -> None:
    client = app.test_client()
    for token in ("", "short", "x" * 43, "y" * 500):
        resp = client.get("/t/acme/set-password", query_string={"token": token})
        assert resp.status_code == 400 and INVALID in resp.get_data(as_text=True), token
    invite(app, "nina")
    link = emailed_link(outboxes, "nina@acme.test")
    resp = client.post("/t/acme/set-password", data={"token": link.rsplit("=", 1)[1],
                       "password": NEW_PASSWORD, "confirmation": NEW_PASSWORD})  # fmt: skip
    assert resp.status_code == 400 and "Form expired" in resp.get_data(as_text=True)
    assert not has_password(app, "nina")
    assert client.get("/t/nowhere/set-password?token=abc").status_code == 404


def test_the_cli_invitation_is_emailed(cli_env: dict[str, str], outboxes: Outboxes) -> None:
    env = {**cli_env, "IDP_MAIL_SENDER": "smtp", "IDP_SMTP_HOST": "127.0.0.1",
           "IDP_SMTP_PORT": str(outboxes.smtp_port), "IDP_SMTP_SECURITY": "none",
           "IDP_MAIL_FROM": "Acme <id@acme.test>"}  # fmt: skip
    done = idp(env, "user", "invite", "acme", "nina", "--email", "nina@acme.test")
    assert done.returncode == 0, done.stderr
    assert "set-password link emailed to nina@acme.test" in done.stdout
    assert "token=" not in done.stdout  # the link goes only to the user
    mail = outboxes.mail.wait("nina@acme.test")
    assert LINK.search(mail["text"]) and "nina" in mail["text"]


def test_a_link_stops_working_when_its_account_gains_rights(
    app: Flask, tenant: str, outboxes: Outboxes
) -> None:
    """A link may have been shown to the admin who asked for it (no mail sender). Once an
    owner raises the account's role, that admin must not be able to open it (review finding:
    an admin took over a new owner this way)."""
    invite(app, "nina")
    link = emailed_link(outboxes, "nina@acme.test")
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        olivia = directory.require_user(s, t, "olivia")
        nina = directory.require_user(s, t, "nina")
        directory.set_role(s, t, nina, "owner", Actor(user_id=olivia.id))
    resp = app.test_client().get(link)
    assert resp.status_code == 400 and INVALID in resp.get_data(as_text=True)
    assert not has_password(app, "nina")


def test_a_link_shown_to_the_admin_instead_of_emailed_verifies_no_address(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)  # no mail sender: the link is shown to whoever asked for it
    s_ = svc(app)
    with s_.db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        user = directory.create_user(s, s_.passwords, t, "nina", "nina@acme.test")
        sent = directory.send_set_password_link(s, s_, t, user, Actor())
    assert not sent.emailed
    parts = urlsplit(sent.url)
    status, html = choose(app.test_client(), f"{parts.path}?{parts.query}", NEW_PASSWORD)
    assert status == 200 and "Your password is set" in html
    row = user_row(app, "nina")
    assert not row.email_verified and row.password_changed_at is not None
