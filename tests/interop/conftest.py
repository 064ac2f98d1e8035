"""A live Stepwise (``idp serve``) with tenant ``acme``, user alice and registered clients,
for real relying-party libraries to talk to over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit import servers
from tests import cli_support
from tests.conftest import PASSWORD

CALLBACK = "http://127.0.0.1:9/cb"  # never contacted: the test reads the redirect itself
LOGGED_OUT = "http://127.0.0.1:9/bye"


@dataclass(frozen=True)
class Live:
    base: str
    issuer: str
    client_id: str
    client_secret: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = servers.idp_env(tmp_path_factory.mktemp("interop") / "instance")
    cli_support.seed(env, "acme", "alice", PASSWORD)
    cli_support.add_user(env, "acme", "bob", PASSWORD)
    assert cli_support.idp(env, "user", "require-mfa", "acme", "bob").returncode == 0
    with servers.live_idp(env) as base:
        out = cli_support.idp(
            {**env, "IDP_BASE_URL": base}, "client", "create", "acme", "--name", "Interop RP",
            "--redirect-uri", CALLBACK, "--post-logout-uri", LOGGED_OUT, "--json",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        creds = json.loads(out.stdout)
        yield Live(base, f"{base}/t/acme", creds["client_id"], creds["client_secret"])


NODE_DIR = Path(__file__).parent / "node"
