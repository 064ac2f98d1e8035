"""Whatever is posted to the login form, the answer is a page or a form error, never a 5xx,
and no error is logged as unhandled."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idp import directory
from testkit.html import csrf_of
from testkit.unhandled import as_in_production, logged_errors
from tests.conftest import PASSWORD, Browser, make_app, svc

fields = st.dictionaries(
    st.sampled_from(["username", "password", "step", "action", "csrf_token", "flow", "x" * 40]),
    st.text(max_size=300) | st.sampled_from(["identify", "password", "", "\x00", "a" * 2000]),
    max_size=6,
)


def test_login_post_never_fails_with_5xx(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = as_in_production(make_app(tmp_path))
    services = svc(app)
    with services.db.session() as s:
        t = directory.create_tenant(s, "acme")
        directory.create_user(s, services.passwords, t, "alice", "a@acme.test", "member", PASSWORD)
    b = Browser(app.test_client(), "acme")
    url, html = b.open_login()
    token = csrf_of(html)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=fields, keep_token=st.booleans(), raw=st.binary(max_size=200))
    def check(data: dict[str, str], keep_token: bool, raw: bytes) -> None:
        if keep_token:
            data = {**data, "csrf_token": token}
        resp = b.client.post(url, data=data)
        assert resp.status_code < 500, (data, resp.status_code)
        assert not logged_errors(caplog.records), data
        body = b"csrf_token=" + token.encode() + b"&step=identify&" + raw
        resp = b.client.post(url, data=body, content_type="application/x-www-form-urlencoded")
        assert resp.status_code < 500, (raw, resp.status_code)
        assert not logged_errors(caplog.records), raw

    check()
    # Nothing stored was lost along the way: alice can still sign in.
    assert Browser(app.test_client(), "acme").login("alice", PASSWORD).status_code == 302
