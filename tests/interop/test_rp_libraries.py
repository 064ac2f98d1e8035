"""Real relying-party libraries complete the full round trip against a live Stepwise:
discovery, authorization code + PKCE (login through the HTML forms), token exchange, id_token
validation with signature checks on, userinfo, refresh, and RP-initiated logout."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from testkit.servers import stop
from testkit.signin import TotpUser, sign_in
from tests.conftest import PASSWORD
from tests.interop.conftest import CALLBACK, LOGGED_OUT, NODE_DIR, Live


def assert_logged_out(browser: requests.Session, logout_url: str) -> None:
    landed = sign_in(browser, logout_url, LOGGED_OUT, "alice", PASSWORD)
    assert parse_qs(urlsplit(landed).query) == {"state": ["bye-1"]}


def check_claims(live: Live, claims: dict[str, Any], userinfo: dict[str, Any]) -> None:
    assert claims["iss"] == live.issuer and claims["aud"] in (live.client_id, [live.client_id])
    assert claims["acr"] == "urn:stepwise:loa:1" and claims["amr"] == ["pwd"]
    assert isinstance(claims["auth_time"], int) and claims["sid"]
    assert userinfo["sub"] == claims["sub"] and userinfo["email"] == "alice@acme.test"
    assert userinfo["preferred_username"] == "alice"


def run_node_rp(
    live: Live, library: str, username: str = "alice", totp: TotpUser | None = None
) -> tuple[dict[str, Any], requests.Session]:
    """The node relying party's whole round trip, signing in as ``username``."""
    node = shutil.which("node")
    assert node, "node is required (scripts/test installs it)"
    assert (NODE_DIR / "node_modules" / library).is_dir(), "run npm ci in tests/interop/node"
    proc = subprocess.Popen(
        [node, "rp.mjs", library, live.issuer, live.client_id, live.client_secret, CALLBACK,
         LOGGED_OUT],
        cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdin and proc.stdout
    try:
        first = json.loads(proc.stdout.readline() or '{"error": "no output"}')
        assert "authorize" in first, first
        browser = requests.Session()
        landed = sign_in(browser, first["authorize"], CALLBACK, username, PASSWORD, totp)
        proc.stdin.write(landed + "\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline() or '{"error": "no output"}')
        assert "error" not in result, result
    finally:
        stop(proc)
    return result, browser


@pytest.mark.parametrize("library", ["openid-client", "oauth4webapi"])
def test_node_relying_party(live: Live, library: str) -> None:
    result, browser = run_node_rp(live, library)
    check_claims(live, result["claims"], result["userinfo"])
    assert result["rotated"] and result["refreshed"]["auth_time"] == result["claims"]["auth_time"]
    assert_logged_out(browser, result["logout"])


def test_authlib_client(live: Live) -> None:
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken

    meta = requests.get(live.issuer + "/.well-known/openid-configuration", timeout=10).json()
    rp = OAuth2Session(
        live.client_id, live.client_secret, scope="openid profile email", redirect_uri=CALLBACK,
        code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic",
    )  # fmt: skip
    verifier, nonce = generate_token(48), generate_token(20)
    url, _state = rp.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    browser = requests.Session()
    callback = sign_in(browser, url, CALLBACK, "alice", PASSWORD)
    token = rp.fetch_token(meta["token_endpoint"], authorization_response=callback,
                           code_verifier=verifier)  # fmt: skip
    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"], keys, claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": live.issuer},
                        "aud": {"essential": True, "value": live.client_id}},
        claims_params={"nonce": nonce, "access_token": token["access_token"]},
    )  # fmt: skip
    claims.validate()  # signature (above), iss, aud, exp, iat, nonce, at_hash
    userinfo = rp.get(meta["userinfo_endpoint"]).json()
    check_claims(live, dict(claims), userinfo)
    refreshed = rp.refresh_token(meta["token_endpoint"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    again = jwt.decode(refreshed["id_token"], keys)
    again.validate()
    assert again["auth_time"] == claims["auth_time"] and again["sub"] == claims["sub"]
    logout = meta["end_session_endpoint"] + "?" + "&".join(
        f"{k}={v}" for k, v in {"id_token_hint": refreshed["id_token"],
                                 "post_logout_redirect_uri": LOGGED_OUT,
                                 "state": "bye-1"}.items()
    )  # fmt: skip
    assert_logged_out(browser, logout)


def test_pyoidc_client(live: Live) -> None:
    from oic import rndstr
    from oic.oic import Client
    from oic.oic.message import AuthorizationResponse, RegistrationResponse
    from oic.utils.authn.client import CLIENT_AUTHN_METHOD

    rp = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    rp.provider_config(live.issuer)  # discovery; also loads the JWKS into the key jar
    rp.store_registration_info(RegistrationResponse(
        client_id=live.client_id, client_secret=live.client_secret, redirect_uris=[CALLBACK],
        post_logout_redirect_uris=[LOGGED_OUT], token_endpoint_auth_method="client_secret_basic",
    ))  # fmt: skip
    rp.redirect_uris = [CALLBACK]
    state, nonce = rndstr(), rndstr()
    challenge_args, verifier = rp.add_code_challenge()
    request = rp.construct_AuthorizationRequest(
        request_args={
            "client_id": live.client_id,
            "response_type": "code",
            "scope": ["openid", "profile", "email"],
            "nonce": nonce,
            "redirect_uri": CALLBACK,
            "state": state,
            **challenge_args,
        }
    )
    browser = requests.Session()
    callback = sign_in(
        browser, request.request(rp.authorization_endpoint), CALLBACK, "alice", PASSWORD
    )
    answer = rp.parse_response(AuthorizationResponse, info=urlsplit(callback).query,
                               sformat="urlencoded")  # fmt: skip
    assert answer["state"] == state
    token = rp.do_access_token_request(
        state=state, request_args={"code": answer["code"], "code_verifier": verifier,
                                   "redirect_uri": CALLBACK},
        authn_method="client_secret_basic",
    )  # fmt: skip
    id_token = token["id_token"]  # pyoidc verified its signature with the provider's JWKS
    assert id_token["nonce"] == nonce and id_token.jws_header["alg"] == "RS256"
    userinfo = rp.do_user_info_request(state=state)
    check_claims(live, id_token.to_dict(), userinfo.to_dict())
    refreshed = rp.do_access_token_refresh(state=state, authn_method="client_secret_basic")
    assert "error" not in refreshed.to_dict(), refreshed.to_dict()
    assert refreshed["refresh_token"] != token["refresh_token"]
    logout = rp.construct_EndSessionRequest(state=state, request_args={
        "post_logout_redirect_uri": LOGGED_OUT, "state": "bye-1"})  # fmt: skip
    assert_logged_out(browser, logout.request(rp.end_session_endpoint))


def test_openid_client_sees_the_second_factor_in_acr_and_amr(live: Live) -> None:
    """A user with MFA required enrols TOTP (codes from oathtool) during the login; the
    id_token that openid-client verifies says so, and the refreshed one keeps it."""
    result, _ = run_node_rp(live, "openid-client", "bob", TotpUser())
    claims = result["claims"]
    assert claims["acr"] == "urn:stepwise:loa:2" and claims["amr"] == ["pwd", "otp", "mfa"]
    assert result["refreshed"]["amr"] == ["pwd", "otp", "mfa"]
    assert result["userinfo"]["preferred_username"] == "bob"
