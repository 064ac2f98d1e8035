"""Per-tenant signing keys: created with the tenant, encrypted at rest, published, rotated."""

from __future__ import annotations

import time

import pytest
import requests
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp.app import create_app
from idp.oidc import keys
from idp.store.models import SigningKey, Tenant
from tests.cli_support import idp
from tests.conftest import services_for


def jwks_of(env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    app = create_app({"env": "development", "instance_path": env["IDP_INSTANCE_PATH"]})
    resp = app.test_client().get("/t/acme/jwks")
    assert resp.status_code == 200 and resp.mimetype == "application/jwk-set+json"
    data: dict = resp.get_json()  # type: ignore[type-arg]
    return data


def sign_with_active(cli_env: dict[str, str], alg: str) -> str:
    svc = services_for(cli_env)
    with svc.db.session() as s:
        tenant = s.scalars(select(Tenant).where(Tenant.slug == "acme")).one()
        row = keys.active_key(s, tenant, alg)
        assert row is not None
        key = keys.private_key(svc.cipher, tenant, row)
    token: str = jwt.encode(
        {"alg": alg, "kid": row.kid}, {"sub": "x", "iat": int(time.time())}, key
    )
    return token


def test_new_tenant_publishes_rs256_and_es256_public_keys_only(cli_env: dict[str, str]) -> None:
    doc = jwks_of(cli_env)
    assert sorted(k["alg"] for k in doc["keys"]) == ["ES256", "RS256"]
    for k in doc["keys"]:
        assert k["use"] == "sig" and k["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(k)  # no private parameters


def test_private_keys_are_encrypted_at_rest(cli_env: dict[str, str]) -> None:
    svc = services_for(cli_env)
    with svc.db.session() as s:
        rows = s.scalars(select(SigningKey)).all()
    assert len(rows) == 2
    for row in rows:
        assert b"PRIVATE KEY" not in row.private_key and b"BEGIN" not in row.private_key


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_rotation_keeps_earlier_tokens_verifiable_until_the_grace_ends(
    cli_env: dict[str, str], alg: str
) -> None:
    old_token = sign_with_active(cli_env, alg)
    assert jwt.decode(old_token, KeySet.import_key_set(jwks_of(cli_env))).claims["sub"] == "x"

    assert idp(cli_env, "keys", "rotate", "acme", "--alg", alg).returncode == 0
    new_token = sign_with_active(cli_env, alg)
    published = KeySet.import_key_set(jwks_of(cli_env))
    assert len([k for k in jwks_of(cli_env)["keys"] if k["alg"] == alg]) == 2
    jwt.decode(old_token, published)  # the retired key still verifies what it signed
    jwt.decode(new_token, published)
    listing = idp(cli_env, "keys", "list", "acme").stdout
    assert listing.count("active") == 2 and "retired" in listing

    assert idp(cli_env, "keys", "rotate", "acme", "--alg", alg, "--grace", "0").returncode == 0
    now_published = KeySet.import_key_set(jwks_of(cli_env))
    # The first key is still in its grace period; the second left at once; the third is active.
    assert len([k for k in jwks_of(cli_env)["keys"] if k["alg"] == alg]) == 2
    jwt.decode(old_token, now_published)
    with pytest.raises(InvalidKeyIdError):
        jwt.decode(new_token, now_published)


def test_init_gives_keys_to_tenants_that_lack_them_and_is_idempotent(
    cli_env: dict[str, str],
) -> None:
    svc = services_for(cli_env)
    from idp import directory

    with svc.db.session() as s:
        directory.create_tenant(s, "bare")  # created without keys
    assert idp(cli_env, "init").returncode == 0
    assert idp(cli_env, "init").returncode == 0
    with svc.db.session() as s:
        tenant = directory.require_tenant(s, "bare")
        assert sorted(k.alg for k in keys.published(s, tenant, int(time.time()))) == [
            "ES256",
            "RS256",
        ]


def test_keys_cli_errors(cli_env: dict[str, str]) -> None:
    bad = idp(cli_env, "keys", "rotate", "acme", "--alg", "HS256")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert idp(cli_env, "keys", "rotate", "nope").returncode == 2


def test_jwks_over_http_and_unknown_tenant(cli_env: dict[str, str]) -> None:
    from testkit.servers import live_idp

    with live_idp(cli_env) as base:
        resp = requests.get(f"{base}/t/acme/jwks", timeout=5)
        assert resp.status_code == 200 and len(resp.json()["keys"]) == 2
        assert "max-age" in resp.headers["Cache-Control"]
        assert requests.get(f"{base}/t/nope/jwks", timeout=5).status_code == 404
