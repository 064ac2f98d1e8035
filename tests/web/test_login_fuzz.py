"""Whatever is posted to the login form, the answer is a page or a form error, never a 5xx."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idp import directory
from tests.conftest import PASSWORD, Browser, make_app, svc
from tests.html import csrf_of

fields = st.dictionaries(
    st.sampled_from(["username", "password", "step", "action", "csrf_token", "flow", "x" * 40]),
    st.text(max_size=300) | st.sampled_from(["identify", "password", "", "\x00", "a" * 2000]),
    max_size=6,
)


def test_login_post_never_fails_with_5xx(tmp_path: Path) -> None:
    app = make_app(tmp_path)
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
        assert "Traceback" not in resp.get_data(as_text=True)
        body = b"csrf_token=" + token.encode() + b"&step=identify&" + raw
        resp = b.client.post(url, data=body, content_type="application/x-www-form-urlencoded")
        assert resp.status_code < 500, (raw, resp.status_code)

    check()
    # Nothing stored was lost along the way: alice can still sign in.
    assert Browser(app.test_client(), "acme").login("alice", PASSWORD).status_code == 302
