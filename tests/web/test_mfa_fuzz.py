"""Whatever is posted to a second-factor step, the answer is a page or a form error, never a
5xx nor an error logged as unhandled, and nothing the user already set up is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from idp import directory
from idp.store.models import BackupCode, Credential
from testkit.html import csrf_of
from testkit.unhandled import as_in_production, logged_errors
from tests.conftest import PASSWORD, delivery_settings, make_app, svc
from tests.mfa_helpers import MfaBrowser
from tests.outbox import Outboxes

STEPS = [
    "offer",
    "enroll",
    "choose",
    "verify_totp",
    "verify_sms",
    "verify_email",
    "verify_backup",
    "enroll_totp",
    "enroll_sms",
    "enroll_email",
    "backup_codes",
    "",
]
VALUES = [
    "skip",
    "resend",
    "switch",
    "back",
    "verify",
    "totp",
    "sms",
    "email",
    "backup",
    "totp:1",
    "sms:1",
    "sms:-1",
    "totp:99999999999999999999",
    "+16502530000",
    "\x00",
    "a" * 2000,
    "000000",
]
fields = st.dictionaries(
    st.sampled_from(
        [
            "code",
            "next_code",
            "factor",
            "action",
            "phone",
            "email",
            "step",
            "confirm",
            "password",
            "username",
        ]
    ),
    st.text(max_size=200) | st.sampled_from(STEPS + VALUES),
    max_size=6,
)


def stored(app: object) -> tuple[int, int]:
    with svc(app).db.session() as s:  # type: ignore[arg-type]
        creds = s.scalar(select(func.count()).select_from(Credential)) or 0
        codes = s.scalar(select(func.count()).select_from(BackupCode)) or 0
        return creds, codes


@pytest.mark.parametrize("start", ["enroll", "verify"])
def test_second_factor_posts_never_fail_with_5xx(
    tmp_path: Path, outboxes: Outboxes, start: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = as_in_production(make_app(tmp_path, **delivery_settings(outboxes)))
    with svc(app).db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc", "required")
        directory.create_user(s, svc(app).passwords, t, "alice", "a@acme.test", "member", PASSWORD)
    mb = MfaBrowser(app.test_client(), "acme")
    if start == "verify":
        mb.password("alice", PASSWORD)
        mb.enroll_totp()
        mb.backup_codes()
        account = mb.client.get("/t/acme/account").get_data(as_text=True)
        mb.client.post("/t/acme/logout", data={"csrf_token": csrf_of(account)})
    before = stored(app)
    mb.password("alice", PASSWORD)
    url, token = mb.url, csrf_of(mb.html)

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=fields)
    def check(data: dict[str, str]) -> None:
        resp = mb.client.post(url, data={"csrf_token": token, **data})
        assert resp.status_code < 500, (data, resp.status_code)
        assert not logged_errors(caplog.records), data

    check()
    if start == "verify":
        assert stored(app) == before == (1, 10)
