"""Hypothesis-generated parameters at the authorization, token, userinfo, revocation,
introspection and logout endpoints: always a protocol error, never a 5xx nor an error logged as
unhandled; nothing lost."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idp import directory
from testkit.unhandled import as_in_production, logged_errors
from tests.conftest import PASSWORD, make_app, svc
from tests.web.oidc_helpers import REDIRECT, code_flow, exchange, register

NAMES = ["response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "prompt",
         "max_age", "code_challenge", "code_challenge_method", "response_mode", "request",
         "request_uri", "acr_values", "id_token_hint", "grant_type", "code", "code_verifier",
         "refresh_token", "client_secret", "token", "token_type_hint", "access_token",
         "post_logout_redirect_uri", "x"]  # fmt: skip
VALUES = st.text(max_size=80) | st.sampled_from(
    ["code", "none login", "form_post", "fragment", "S256", "plain", "openid", "-1", "1e9",
     "authorization_code", "refresh_token", "client_credentials", REDIRECT, "\x00", "a" * 3000,
     "https://evil.example/", "eyJhbGciOiJub25lIn0.e30.", "%"]
)  # fmt: skip
PARAMS = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=8)


def test_oidc_endpoints_never_fail_with_5xx(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = as_in_production(make_app(tmp_path))
    services = svc(app)
    with services.db.session() as s:
        t = directory.create_tenant(s, "acme")
        directory.create_user(s, services.passwords, t, "alice", "a@acme.test", "member", PASSWORD)
    rp = register(app)
    client = app.test_client()
    basic = "Basic " + base64.b64encode(f"{rp.client_id}:{rp.secret}".encode()).decode()

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(params=PARAMS, real_client=st.booleans(), auth=st.sampled_from(
        [None, basic, "Basic !!", "Bearer x", "Basic " + base64.b64encode(b"\xff:\xfe").decode()]),
        raw=st.binary(max_size=200))  # fmt: skip
    def check(params: dict[str, str], real_client: bool, auth: str | None, raw: bytes) -> None:
        if real_client:
            params = {**params, "client_id": rp.client_id, "redirect_uri": REDIRECT}
        headers = {"Authorization": auth} if auth else {}
        for method, path in (("GET", "authorize"), ("POST", "authorize"), ("POST", "token"),
                             ("GET", "userinfo"), ("POST", "revoke"), ("POST", "introspect"),
                             ("GET", "end-session")):  # fmt: skip
            kwargs = {"query_string": params} if method == "GET" else {"data": params}
            resp = client.open(f"/t/acme/{path}", method=method, headers=headers, **kwargs)
            assert resp.status_code < 500, (path, params, resp.status_code)
            assert not logged_errors(caplog.records), (path, params)
            if path in ("token", "revoke", "introspect") and resp.status_code >= 400:
                assert "error" in resp.get_json(), (path, params)
        for path in ("token", "introspect"):
            resp = client.post(f"/t/acme/{path}", data=raw, headers=headers,
                               content_type="application/x-www-form-urlencoded")  # fmt: skip
            assert resp.status_code < 500, (path, raw, resp.status_code)
            assert not logged_errors(caplog.records), (path, raw)

    check()
    # Nothing stored was lost: the client still completes a full code flow.
    query, verifier = code_flow(app.test_client(), rp)
    assert exchange(app.test_client(), rp, query["code"], verifier).status_code == 200
