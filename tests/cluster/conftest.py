"""One cluster per module: two Stepwise nodes of two workers behind haproxy, on a fresh
PostgreSQL database and a Redis database of their own. Tenant ``acme`` and an admin API
client come from the real ``idp`` command; the relying party, the SAML SP and the users from
the admin API, through the proxy."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from testkit import servers
from testkit.cluster import Cluster, cluster
from tests.cluster import saml_sp
from tests.conftest import PASSWORD

REDIS_DB = 8  # a Redis database no other test uses (others: grep for '.replace("/0"')
CALLBACK = "http://127.0.0.1:9/cb"  # never contacted: the test reads the redirect itself
# Users: OIDC with TOTP, the node killed mid-flow, SAML step-up, WebAuthn in Chromium. All
# but the SAML one must use two factors, so their first sign-in enrols one.
MFA_USERS = ("olga", "kim", "walt")
USERS = (*MFA_USERS, "sam")


@dataclass(frozen=True)
class Deployment:
    cluster: Cluster
    issuer: str
    client_id: str
    client_secret: str


def _check(env: dict[str, str], *args: str) -> str:
    result = servers.idp(env, *args)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def _prepare(found: dict[str, str]) -> Callable[[dict[str, str]], None]:
    def prepare(env: dict[str, str]) -> None:
        """Tenant ``acme`` and a client of its admin API, through the real ``idp`` command."""
        _check(env, "tenant", "create", "acme")
        ops = _check(env, "client", "create", "acme", "--name", "Ops", "--admin-api", "--json")
        found.update(json.loads(ops))

    return prepare


def _provision(base: str, ops: dict[str, str]) -> dict[str, str]:
    """The relying party, the SAML SP and the users, through the admin API behind the proxy
    (a request each, where the ``idp`` command would be a Python start-up each); returns
    the relying party's credentials."""
    http = requests.Session()
    token = http.post(
        f"{base}/t/acme/token", auth=(ops["client_id"], ops["client_secret"]),
        data={"grant_type": "client_credentials", "scope": "stepwise:admin"}, timeout=10,
    )  # fmt: skip
    assert token.status_code == 200, token.text
    http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    api = f"{base}/t/acme/admin/api"

    def call(method: str, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
        resp = http.request(method, api + path, json=body, timeout=10)
        assert resp.status_code == status, resp.text
        answer: dict[str, Any] = resp.json()
        return answer

    rp = call("POST", "/clients", {"name": "Cluster RP", "redirect_uris": [CALLBACK]}, 201)
    sp = {"metadata": saml_sp.metadata(base), "sign_response": True}
    assert call("POST", "/saml-sps", sp, 201)["entity_id"] == saml_sp.ENTITY
    for name in USERS:
        call("POST", "/users", {"username": name, "email": f"{name}@acme.test",
                                "password": PASSWORD}, 201)  # fmt: skip
    for name in MFA_USERS:
        assert call("PUT", f"/users/{name}/mfa", {"required": True}, 200)["mfa_required"]
    http.close()
    return {"client_id": rp["client_id"], "client_secret": rp["client_secret"]}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("cluster")
    database = servers.create_database(postgres_url, f"cluster_{uuid.uuid4().hex[:12]}")
    ops: dict[str, str] = {}
    redis = redis_url.replace("/0", f"/{REDIS_DB}")
    with cluster(tmp, database, redis, prepare=_prepare(ops)) as running:
        rp = _provision(running.base_url, ops)
        yield Deployment(
            running, f"{running.base_url}/t/acme", rp["client_id"], rp["client_secret"]
        )
