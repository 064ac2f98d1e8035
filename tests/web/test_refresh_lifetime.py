"""Refresh-token families end: an absolute lifetime from their creation and an idle lifetime
from their last refresh, set per client (RFC 9700 section 4.14.2), ``offline_access`` too.

Time is moved the way the other tests move it: stored timestamps are made older, as if that
much time had passed (tests.mfa_helpers.age_flow_challenge); nothing sleeps.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.oidc import tokens
from idp.store.models import AuditEvent, Client, Grant, RefreshToken, Tenant, User
from testkit import servers
from tests.cli_support import idp
from tests.conftest import PASSWORD, make_app, svc
from tests.web.oidc_helpers import Rp, code_flow, exchange, register, token
from tests.web.test_clients import stored

DAY = 24 * 3600
PARALLEL = 8
SLACK = 30  # seconds the test itself may take


def age_families(app: Flask, seconds: int) -> None:
    """Make every token family and refresh token ``seconds`` older."""
    with svc(app).db.session() as s:
        for grant in s.scalars(select(Grant)):
            grant.created_at -= seconds
            grant.auth_time -= seconds
        for row in s.scalars(select(RefreshToken)):
            row.created_at -= seconds
            row.expires_at -= seconds
            row.used_at = None if row.used_at is None else row.used_at - seconds


def tokens_for(client: FlaskClient, rp: Rp, scope: str) -> dict[str, Any]:
    query, verifier = code_flow(client, rp, scope=scope)
    resp = exchange(client, rp, query["code"], verifier)
    assert resp.status_code == 200, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    assert "refresh_token" in body
    return body


def refresh(client: FlaskClient, rp: Rp, refresh_token: str) -> Any:
    return token(client, rp, grant_type="refresh_token", refresh_token=refresh_token)


def refreshed(client: FlaskClient, rp: Rp, refresh_token: str) -> str:
    resp = refresh(client, rp, refresh_token)
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["refresh_token"])


def refused(client: FlaskClient, rp: Rp, refresh_token: str) -> bool:
    resp = refresh(client, rp, refresh_token)
    body = resp.get_json()
    return (
        resp.status_code == 400 and body["error"] == "invalid_grant" and "access_token" not in body
    )


def introspect(client: FlaskClient, rp: Rp, refresh_token: str) -> dict[str, Any]:
    resp = client.post(
        "/t/acme/introspect",
        data={"token": refresh_token, "token_type_hint": "refresh_token"},
        auth=(rp.client_id, rp.secret),
    )
    assert resp.status_code == 200
    info: dict[str, Any] = resp.get_json()
    return info


SCOPES = ["openid profile", "openid offline_access"]


@pytest.mark.parametrize("scope", SCOPES)
def test_a_family_left_unused_for_the_idle_lifetime_ends(
    app: Flask, client: FlaskClient, tenant: str, scope: str
) -> None:
    rp = register(app)
    body = tokens_for(client, rp, scope)
    assert introspect(client, rp, body["refresh_token"])["active"]
    age_families(app, 14 * DAY + 1)  # default idle lifetime: 14 days
    assert introspect(client, rp, body["refresh_token"]) == {"active": False}
    assert refused(client, rp, body["refresh_token"])


@pytest.mark.parametrize("scope", SCOPES)
def test_a_family_in_use_ends_at_its_absolute_lifetime(
    app: Flask, client: FlaskClient, tenant: str, scope: str
) -> None:
    rp = register(app)
    current = tokens_for(client, rp, scope)["refresh_token"]
    for _ in range(2):  # refreshed every 13 days: never idle for 14
        age_families(app, 13 * DAY)
        current = refreshed(client, rp, current)
    # 26 days in: this token expires with the family at 30 days, not 14 days from now.
    info = introspect(client, rp, current)
    assert info["active"] and abs(info["exp"] - (time.time() + 4 * DAY)) < SLACK
    age_families(app, 4 * DAY + 1)
    assert introspect(client, rp, current) == {"active": False}
    assert refused(client, rp, current)


def test_a_family_past_its_lifetime_is_refused_whatever_its_token_says(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    rp = register(app)
    body = tokens_for(client, rp, "openid offline_access")
    with svc(app).db.session() as s:
        for grant in s.scalars(select(Grant)):
            grant.created_at -= 30 * DAY + 1  # the family began 30 days ago...
        for row in s.scalars(select(RefreshToken)):
            row.expires_at = int(time.time()) + 7 * DAY  # ...though its token row says otherwise
    assert introspect(client, rp, body["refresh_token"]) == {"active": False}
    assert refused(client, rp, body["refresh_token"])


def test_lifetimes_are_set_per_client(app: Flask, client: FlaskClient, tenant: str) -> None:
    rp = register(app, refresh_lifetime=3600, refresh_idle=1000)
    current = tokens_for(client, rp, "openid")["refresh_token"]
    info = introspect(client, rp, current)
    assert abs(info["exp"] - info["iat"] - 1000) <= 1  # the idle lifetime first
    for _ in range(3):
        age_families(app, 900)
        current = refreshed(client, rp, current)
    info = introspect(client, rp, current)  # 2700 s in: 900 s of the family are left
    assert info["active"] and abs(info["exp"] - info["iat"] - 900) <= SLACK
    age_families(app, 901)
    assert refused(client, rp, current)
    other = register(app, "Other")  # another client keeps the defaults
    assert introspect(client, other, tokens_for(client, other, "openid")["refresh_token"])["active"]


def test_client_create_sets_and_validates_the_lifetimes(cli_env: dict[str, str]) -> None:
    base = ["client", "create", "acme", "--name", "Web", "--redirect-uri", "https://rp.example/cb"]
    made = idp(cli_env, *base, "--refresh-lifetime", "86400", "--refresh-idle", "3600", "--json")
    assert made.returncode == 0, made.stderr
    row: Client = stored(cli_env, made.stdout.split('"client_id": "')[1].split('"')[0])
    assert (row.refresh_token_ttl, row.refresh_idle_ttl) == (86400, 3600)
    short = idp(cli_env, *base, "--refresh-lifetime", "600", "--json")
    row = stored(cli_env, short.stdout.split('"client_id": "')[1].split('"')[0])
    assert (row.refresh_token_ttl, row.refresh_idle_ttl) == (600, 600)  # idle capped
    plain = idp(cli_env, *base, "--json")
    row = stored(cli_env, plain.stdout.split('"client_id": "')[1].split('"')[0])
    assert (row.refresh_token_ttl, row.refresh_idle_ttl) == (30 * DAY, 14 * DAY)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--refresh-lifetime", "0"], "--refresh-lifetime must be 1 to 31536000 seconds"),
        (["--refresh-lifetime", "-5"], "--refresh-lifetime must be 1 to 31536000 seconds"),
        (["--refresh-lifetime", str(366 * DAY)], "--refresh-lifetime must be 1 to"),
        (["--refresh-lifetime", "ten"], "Invalid value for '--refresh-lifetime'"),
        (["--refresh-idle", "0"], "--refresh-idle must be 1 to"),
        (["--refresh-idle", str(31 * DAY)], "at most --refresh-lifetime"),
        (["--refresh-lifetime", "3600", "--refresh-idle", "3601"], "at most --refresh-lifetime"),
        (["--refresh-idle", "1e3"], "Invalid value for '--refresh-idle'"),
    ],
)
def test_bad_lifetimes_exit_2_with_one_line(
    cli_env: dict[str, str], options: list[str], message: str
) -> None:
    result = idp(
        cli_env, "client", "create", "acme", "--name", "Web",
        "--redirect-uri", "https://rp.example/cb", *options,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert idp(cli_env, "client", "list", "acme").stdout == ""  # nothing was registered


def alice_with_a_refresh_token(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> tuple[Flask, Rp, str]:
    """An app on ``database`` (sqlite, or a fresh PostgreSQL database), tenant acme with
    alice, a client, and a refresh token of alice's for it."""
    overrides: dict[str, Any] = {}
    if database == "postgres":
        server = request.getfixturevalue("postgres_url")
        overrides["database_url"] = servers.create_database(server, f"rt_{uuid.uuid4().hex[:12]}")
    app = make_app(tmp_path, **overrides)
    s_ = svc(app)
    with s_.db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        directory.create_user(s, s_.passwords, t, "alice", "alice@acme.test", "member", PASSWORD)
    rp = register(app)
    return app, rp, tokens_for(app.test_client(), rp, "openid offline_access")["refresh_token"]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_refresh_token_sent_in_parallel_is_redeemed_once(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    """RFC 9700 4.14.2 under parallel requests: of many refreshes with one token, exactly one
    gets tokens (the claim is one conditional UPDATE); the others are refused as reuse, which
    ends the family, the winner's new refresh token included."""
    app, rp, first = alice_with_a_refresh_token(request, tmp_path, database)
    s_ = svc(app)
    start, answers = threading.Barrier(PARALLEL), []

    def redeem() -> None:
        client = app.test_client()
        start.wait()
        answers.append(refresh(client, rp, first))

    threads = [threading.Thread(target=redeem) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [a for a in answers if a.status_code == 200]
    assert len(answers) == PARALLEL and len(won) == 1, [a.get_json() for a in answers]
    assert all(a.get_json()["error"] == "invalid_grant" for a in answers if a not in won)
    assert refused(app.test_client(), rp, won[0].get_json()["refresh_token"])
    s_.db.engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_family_ended_while_a_refresh_signs_issues_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    database: str,
) -> None:  # fmt: skip
    """An admin disables the user (which ends every family) after the refresh token was read
    and while the new tokens are signed: the claim sees the ended family, nothing is issued
    or stored, and the family's end is not recorded a second time as a reuse."""
    app, rp, first = alice_with_a_refresh_token(request, tmp_path, database)
    s_ = svc(app)
    real, disabled = tokens.sign, list[bool]()

    def sign(*args: Any, **kwargs: Any) -> str:
        """The real signature, with the disable committed (its own session, as another request
        would) during the first one: the interleaving the signing leaves room for."""
        if not disabled:
            disabled.append(True)
            with s_.db.session() as s:
                tenant = s.scalars(select(Tenant).where(Tenant.slug == "acme")).one()
                user = s.scalars(select(User).where(User.username == "alice")).one()
                directory.set_status(s, tenant, user, "disabled")
        return real(*args, **kwargs)

    monkeypatch.setattr(tokens, "sign", sign)
    with s_.db.session() as s:
        stored_before = len(s.scalars(select(RefreshToken)).all())
    resp = refresh(app.test_client(), rp, first)
    assert disabled and resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    assert "access_token" not in resp.get_json()
    with s_.db.session() as s:
        assert len(s.scalars(select(RefreshToken)).all()) == stored_before
        ended = [(e.event, e.details["reason"]) for e in s.scalars(
            select(AuditEvent).where(AuditEvent.event.like("oauth.grant%")))]  # fmt: skip
    assert ended == [("oauth.grants_revoked", "user_disabled")], ended
    s_.db.engine.dispose()
