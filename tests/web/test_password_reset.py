"""Forgotten passwords (issue 15): the emailed link (single use, 30 minutes, one message for
every way it can be wrong), no enumeration, rate limits, and the reset never bypassing MFA:
the second factor comes first, in the same flow, and a user who cannot give one is sent to
their administrator. After the reset every session ends and nobody is signed in."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import clock, directory
from idp.mfa import credentials
from idp.store.models import AuditEvent
from testkit.html import csrf_of
from testkit.totp import oathtool
from tests.conftest import PASSWORD, delivery_settings, later, make_app, svc
from tests.mfa_helpers import MfaBrowser, logout, set_policy, set_user
from tests.outbox import Outboxes
from tests.password_support import Resetter, reaches_account, user_row
from tests.softkey import SoftKey, options_in

pytestmark = pytest.mark.delivery
NEW = "a brand new passphrase"
INVALID = "This link is not valid any more. Ask for a new one."
ORIGIN = "http://localhost:8000"


@pytest.fixture
def rs(client: FlaskClient, outboxes: Outboxes) -> Resetter:
    return Resetter(client, outboxes.mail)


def audited(app: Flask, event: str) -> list[AuditEvent]:
    with svc(app).db.session() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.event == event)))
        s.expunge_all()
        return rows


def flushed(app: Flask, outboxes: Outboxes) -> None:
    """Wait until every reset mail asked for so far has been sent: the mail thread sends in
    order, so once a link asked for now has arrived, any earlier one has too."""
    rs = Resetter(app.test_client(), outboxes.mail)
    before = len(outboxes.mail.to("olivia@acme.test"))
    rs.ask("olivia", ip="10.9.9.9")
    outboxes.mail.wait("olivia@acme.test", after=before)


def signed_in(app: Flask, tenant: str, username: str = "alice") -> FlaskClient:
    client = app.test_client()
    mb = MfaBrowser(client, tenant)
    mb.password(username, PASSWORD)
    assert mb.finished, mb.step
    return client


def with_totp(app: Flask, client: FlaskClient, tenant: str) -> str:
    """Alice enrols TOTP (Optional mode's offer) and signs out; her TOTP secret."""
    set_policy(app, mfa_mode="optional")
    mb = MfaBrowser(client, tenant)
    assert mb.password("alice", PASSWORD) == "offer"
    secret = mb.enroll_totp()
    mb.backup_codes()
    assert mb.finished
    logout(client)
    return secret


def signs_in(app: Flask, tenant: str, password: str) -> bool:
    mb = MfaBrowser(app.test_client(), tenant)
    mb.password("alice", password)
    return mb.finished or mb.step not in ("identify", "password")


def test_a_password_only_user_resets_with_the_link_once(
    app: Flask, tenant: str, rs: Resetter, outboxes: Outboxes
) -> None:
    resp = rs.ask("alice")
    assert resp.status_code == 200 and 'id="reset-sent"' in resp.get_data(as_text=True)
    link = rs.link("alice@acme.test")
    mail = outboxes.mail.wait("alice@acme.test")
    assert mail["subject"] == "Acme Inc: reset your password" and "30 minutes" in mail["text"]
    page = rs.client.get(f"/t/acme/{link}")
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert ">Continue</button>" in html and 'id="username">alice<' in html
    rs.open(link)
    assert rs.status == 200 and "Choose a new password" in rs.html
    assert "At least 15 characters" in rs.html  # the password is her only factor
    for weak, message in (("1qaz2wsx3edc4rfv", "too common"), ("short", "at least 15"),
                          ("alice the great one", "contains your name")):  # fmt: skip
        rs.new_password(weak)
        assert rs.status == 400 and message in (rs.alert or ""), rs.alert
    rs.new_password(NEW, "something else")
    assert rs.status == 400 and "differ" in (rs.alert or "")
    rs.new_password(NEW)
    assert rs.status == 200 and 'id="reset-done"' in rs.html
    assert not reaches_account(rs.client)  # the reset signs nobody in
    row = user_row(app, "alice")
    assert row.password_changed_at is not None and row.email_verified
    notice = outboxes.mail.wait("alice@acme.test", after=1)
    assert notice["subject"] == "Acme Inc: Your password was reset"
    assert [e.subject_id for e in audited(app, "user.password_reset")] == [row.id]
    # Used: the same link, opened or posted again, is one message.
    again = Resetter(app.test_client(), outboxes.mail)
    again.open(link)
    assert again.status == 400 and again.alert == INVALID
    later(app, 1)
    assert signs_in(app, tenant, NEW) and not signs_in(app, tenant, PASSWORD)


def test_expired_tampered_and_used_links_get_one_message(
    app: Flask, tenant: str, rs: Resetter
) -> None:
    rs.ask("alice")
    link = rs.link("alice@acme.test")
    token = link.rsplit("=", 1)[1]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    bodies = set()
    for bad in (f"reset-password?token={flipped}", "reset-password?token=abc",
                "reset-password?token=" + "x" * 300):  # fmt: skip
        page = rs.client.get(f"/t/acme/{bad}")
        assert page.status_code == 400
        assert page.headers["Referrer-Policy"] == "no-referrer"
        bodies.add(page.get_data(as_text=True))
    later(app, 31 * 60)
    page = rs.client.get(f"/t/acme/{link}")
    assert page.status_code == 400
    bodies.add(page.get_data(as_text=True))
    assert len(bodies) == 1 and INVALID in bodies.pop()
    # A newer link ends the older one.
    rs.ask("alice")
    newer = rs.link("alice@acme.test", nth=1)
    rs.ask("alice")
    rs.open(newer)
    assert rs.status == 400 and rs.alert == INVALID


def test_asking_tells_nothing_about_accounts_and_is_rate_limited(
    app: Flask, tenant: str, outboxes: Outboxes
) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        directory.create_user(s, svc(app).passwords, t, "dora", "dora@acme.test")
        directory.set_status(s, t, directory.require_user(s, t, "dora"), "disabled")
    answers = set()
    for i, entry in enumerate(("dora", "nobody", "nobody@acme.test", "ALICE",
                               "alice@acme.test")):  # fmt: skip
        resp = Resetter(app.test_client(), outboxes.mail).ask(entry, ip=f"10.0.0.{i}")
        assert resp.status_code == 200
        answers.add(resp.get_data(as_text=True))
    assert len(answers) == 1
    outboxes.mail.wait("alice@acme.test", after=1)  # by username, then by address
    flushed(app, outboxes)
    assert outboxes.mail.to("dora@acme.test") == []  # a disabled account gets nothing
    # Per account: five links an hour, then the same page and no more mail.
    for _ in range(4):
        Resetter(app.test_client(), outboxes.mail).ask("alice", ip="10.0.1.1")
    resp = Resetter(app.test_client(), outboxes.mail).ask("alice", ip="10.0.1.2")
    assert resp.get_data(as_text=True) in answers
    outboxes.mail.wait("alice@acme.test", after=4)
    flushed(app, outboxes)
    assert len(outboxes.mail.to("alice@acme.test")) == 5
    alice = user_row(app, "alice").id
    asked = [e.details for e in audited(app, "user.password_reset_requested")
             if e.subject_id == alice]  # fmt: skip
    assert asked[-1] == {"sent": False} and asked.count({"sent": True}) == 5
    # Per IP: twenty requests an hour, whatever the name.
    rs = Resetter(app.test_client(), outboxes.mail)
    codes = [rs.ask(f"ghost{i}", ip="10.0.2.1").status_code for i in range(20)]
    assert codes == [200] * 20
    for entry in ("ghost-more", "alice"):
        resp = rs.ask(entry, ip="10.0.2.1")
        assert resp.status_code == 429 and "Too many requests" in resp.get_data(as_text=True)
    # An hour later the counters have gone.
    later(app, 3601)
    assert rs.ask("ghost", ip="10.0.2.1").status_code == 200


def test_existing_and_unknown_names_answer_in_the_same_timing_band(
    app: Flask, tenant: str, outboxes: Outboxes
) -> None:
    """Loose on purpose (medians, a factor of 3): the mail is sent off the request, so an
    existing account costs about what an unknown name costs."""
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        for i in range(9):
            directory.create_user(s, svc(app).passwords, t, f"u{i}", f"u{i}@acme.test")
    known, unknown = [], []
    for i in range(9):
        for name, times, net in ((f"u{i}", known, 3), (f"stranger{i}", unknown, 4)):
            rs = Resetter(app.test_client(), outboxes.mail)
            start = time.perf_counter()
            assert rs.ask(name, ip=f"10.0.{net}.{i}").status_code == 200
            times.append(time.perf_counter() - start)
    slow, fast = sorted((statistics.median(known), statistics.median(unknown)))
    assert slow < 3 * fast, (known, unknown)
    outboxes.mail.wait("u8@acme.test")


def test_a_totp_user_gives_the_code_before_the_new_password(
    app: Flask, tenant: str, client: FlaskClient, outboxes: Outboxes
) -> None:
    secret = with_totp(app, client, tenant)
    elsewhere = signed_in_with_totp(app, tenant, secret)
    assert reaches_account(elsewhere)
    rs = Resetter(app.test_client(), outboxes.mail)
    rs.ask("alice@acme.test")
    rs.open(rs.link("alice@acme.test"))
    assert rs.step == "verify_totp", rs.html[:500]
    before = user_row(app, "alice").password_hash
    # The password form posted before the factor is refused.
    rs.new_password(NEW)
    assert rs.status == 403 and rs.step == "verify_totp"
    assert rs.alert == "Verify it&#39;s you first."
    assert user_row(app, "alice").password_hash == before
    rs.submit(code="000000" if oathtool(secret, clock_of(app)) != "000000" else "111111")
    assert rs.step == "verify_totp" and rs.alert == "That code is not correct. Try again."
    assert audited(app, "mfa.code_failed")[-1].details["via"] == "password_reset"
    later(app, 30)
    rs.submit(code=oathtool(secret, clock_of(app)), action="verify")
    assert rs.step is None and "Choose a new password" in rs.html
    assert "At least 8 characters" in rs.html  # she has a second factor
    rs.new_password("zq8-kite")
    assert rs.status == 200 and 'id="reset-done"' in rs.html
    assert user_row(app, "alice").password_hash != before
    # Every session ended, and the reset signed nobody in: not even at level 1.
    assert not reaches_account(elsewhere)
    assert not reaches_account(rs.client)
    later(app, 31)
    mb = MfaBrowser(app.test_client(), tenant)
    assert mb.password("alice", "zq8-kite") == "verify_totp"  # MFA applies at the login


def clock_of(app: Flask) -> float:
    return svc(app).clock.time()


def signed_in_with_totp(app: Flask, tenant: str, secret: str) -> FlaskClient:
    later(app, 30)
    client = app.test_client()
    mb = MfaBrowser(client, tenant)
    assert mb.password("alice", PASSWORD) == "verify_totp"
    mb.submit(code=oathtool(secret, clock_of(app)), action="verify")
    assert mb.finished
    return client


def test_the_flow_belongs_to_the_browser_that_opened_the_link(
    app: Flask, tenant: str, client: FlaskClient, outboxes: Outboxes
) -> None:
    with_totp(app, client, tenant)
    rs = Resetter(app.test_client(), outboxes.mail)
    rs.ask("alice")
    rs.open(rs.link("alice@acme.test"))
    assert rs.step == "verify_totp"
    thief = Resetter(app.test_client(), outboxes.mail)
    thief.html = rs.html
    thief.new_password(NEW)
    assert thief.status == 400 and "expired" in (thief.alert or "")
    later(app, 30 * 60)
    rs.submit(code="123456")
    assert rs.status == 400 and "expired" in (rs.alert or "")


@pytest.fixture
def webauthn_app(tmp_path: Path, outboxes: Outboxes) -> Flask:
    app = make_app(tmp_path, base_url=ORIGIN, **delivery_settings(outboxes))
    outboxes.attach(svc(app))
    return app


def test_a_security_key_holder_must_use_the_key(webauthn_app: Flask, outboxes: Outboxes) -> None:
    app = webauthn_app
    with svc(app).db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc", "required")
        directory.create_user(s, svc(app).passwords, t, "alice", "alice@acme.test", "member",
                              PASSWORD)  # fmt: skip
    client = app.test_client()
    mb = MfaBrowser(client, "acme")
    assert mb.password("alice", PASSWORD) == "enroll"
    mb.submit(factor="webauthn")
    key = SoftKey()
    mb.submit(credential=key.register(options_in(mb.html), ORIGIN), label="Soft key")
    codes = mb.backup_codes()
    logout(client)
    rs = Resetter(app.test_client(), outboxes.mail)
    rs.ask("alice")
    rs.open(rs.link("alice@acme.test"))
    assert rs.step == "verify_webauthn"
    assert 'value="backup"' not in rs.html  # no other method to switch to
    rs.submit(action="switch", factor="backup")
    assert rs.step == "verify_webauthn"
    rs.submit(action="verify", code=codes[0])
    assert rs.step == "verify_webauthn"
    rs.new_password(NEW)
    assert rs.status == 403
    rs.submit(credential=key.sign(options_in(rs.html), ORIGIN, uv=False))
    assert "Choose a new password" in rs.html, rs.alert
    rs.new_password(NEW)
    assert rs.status == 200 and 'id="reset-done"' in rs.html


def test_a_user_whose_factors_cannot_be_verified_is_sent_to_the_admin(
    tmp_path: Path, outboxes: Outboxes
) -> None:
    settings = delivery_settings(outboxes)
    settings.pop("sms_sender")  # this deployment sends no SMS
    app = make_app(tmp_path, **settings)
    outboxes.attach(svc(app))
    with svc(app).db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        for name in ("sam", "erin"):
            user = directory.create_user(s, svc(app).passwords, t, name, f"{name}@acme.test",
                                         "member", PASSWORD)  # fmt: skip
        sam = directory.require_user(s, t, "sam")
        credentials.add(s, svc(app).cipher, sam, "sms", "+447700900123", None, clock.now())
        # Erin's only factor is a code to the very address the reset link goes to.
        credentials.add(s, svc(app).cipher, user, "email", "Erin@acme.test", None, clock.now())
    for name in ("sam", "erin"):
        rs = Resetter(app.test_client(), outboxes.mail)
        rs.ask(name)
        rs.open(rs.link(f"{name}@acme.test"))
        assert rs.status == 403 and "Ask your administrator" in rs.html
        before = user_row(app, name).password_hash
        rs.html = rs.client.get("/t/acme/forgot-password").get_data(as_text=True)
        rs.new_password(NEW)
        assert rs.status == 400 and "expired" in (rs.alert or "")
        assert user_row(app, name).password_hash == before


def test_a_locked_user_gets_no_link(app: Flask, tenant: str, outboxes: Outboxes) -> None:
    set_user(app, "alice", status="locked")
    Resetter(app.test_client(), outboxes.mail).ask("alice")
    flushed(app, outboxes)
    assert outboxes.mail.to("alice@acme.test") == []


def test_the_per_ip_limit_holds_under_parallel_requests(
    app: Flask, tenant: str, outboxes: Outboxes
) -> None:
    """The counters are atomic increments: 30 requests at once from one address, 20 pass."""
    pages = [Resetter(app.test_client(), outboxes.mail) for _ in range(30)]
    forms = [rs.client.get("/t/acme/forgot-password", environ_base={"REMOTE_ADDR": "10.7.0.1"})
             for rs in pages]  # fmt: skip

    def ask(i: int) -> int:
        html = forms[i].get_data(as_text=True)
        data = {"csrf_token": csrf_of(html), "username": f"ghost{i}"}
        resp = pages[i].client.post("/t/acme/forgot-password", data=data,
                                    environ_base={"REMOTE_ADDR": "10.7.0.1"})  # fmt: skip
        return int(resp.status_code)

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = sorted(pool.map(ask, range(30)))
    assert codes == [200] * 20 + [429] * 10
