"""Self-service sign-up through the forms (issue 15 "Sign-up"): off by default, allowed
domains, no account enumeration, the emailed code (wrong, expired, reused), rate limits,
password rules, a username clash told only after the address is verified, and the tenant's
MFA policy applied right after, with nothing above what was verified."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.signup import ADDRESS_LIMIT, IP_LIMIT
from idp.store.models import AuditEvent, User
from testkit.html import csrf_of
from testkit.servers import idp_env, live_idp
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD, later, svc
from tests.mfa_helpers import MfaBrowser, set_policy, set_user
from tests.outbox import CODE, Inbox, Outboxes, smtp_server
from tests.signup_support import NEW_PASSWORD, SignUp, open_signup
from tests.web.oidc_helpers import REDIRECT, authorize, exchange, pkce, query_of, register

pytestmark = pytest.mark.delivery
URLS = ("/t/acme/signup", "/t/acme/signup/code", "/t/acme/signup/password")


def user_of(app: Flask, username: str) -> User | None:
    with svc(app).db.session() as s:
        user = directory.find_user(s, directory.require_tenant(s, "acme"), username)
        if user is not None:
            s.expunge(user)
        return user


def events(app: Flask, name: str) -> list[AuditEvent]:
    with svc(app).db.session() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))
        s.expunge_all()
        return rows


def test_sign_up_is_off_by_default_every_url_is_a_404(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    login = client.get(client.get("/t/acme/login").headers["Location"]).get_data(as_text=True)
    assert "Create an account" not in login
    csrf = csrf_of(login)
    for url in URLS:
        assert client.get(url).status_code == 404, url
        assert client.post(url, data={"csrf_token": csrf, "email": "x@example.org"}).status_code \
            == 404, url  # fmt: skip
    open_signup(app)
    login = client.get(client.get("/t/acme/login").headers["Location"]).get_data(as_text=True)
    assert 'id="signup-link"' in login and "Create an account" in login
    assert client.get(URLS[0]).status_code == 200


def test_without_a_mail_sender_sign_up_is_unavailable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_app

    app = make_app(tmp_path)
    with svc(app).db.session() as s:
        directory.create_tenant(s, "acme", "Acme")
    open_signup(app)
    assert app.test_client().get(URLS[0]).status_code == 503


def test_allowed_domains_refuse_other_addresses(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app, signup_domains=["example.org", "xn--bcher-kva.ch"])
    su = SignUp(client)
    su.start("eve@example.com", "eve")
    assert su.status == 400
    assert su.alert == "Sign-up is open to addresses at: example.org, xn--bcher-kva.ch."
    assert 'value="eve@example.com"' in su.html  # what was typed is kept
    su.start("eve@sub.example.org", "eve")  # a subdomain is another domain
    assert su.status == 400
    su.start("eve@Bücher.ch", "eve")  # the same domain in Unicode
    assert su.status == 303
    su.start("Eve@EXAMPLE.org", "eve")
    assert su.status == 303
    assert [m["to"] for m in outboxes.mail.items] == ["eve@bücher.ch", "Eve@example.org"]


def test_bad_input_is_a_form_message(app: Flask, client: FlaskClient, tenant: str) -> None:
    open_signup(app)
    su = SignUp(client)
    for email, username, message in (
        ("not-an-address", "eve", "That is not a valid email address."),
        ("eve@example.org", "", "Choose a username"),
        ("eve@example.org", "e/ve", "Choose a username"),
        ("eve@example.org", "x" * 151, "Choose a username"),
    ):
        su.start(email, username)
        assert su.status == 400 and su.alert and su.alert.startswith(message), su.alert
    resp = client.post(URLS[0], data={"email": "eve@example.org", "username": "eve"})
    assert resp.status_code == 400  # no CSRF token
    assert client.post(URLS[0], data={"csrf_token": csrf_of(su.html), "email": "e" * 300,
                                      "username": "eve"}).status_code == 400  # fmt: skip


def test_a_taken_address_gets_the_same_answer_and_a_mail_without_a_code(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    set_user(app, "alice", email="alice@example.org", email_norm="alice@example.org")
    taken, new = SignUp(client), SignUp(app.test_client())
    taken.start("Alice@Example.org", "someone")
    new.start("bob@example.org", "bob")
    assert taken.status == new.status == 303
    assert taken.location == new.location == "/t/acme/signup/code"
    pages = [re.sub(r'name="csrf_token" value="[^"]+"', "", su.code_page().get_data(as_text=True))
             for su in (taken, new)]  # fmt: skip
    assert pages[0].replace("Alice@example.org", "X") == pages[1].replace("bob@example.org", "X")
    assert "We sent a code to" in pages[0]

    (mail,) = outboxes.mail.to("Alice@example.org")
    assert "already have an account" in mail["subject"] and not CODE.search(mail["text"])
    assert "/t/acme/login" in mail["text"] and "Forgot your password?" in mail["text"]
    assert outboxes.mail.code("bob@example.org")
    # Whatever the taken address's browser types, no code passes.
    for guess in ("000000", "123456"):
        taken.code(guess)
        assert taken.status == 400 and "not right" in (taken.alert or "")
    assert user_of(app, "someone") is None


def test_wrong_expired_and_reused_codes(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    su = SignUp(client)
    su.start("eve@example.org", "eve")
    code = outboxes.mail.code("eve@example.org")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    su.code(wrong)
    assert su.status == 400 and su.alert == "That code is not right. Check the email and try again."
    client.get("/t/acme/signup/password")  # not verified yet: back to the code
    assert su._read(client.get("/t/acme/signup/password")).status_code == 303
    assert su.location.endswith("/signup/code")

    later(app, 301)  # codes last 5 minutes
    su.code(code)
    assert su.status == 400 and su.alert == "That code has expired. Send a new code."
    su.resend()
    assert su.status == 200
    fresh = outboxes.mail.code("eve@example.org", 1)
    su.code(code)  # the first code no longer works
    assert su.status == 400
    su.code(fresh)
    assert su.status == 303 and su.location.endswith("/signup/password")
    su.password()
    assert su.status == 303 and "/t/acme/login?flow=" in su.location

    # Used: the sign-up is over, in this browser and any other.
    csrf = csrf_of(client.get("/t/acme/signup").get_data(as_text=True))
    again = client.post("/t/acme/signup/code", data={"csrf_token": csrf, "code": fresh,
                                                     "action": "verify"})  # fmt: skip
    assert again.status_code == 303 and again.headers["Location"].endswith("/t/acme/signup")
    other = SignUp(app.test_client())
    other.start("mallory@example.org", "mallory")
    other.code(fresh)
    assert other.status == 400


def test_attempts_on_one_code_are_limited(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    su = SignUp(client)
    su.start("eve@example.org", "eve")
    code = outboxes.mail.code("eve@example.org")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        su.code(wrong)
        assert "not right" in (su.alert or "")
    su.code(code)  # the right one, too late
    assert su.status == 400 and "expired" in (su.alert or "")


def test_resend_waits_a_moment(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    su = SignUp(client)
    su.start("eve@example.org", "eve")
    su.resend()
    assert su.status == 429 and "then ask for a new code" in (su.alert or "")
    assert len(outboxes.mail.to("eve@example.org")) == 1


def test_rate_limits_per_address_and_per_ip(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    su = SignUp(client)
    for _ in range(ADDRESS_LIMIT):
        su.start("eve@example.org", "eve")
        assert su.status == 303
    su.start("EVE@example.org", "eve")  # the same address, however written
    assert su.status == 429 and "this address" in (su.alert or "")
    assert len(outboxes.mail.to("eve@example.org")) == ADDRESS_LIMIT
    for n in range(IP_LIMIT - ADDRESS_LIMIT - 1):  # one counted above was refused
        su.start(f"user{n}@example.org", f"user{n}")
        assert su.status == 303, n
    su.start("late@example.org", "late")
    assert su.status == 429 and "this network" in (su.alert or "")
    assert outboxes.mail.to("late@example.org") == []
    later(app, 3601)
    su.start("late@example.org", "late")
    assert su.status == 303


def test_weak_and_blocklisted_passwords_are_refused_with_a_message(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    su = SignUp(client)
    su.start("eve@example.org", "evelyn")
    su.code(outboxes.mail.code("eve@example.org"))
    su.password("short pass 1")  # 12: the password is the account's only factor (15)
    assert su.status == 400 and "15" in (su.alert or "")
    su.password("1qaz2wsx3edc4rfv")
    assert su.status == 400 and "too common" in (su.alert or "")
    su.password("evelyn evelyn evelyn")
    assert su.status == 400 and su.alert
    su.password(NEW_PASSWORD, NEW_PASSWORD + "x")
    assert su.status == 400 and "differ" in (su.alert or "")
    assert user_of(app, "evelyn") is None
    su.password()
    assert su.status == 303
    user = user_of(app, "evelyn")
    assert user is not None and user.email_verified and user.role == "member"
    assert user.email == "eve@example.org" and user.email_norm == "eve@example.org"
    (event,) = events(app, "user.signed_up")
    assert event.subject_id == user.id and event.ip
    assert NEW_PASSWORD not in json.dumps(event.details)


def test_a_taken_username_is_told_only_after_the_address_is_verified(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    su = SignUp(client)
    su.start("eve@example.org", "Alice")  # alice exists: page 1 does not say so
    assert su.status == 303
    su.code(outboxes.mail.code("eve@example.org"))
    su.password()
    assert su.status == 409 and su.alert == "That username is taken. Choose another."
    assert 'name="username"' in su.html and 'id="username" name="username"' in su.html
    su.password(username="al/ice")
    assert su.status == 400 and "Choose a username" in (su.alert or "")
    su.password(username="alice2")
    assert su.status == 303
    alice2 = user_of(app, "alice2")
    alice = user_of(app, "alice")
    assert alice2 is not None and alice is not None and alice.email == "alice@acme.test"


def test_an_address_that_gets_an_account_meanwhile_is_told_after_verification(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    su = SignUp(client)
    su.start("eve@example.org", "eve")
    su.code(outboxes.mail.code("eve@example.org"))
    set_user(app, "alice", email="eve@example.org", email_norm="eve@example.org")
    su.password()
    assert su.status == 409 and "already" in su.html
    assert user_of(app, "eve") is None


def finish_to_login(client: FlaskClient, su: SignUp) -> MfaBrowser:
    """After the last sign-up page: the login flow it led to, as an MfaBrowser."""
    assert su.status == 303 and "/login?flow=" in su.location, (su.status, su.alert)
    mb = MfaBrowser(client, "acme")
    mb.url = su.location
    mb._page(client.get(su.location))
    return mb


def test_under_required_the_new_user_must_enrol_before_the_account_page(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    set_policy(app, mfa_mode="required")
    su = SignUp(client)
    su.through("eve@example.org", "eve", outboxes.mail.code)
    mb = finish_to_login(client, su)
    assert mb.step == "enroll" and "Skip" not in mb.html
    # Not signed in yet: the account page sends the browser to sign in.
    account = client.get("/t/acme/account")
    assert account.status_code == 302 and "/login" in account.headers["Location"]
    mb.enroll_totp()
    mb.backup_codes()
    assert mb.finished and mb.done_at == "/t/acme/account"
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert re.search(r'id="level">2<', page) and re.search(r'id="amr">pwd otp mfa<', page)
    assert events(app, "login.succeeded")


def test_under_optional_the_offer_appears_and_skip_signs_in_at_level_one(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    set_policy(app, mfa_mode="optional")
    su = SignUp(client)
    su.through("eve@example.org", "eve", outboxes.mail.code)
    mb = finish_to_login(client, su)
    assert mb.step == "offer"
    mb.submit(action="skip")
    assert mb.finished
    page = client.get("/t/acme/account").get_data(as_text=True)
    assert re.search(r'id="level">1<', page) and re.search(r'id="amr">pwd<', page)


def test_under_off_the_new_user_lands_signed_in_on_the_account_page(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    su = SignUp(client)
    su.through("eve@example.org", "eve", outboxes.mail.code)
    resp = client.get(su.location)
    assert resp.status_code == 302 and resp.headers["Location"] == "/t/acme/account"
    page = client.get("/t/acme/account")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert re.search(r'id="level">1<', html) and re.search(r'id="amr">pwd<', html)


def claims_of(jwt: str) -> dict[str, object]:
    payload = jwt.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    data: dict[str, object] = json.loads(base64.urlsafe_b64decode(padded))
    return data


def _signup_from_an_application(
    app: Flask, client: FlaskClient, outboxes: Outboxes
) -> tuple[MfaBrowser, str, object]:
    rp = register(app)
    verifier, challenge = pkce()
    resp = authorize(client, rp, code_challenge=challenge, code_challenge_method="S256")
    assert resp.status_code == 302 and "/login?flow=" in resp.headers["Location"]
    flow = resp.headers["Location"].rsplit("flow=", 1)[1]
    login = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert f"/t/acme/signup?flow={flow}" in login
    su = SignUp(client)
    su.through("eve@example.org", "eve", outboxes.mail.code, flow=flow)
    assert su.location == f"/t/acme/login?flow={flow}"  # the application's own sign-in
    return finish_to_login(client, su), verifier, rp


def test_an_application_sign_up_under_optional_gets_a_token_saying_pwd_only(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    set_policy(app, mfa_mode="optional")
    mb, verifier, rp = _signup_from_an_application(app, client, outboxes)
    assert mb.step == "offer"
    resp = client.post(mb.url, data={"csrf_token": csrf_of(mb.html), "step": "offer",
                                     "action": "skip"})  # fmt: skip
    while resp.status_code == 302 and not resp.headers["Location"].startswith(REDIRECT):
        resp = client.get(resp.headers["Location"])
    query = query_of(resp.headers["Location"])
    tokens = exchange(client, rp, query["code"], verifier).get_json()  # type: ignore[arg-type]
    claims = claims_of(tokens["id_token"])
    assert claims["amr"] == ["pwd"] and claims["acr"] == "urn:stepwise:loa:1"


def test_an_application_sign_up_under_required_gets_a_token_only_after_enrolment(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    set_policy(app, mfa_mode="required")
    mb, verifier, rp = _signup_from_an_application(app, client, outboxes)
    assert mb.step == "enroll"  # no code for the application before this
    mb.enroll_totp()
    mb.backup_codes()
    resp = client.get(mb.done_at)
    while resp.status_code == 302 and not resp.headers["Location"].startswith(REDIRECT):
        resp = client.get(resp.headers["Location"])
    query = query_of(resp.headers["Location"])
    tokens = exchange(client, rp, query["code"], verifier).get_json()  # type: ignore[arg-type]
    claims = claims_of(tokens["id_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "urn:stepwise:loa:2"


def test_the_pending_sign_up_belongs_to_its_browser(
    app: Flask, client: FlaskClient, tenant: str, outboxes: Outboxes
) -> None:
    open_signup(app)
    su = SignUp(client)
    su.start("eve@example.org", "eve")
    other = app.test_client()
    resp = other.get("/t/acme/signup/code")  # another browser has no sign-up in progress
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/t/acme/signup")
    assert "eve@example.org" not in su.location


# --- parallel requests on a live server (real granian; Redis with two workers) -------------
@pytest.fixture(params=["redis-2-workers", "memory-1-worker"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Inbox]]:
    with smtp_server() as (port, inbox):
        extra = {"IDP_MAIL_SENDER": "smtp", "IDP_SMTP_HOST": "127.0.0.1",
                 "IDP_SMTP_PORT": str(port), "IDP_SMTP_SECURITY": "none",
                 "IDP_MAIL_FROM": "Acme <id@acme.test>"}  # fmt: skip
        workers = 1
        if request.param.startswith("redis"):
            redis_url = request.getfixturevalue("redis_url")
            extra["IDP_REDIS_URL"] = redis_url.replace("/0", "/3")
            workers = 2
        env = idp_env(tmp_path / "instance", **extra)
        seed(env, "acme", "alice", PASSWORD)
        assert idp(env, "tenant", "set-accounts", "acme", "--signup", "on").returncode == 0
        with live_idp(env, workers=workers) as url:
            yield url, inbox


def burst(base: str, addresses: list[str]) -> list[int]:
    """Start one sign-up per address, each from its own browser, all at once."""
    sessions, tokens = [], []
    for _ in addresses:
        web = requests.Session()
        tokens.append(csrf_of(web.get(f"{base}/t/acme/signup", timeout=10).text))
        sessions.append(web)
    barrier = threading.Barrier(len(addresses))
    statuses: list[int] = []

    def go(web: requests.Session, csrf: str, address: str) -> None:
        form = {"csrf_token": csrf, "email": address, "username": address.partition("@")[0]}
        barrier.wait()
        resp = web.post(f"{base}/t/acme/signup", data=form, timeout=30, allow_redirects=False)
        statuses.append(resp.status_code)

    jobs = zip(sessions, tokens, addresses, strict=True)
    threads = [threading.Thread(target=go, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_parallel_sign_ups_stay_within_the_limits_per_address_and_per_ip(
    live: tuple[str, Inbox],
) -> None:
    base, inbox = live
    same = burst(base, ["eve@example.org"] * 8)
    assert sorted(same) == [303] * ADDRESS_LIMIT + [429] * (8 - ADDRESS_LIMIT)
    # Every one of the eight counted against the IP: two sign-ups are left for it.
    others = burst(base, [f"user{n}@example.org" for n in range(8)])
    assert sorted(others) == [303] * (IP_LIMIT - 8) + [429] * (16 - IP_LIMIT)
    accepted = ADDRESS_LIMIT + IP_LIMIT - 8
    for _ in range(100):  # the SMTP server may still be taking the last message
        if len(inbox.items) >= accepted:
            break
        time.sleep(0.05)
    assert len(inbox.to("eve@example.org")) == ADDRESS_LIMIT
    assert len(inbox.items) == accepted
