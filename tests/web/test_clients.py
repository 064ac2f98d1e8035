"""OpenID Connect client registry through the real ``idp client`` commands."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select

from idp.directory import DirectoryError
from idp.oidc.clients import check_redirect_uri, new_client_id, secret_matches
from idp.store.models import Client
from tests.cli_support import idp
from tests.conftest import services_for


def stored(env: dict[str, str], client_id: str) -> Client:
    with services_for(env).db.session() as s:
        found: Client = s.scalars(select(Client).where(Client.client_id == client_id)).one()
        return found


def register(env: dict[str, str], name: str, *options: str) -> dict[str, str | None]:
    """``idp client create acme --name NAME OPTIONS... --json``; returns the printed credentials."""
    out = idp(env, "client", "create", "acme", "--name", name, *options, "--json")
    assert out.returncode == 0, out.stderr
    creds: dict[str, str | None] = json.loads(out.stdout)
    return creds


def test_create_confidential_client_json_and_secret_only_hashed(cli_env: dict[str, str]) -> None:
    creds = register(
        cli_env,
        "Web",
        "--redirect-uri",
        "https://rp.example/cb",
        "--redirect-uri",
        "http://127.0.0.1:9000/cb",
    )
    assert set(creds) == {"client_id", "client_secret"} and len(creds["client_secret"]) >= 43
    client = stored(cli_env, creds["client_id"])
    assert client.secret_hash == hashlib.sha256(creds["client_secret"].encode()).hexdigest()
    assert creds["client_secret"] not in json.dumps(
        {c.name: str(getattr(client, c.name)) for c in Client.__table__.columns}
    )
    assert secret_matches(client, creds["client_secret"])
    assert not secret_matches(client, creds["client_secret"][:-1] + "x")
    assert client.redirect_uris == ["https://rp.example/cb", "http://127.0.0.1:9000/cb"]
    assert client.grant_types == ["authorization_code", "refresh_token", "client_credentials"]


def test_public_client_has_no_secret(cli_env: dict[str, str]) -> None:
    creds = register(cli_env, "SPA", "--public", "--redirect-uri", "com.example.app:/callback")
    assert creds["client_secret"] is None
    client = stored(cli_env, creds["client_id"])
    assert client.public and client.secret_hash is None and not secret_matches(client, "")
    rotate = idp(cli_env, "client", "rotate-secret", "acme", creds["client_id"])
    assert rotate.returncode == 2 and "is public" in rotate.stderr


def test_rotate_secret_invalidates_the_old_one_and_delete_removes(cli_env: dict[str, str]) -> None:
    creds = register(cli_env, "Web", "--redirect-uri", "https://rp.example/cb")
    new = json.loads(
        idp(cli_env, "client", "rotate-secret", "acme", creds["client_id"], "--json").stdout
    )
    client = stored(cli_env, creds["client_id"])
    assert secret_matches(client, new["client_secret"])
    assert not secret_matches(client, creds["client_secret"])
    listing = idp(cli_env, "client", "list", "acme").stdout
    assert creds["client_id"] in listing and "confidential" in listing
    assert idp(cli_env, "client", "delete", "acme", creds["client_id"]).returncode == 0
    assert creds["client_id"] not in idp(cli_env, "client", "list", "acme").stdout
    gone = idp(cli_env, "client", "delete", "acme", creds["client_id"])
    assert gone.returncode == 2 and "no client" in gone.stderr


@pytest.mark.parametrize(
    "uri",
    [
        "http://rp.example/cb",  # plain http off loopback
        "https://rp.example/cb#frag",
        "/relative/cb",
        "https:///nohost",
        "javascript:alert(1)",
        "https://rp.example/c b",
        "http://127.0.0.1.evil.example/cb",
        "http://localhost@evil.example/cb",
    ],
)
def test_bad_redirect_uris_are_refused_with_one_line(cli_env: dict[str, str], uri: str) -> None:
    out = idp(cli_env, "client", "create", "acme", "--name", "Bad", "--redirect-uri", uri)
    assert (
        out.returncode == 2 and out.stderr.startswith("idp: ") and len(out.stderr.splitlines()) == 1
    )
    assert idp(cli_env, "client", "list", "acme").stdout == ""  # nothing half-registered


def test_redirect_uri_rules_accept_the_standard_forms() -> None:
    for ok in [
        "https://rp.example/cb?x=1",
        "http://localhost:8080/cb",
        "http://[::1]/cb",
        "com.example.app:/oauth2redirect",
    ]:
        assert check_redirect_uri(ok) == ok
    with pytest.raises(DirectoryError):
        check_redirect_uri("http://localhost.evil.example/cb")


def test_client_errors_exit_2(cli_env: dict[str, str]) -> None:
    assert (
        idp(
            cli_env,
            "client",
            "create",
            "nope",
            "--name",
            "x",
            "--redirect-uri",
            "https://a.example/cb",
        ).returncode
        == 2
    )
    missing = idp(cli_env, "client", "create", "acme", "--name", "x")
    assert missing.returncode == 2 and "--redirect-uri" in missing.stderr
    level = idp(
        cli_env,
        "client",
        "create",
        "acme",
        "--name",
        "x",
        "--redirect-uri",
        "https://a.example/",
        "--min-level",
        "4",
    )
    assert level.returncode == 2 and "--min-level" in level.stderr


def test_client_ids_are_safe_cli_arguments() -> None:
    # A base64url id starts with "-" once in 64 and then reads as an option to `idp client ...`.
    ids = {new_client_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 32 and i.isalnum() for i in ids)
