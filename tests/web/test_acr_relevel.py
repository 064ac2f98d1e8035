"""Raising the level of a tenant's own acr value (the console's Assurance page) does not lift
tokens issued before it: a token holds no more than its amr proves (review finding)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from tests.conftest import svc
from tests.mfa_helpers import MfaBrowser
from tests.web.oidc_helpers import register
from tests.web.test_step_up import add_acr, run

LOW = "https://acme.example/low"


def test_a_re_levelled_acr_value_does_not_lift_earlier_tokens(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    add_acr(app, LOW, 1)
    rp = register(app)
    got = run(MfaBrowser(client, "acme"), client, rp, {}, acr_values=LOW,
              scope="openid offline_access")  # fmt: skip
    with svc(app).db.session() as s:  # the policy now asks level 2 of everyone, at once
        t = directory.require_tenant(s, "acme")
        t.mfa_mode, t.mfa_apply = "required", "immediate"
    add_acr(app, LOW, 2)  # and an admin raises the value the tokens carry

    def introspect(token: str, hint: str) -> dict[str, Any]:
        body = {"token": token, "token_type_hint": hint}
        answer: dict[str, Any] = client.post(
            "/t/acme/introspect", data=body, auth=(rp.client_id, rp.secret)
        ).get_json()
        return answer

    assert introspect(got["access_token"], "access_token") == {"active": False}
    assert introspect(got["refresh_token"], "refresh_token") == {"active": False}
    refreshed = client.post("/t/acme/token", auth=(rp.client_id, rp.secret),
                            data={"grant_type": "refresh_token",
                                  "refresh_token": got["refresh_token"]})  # fmt: skip
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
