"""Every claim of the scopes openid profile email phone groups, in the id_token and from
UserInfo, as real relying-party libraries see them after their own checks (signatures, iss,
aud, nonce, at_hash): node openid-client and oauth4webapi, and Python authlib."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from testkit import servers
from testkit.signin import sign_in
from tests import cli_support
from tests.conftest import PASSWORD
from tests.interop.conftest import CALLBACK, LOGGED_OUT, NODE_DIR
from tests.interop.profile_support import ALICE, ALICE_CLAIMS, PHONE, set_profile

SCOPE = "openid profile email phone groups"
PROTOCOL = {"iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "acr", "amr", "sid",
            "at_hash", "nonce"}  # fmt: skip


@dataclass(frozen=True)
class Live:
    issuer: str
    client_id: str
    client_secret: str
    updated_at: int


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = servers.idp_env(tmp_path_factory.mktemp("claims") / "instance")
    cli_support.seed(env, "acme", "alice", PASSWORD)
    updated_at = set_profile(env, "alice", phone=PHONE, **ALICE)
    with servers.live_idp(env) as base:
        out = cli_support.idp(
            {**env, "IDP_BASE_URL": base}, "client", "create", "acme", "--name", "Claims RP",
            "--redirect-uri", CALLBACK, "--post-logout-uri", LOGGED_OUT, "--json",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        creds = json.loads(out.stdout)
        yield Live(f"{base}/t/acme", creds["client_id"], creds["client_secret"], updated_at)


def check(live: Live, id_token: dict[str, Any], userinfo: dict[str, Any]) -> None:
    expected = {**ALICE_CLAIMS, "updated_at": live.updated_at}
    assert {k: v for k, v in id_token.items() if k not in PROTOCOL} == expected
    assert {k: v for k, v in userinfo.items() if k != "sub"} == expected
    assert userinfo["sub"] == id_token["sub"]


@pytest.mark.parametrize("library", ["openid-client", "oauth4webapi"])
def test_node_relying_party_sees_every_claim(live: Live, library: str) -> None:
    node = shutil.which("node")
    assert node, "node is required (scripts/test installs it)"
    assert (NODE_DIR / "node_modules" / library).is_dir(), "run npm ci in tests/interop/node"
    proc = subprocess.Popen(
        [node, "rp.mjs", library, live.issuer, live.client_id, live.client_secret, CALLBACK,
         LOGGED_OUT],
        cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "RP_SCOPE": SCOPE},
    )  # fmt: skip
    assert proc.stdin and proc.stdout
    try:
        first = json.loads(proc.stdout.readline() or '{"error": "no output"}')
        assert "authorize" in first, first
        assert "groups" in first["authorize"]  # the scope asked for is the one under test
        landed = sign_in(requests.Session(), first["authorize"], CALLBACK, "alice", PASSWORD)
        proc.stdin.write(landed + "\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline() or '{"error": "no output"}')
        assert "error" not in result, result
    finally:
        servers.stop(proc)
    check(live, result["claims"], result["userinfo"])
    refreshed = result["refreshed"]  # a refreshed id_token states the same claims
    assert {k: v for k, v in refreshed.items() if k not in PROTOCOL} == {
        **ALICE_CLAIMS, "updated_at": live.updated_at}  # fmt: skip


def test_authlib_client_sees_every_claim(live: Live) -> None:
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken, UserInfo

    meta = requests.get(live.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert "groups" in meta["scopes_supported"] and "groups" in meta["claims_supported"]
    rp = OAuth2Session(
        live.client_id, live.client_secret, scope=SCOPE, redirect_uri=CALLBACK,
        code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic",
    )  # fmt: skip
    verifier, nonce = generate_token(48), generate_token(20)
    url, _state = rp.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    callback = sign_in(requests.Session(), url, CALLBACK, "alice", PASSWORD)
    token = rp.fetch_token(meta["token_endpoint"], authorization_response=callback,
                           code_verifier=verifier)  # fmt: skip
    assert set(token["scope"].split()) == set(SCOPE.split())
    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"], keys, claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": live.issuer},
                        "aud": {"essential": True, "value": live.client_id}},
        claims_params={"nonce": nonce, "access_token": token["access_token"]},
    )  # fmt: skip
    claims.validate()  # signature (above), iss, aud, exp, iat, nonce, at_hash
    userinfo = UserInfo(rp.get(meta["userinfo_endpoint"]).json())
    check(live, dict(claims), dict(userinfo))
    assert userinfo.phone_number == PHONE and userinfo.email_verified is True
