"""Log lines (issue 16, docs/operations/observability.md): with IDP_LOG_FORMAT=json every line
is one JSON object, the lines of a request name it (request id, tenant, route, method, status)
and the node, audit events are in the stream, and no password, code, token, secret or phone
number is ever in it (the text-mode checks are in test_login, test_mfa_login and test_oidc)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import logs
from idp.settings import load
from testkit.html import csrf_of
from testkit.totp import oathtool
from tests.conftest import PASSWORD, delivery_settings, make_app
from tests.mfa_helpers import MfaBrowser, logout, set_policy
from tests.outbox import Outboxes
from tests.web.oidc_helpers import code_flow, exchange, register, token

PHONE, PHONE_E164 = "+1 650-253-0000", "+16502530000"
TRACE = "trace-7f.1:a/b"  # a caller's X-Request-Id (a safe one)


@pytest.fixture
def app(tmp_path: Path, outboxes: Outboxes) -> Iterator[Flask]:
    root = logging.getLogger()
    level = root.level
    yield make_app(tmp_path, log_format="json", log_level="DEBUG", node_name="node-a",
                   access_log="on", **delivery_settings(outboxes))  # fmt: skip
    logs.unconfigure()
    root.setLevel(level)


def lines_of(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[dict[str, Any]]]:
    """Everything written to stderr so far, and its lines as objects (each must be one)."""
    logs.stop_access_log()  # its thread writes what it still holds
    text = capsys.readouterr().err
    return text, [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.delivery
def test_json_lines_name_their_request_and_never_hold_a_secret(
    app: Flask,
    client: FlaskClient,
    mb: MfaBrowser,
    outboxes: Outboxes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_policy(app, mfa_mode="required")
    mb.password("alice", PASSWORD)
    secret = mb.enroll_totp()
    codes = mb.backup_codes()
    logout(client)
    mb.password("alice", PASSWORD)
    right = oathtool(secret, time.time() + 30)
    mb.submit(code="000000" if right != "000000" else "111111", action="verify")
    mb.submit(code=right, action="verify")
    assert mb.finished
    # An SMS second factor: its delivery fails first (a warning inside a request), then works.
    outboxes.sms.down = True
    page = client.get("/t/acme/account").get_data(as_text=True)
    added = client.post("/t/acme/account/add", data={"csrf_token": csrf_of(page), "factor": "sms"})
    mb.url = added.headers["Location"]
    mb._page(client.get(mb.url))
    mb.submit(phone=PHONE, action="resend")
    outboxes.sms.down = False
    mb.submit(phone=PHONE, action="resend")
    sms_code = outboxes.sms.code(PHONE_E164, 0)
    mb.submit(code=sms_code, action="verify")
    # OpenID Connect: a code, its tokens and a refresh, one request with the caller's id.
    rp = register(app)
    query, verifier = code_flow(client, rp)
    tokens = exchange(client, rp, query["code"], verifier).get_json()
    token(client, rp, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    traced = client.get("/t/acme/account", headers={"X-Request-Id": TRACE})
    assert traced.headers["X-Request-Id"] == TRACE

    text, lines = lines_of(capsys)
    secrets = [PASSWORD, secret, right, sms_code, *codes, PHONE, PHONE_E164, query["code"],
               tokens["access_token"], tokens["refresh_token"], tokens["id_token"],
               rp.secret or "", verifier]  # fmt: skip
    for secret_text in secrets:
        assert secret_text not in text
    assert all(line["node"] == "node-a" and {"time", "level", "logger"} <= set(line)
               for line in lines)  # fmt: skip
    access = [line for line in lines if line["logger"] == "idp.access"]
    assert access and all(re.fullmatch(r"[0-9a-f]{32}|" + re.escape(TRACE), a["request_id"])
                          for a in access)  # fmt: skip
    assert len({a["request_id"] for a in access}) == len(access)  # one id per request
    (mine,) = [a for a in access if a["request_id"] == TRACE]
    assert (mine["method"], mine["path"], mine["status"]) == ("GET", "/t/acme/account", 200)
    assert (mine["route"], mine["tenant"]) == ("account.security", "acme")
    assert isinstance(mine["duration_ms"], float)
    # The token endpoint's request: its access line has no query or body; the redirect that
    # carried the code was logged by its path only.
    assert any(a["route"] == "oidc_api.token" and a["status"] == 200 for a in access)
    assert not any("?" in a["path"] for a in access)
    failed = [line for line in lines if "sms webhook delivery failed" in line["message"]]
    assert failed and failed[0]["level"] == "WARNING"
    assert failed[0]["tenant"] == "acme" and failed[0]["request_id"] and failed[0]["route"]
    audits = [line for line in lines if line["logger"] == "idp.audit"]
    signed_in = [a for a in audits if a["event"] == "login.succeeded"]
    # The first sign-in (TOTP set up), the second (TOTP), the flow that added the phone.
    assert len(signed_in) == 3 and all(a["tenant"] == "acme" for a in signed_in)
    assert all(isinstance(a["subject"], int) and a["result"] == "success" for a in signed_in)
    assert not any("factors" in a or "reason" in a for a in audits)  # details stay in the DB
    code_failed = [a for a in audits if a["event"] == "mfa.code_failed"]
    assert code_failed and code_failed[0]["result"] == "failure"


def test_request_ids_from_callers_are_kept_only_when_sane(client: FlaskClient) -> None:
    for given in ["abc-123", "Root=1-67891233-abcdef012345678912345678", "x" * 128]:
        assert client.get("/healthz", headers={"X-Request-Id": given}).headers[
            "X-Request-Id"] == given  # fmt: skip
    for given in ["x" * 129, "a b", "id\u00e9", "<script>", "a;b", ""]:
        made = client.get("/healthz", headers={"X-Request-Id": given}).headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made), made
    first, second = (client.get("/healthz").headers["X-Request-Id"] for _ in range(2))
    assert first != second


def test_text_lines_are_the_default_and_name_the_request_too() -> None:
    settings = load({"env": "development"})
    assert (settings.log_format, settings.access_log) == ("text", "off")
    record = logging.LogRecord("idp.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    logs.RequestFields().filter(record)
    line = logs.formatter(settings).format(record)
    assert line.endswith("INFO idp.x [-] hello you")  # outside a request: no id
    token = logs.CURRENT.set(logs.RequestFacts("rid-1", "GET", "health.healthz"))
    try:
        logs.RequestFields().filter(record)
    finally:
        logs.CURRENT.reset(token)
    assert logs.formatter(settings).format(record).endswith("INFO idp.x [rid-1] hello you")


@pytest.fixture
def access_logged(tmp_path: Path) -> Iterator[FlaskClient]:
    yield make_app(tmp_path, access_log="on").test_client()
    logs.unconfigure()


def test_the_access_log_leaves_out_query_strings_and_escapes_control_characters(
    access_logged: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = access_logged
    client.get("/t/acme/set-password?token=s3cr3t-link-token")
    client.get("/no%0Asuch%1bpage")
    logs.stop_access_log()
    written = capsys.readouterr().err.splitlines()
    access = [line for line in written if " idp.access " in line]
    assert len(access) == 2
    assert "GET /t/acme/set-password 404" in access[0] and "s3cr3t" not in access[0]
    assert "GET /no\\nsuch\\x1bpage 404" in access[1]
