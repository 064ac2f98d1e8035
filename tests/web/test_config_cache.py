"""The configuration cache (idp.config_cache): tenants, clients and keys kept in memory,
dropped whenever any process commits a change to them. The two-node case is in
tests/cluster/test_cluster.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from idp import config_cache
from idp.config_cache import ConfigCache, FileVersion, StoreVersion
from idp.ephemeral import EphemeralUnavailable
from idp.ephemeral.redis_store import RedisStore
from idp.oidc import keys
from idp.store.db import Database
from idp.store.migrate import upgrade
from idp.store.models import Client, Tenant
from testkit.servers import free_port
from tests.cli_support import idp
from tests.conftest import svc
from tests.web.oidc_helpers import Rp, register

DOCUMENTS = ["/t/acme/jwks", "/t/acme/.well-known/openid-configuration"]


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def client_credentials(client: FlaskClient, rp: Rp, secret: str | None = None) -> int:
    resp = client.post(
        "/t/acme/token",
        data={"grant_type": "client_credentials"},
        headers=basic(rp.client_id, secret or rp.secret or ""),
    )
    return resp.status_code


@pytest.mark.parametrize("path", DOCUMENTS)
def test_documents_carry_a_strong_etag_and_answer_304_to_it(
    app: Flask, client: FlaskClient, tenant: str, path: str
) -> None:
    register(app)  # the tenant's keys
    first = client.get(path)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('"') and not etag.startswith("W/")
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    assert first.headers["Cache-Control"] == "public, max-age=300"
    assert first.headers["Access-Control-Allow-Origin"] == "*"


def test_a_key_rotation_changes_the_jwks_and_its_etag_at_once(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    register(app)
    before = client.get("/t/acme/jwks")
    with svc(app).db.session() as s:
        t = s.scalars(select(Tenant).where(Tenant.slug == "acme")).one()
        new = keys.rotate(s, svc(app).cipher, t, "RS256", grace=600)
        kid = new.kid
    after = client.get("/t/acme/jwks", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    assert kid in {k["kid"] for k in after.get_json()["keys"]}


def test_a_change_by_the_idp_command_in_another_process_is_seen_at_once(
    tmp_path: Path,
) -> None:
    """SQLite and the in-process store: the version is a file in the instance directory,
    which the command (its own services, as another process has) bumps."""
    from tests.conftest import make_app

    app = make_app(tmp_path)
    env = {"IDP_ENV": "development", "IDP_INSTANCE_PATH": str(tmp_path / "instance")}
    assert idp(env, "tenant", "create", "acme").returncode == 0
    rp = register(app)
    client = app.test_client()
    assert client_credentials(client, rp) == 200  # cached now
    rotated = idp(env, "client", "rotate-secret", "acme", rp.client_id, "--json")
    assert rotated.returncode == 0, rotated.stderr
    new_secret = json.loads(rotated.stdout)["client_secret"]
    assert client_credentials(client, rp) == 401  # the old secret, at once
    assert client_credentials(client, rp, new_secret) == 200
    assert idp(env, "tenant", "set-mfa", "acme", "--mode", "required").returncode == 0
    page = client.get("/t/acme/admin/")  # any tenant page reads the tenant again
    assert page.status_code in (302, 200)
    cached = svc(app).config.get(("tenant", "acme"), lambda: None)
    assert cached is not None and cached["mfa_mode"] == "required"


def test_bulk_updates_bump_the_version_too(app: Flask, tenant: str) -> None:
    version = svc(app).config.version
    seen = version.read()
    with svc(app).db.session() as s:
        s.execute(update(Tenant).where(Tenant.slug == "acme").values(remember_days=3))
    assert version.read() != seen


def test_a_rolled_back_change_and_other_tables_leave_the_version_alone(
    app: Flask, tenant: str
) -> None:
    from idp import directory

    version = svc(app).config.version
    seen = version.read()
    with pytest.raises(RuntimeError), svc(app).db.session() as s:
        s.scalars(select(Tenant)).one().remember_days = 5
        s.flush()
        raise RuntimeError("rolled back")
    with svc(app).db.session() as s:
        t = s.scalars(select(Tenant)).one()
        directory.create_user(s, svc(app).passwords, t, "bob", "bob@acme.test", "member",
                              "a long enough password 1")  # fmt: skip
    assert version.read() == seen


def test_a_change_whose_version_cannot_be_bumped_is_not_made(tmp_path: Path) -> None:
    """A shared store that is down: the bump before the commit fails, so the change is
    rolled back rather than left invisible to other nodes' caches."""
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(db.engine)
    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    config_cache.watch(db.listen, StoreVersion(dead))
    with pytest.raises(EphemeralUnavailable), db.session() as s:
        s.add(Tenant(slug="acme", name="Acme", created_at=0))
    with db.session() as s:
        assert s.scalars(select(Tenant)).all() == []


def test_a_value_loaded_while_the_cache_was_emptied_is_not_kept(tmp_path: Path) -> None:
    """A request that loaded old rows must not store them after another request saw a new
    version and emptied the cache."""
    version = FileVersion(tmp_path / "config.version")
    cache = ConfigCache(version, lambda: 0.0)
    cache.begin()

    def load_during_a_change() -> str:
        version.bump()
        cache.begin()  # another request sees the new version meanwhile
        return "old"

    assert cache.get("k", load_during_a_change) == "old"
    assert cache.get("k", lambda: "new") == "new"
    assert cache.get("k", lambda: "unused") == "new"


def test_entries_expire_when_asked_and_after_max_age(tmp_path: Path) -> None:
    now = [0.0]
    cache = ConfigCache(FileVersion(tmp_path / "v"), lambda: now[0])
    cache.begin()
    assert cache.get("a", lambda: 1, until=lambda _: 10.0) == 1
    assert cache.get("b", lambda: 1) == 1
    now[0] = 10.0
    assert cache.get("a", lambda: 2) == 2  # its own expiry
    assert cache.get("b", lambda: 2) == 1
    now[0] = config_cache.MAX_AGE + 0.1
    assert cache.get("b", lambda: 3) == 3  # the bound on a lost bump


def test_each_request_gets_its_own_copy_of_the_tenant(app: Flask, tenant: str) -> None:
    from idp.tenancy import load_tenant

    with app.test_request_context("/t/acme/login"):
        first = load_tenant("acme")
        first.mfa_factors.append("sms-from-a-bug")
        first.name = "changed in one request"
    with app.test_request_context("/t/acme/login"):
        second = load_tenant("acme")
    assert second is not first and second.name == "Acme Inc"
    assert "sms-from-a-bug" not in second.mfa_factors


def test_a_replayed_document_is_the_answer_flask_gave(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    """idp.document_cache: a plain GET of a kept document is answered without Flask, with
    the same headers and bytes; a GET with a cookie or a query string still goes to Flask."""
    from flask import request_started

    register(app)
    through_flask: list[str] = []

    def seen(sender: Flask, **_: object) -> None:
        from flask import request

        through_flask.append(request.path)

    def comparable(headers: dict[str, str]) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in headers.items() if k != "X-Request-Id")

    with request_started.connected_to(seen, app):
        for path in DOCUMENTS:
            first = client.get(path)
            again = client.get(path)
            assert again.status_code == 200 and again.data == first.data
            assert comparable(dict(again.headers)) == comparable(dict(first.headers))
            assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]
            client.get(path, query_string={"x": "1"})
            with_cookie = app.test_client()
            with_cookie.set_cookie("stepwise_session", "x")
            with_cookie.get(path)
    assert through_flask == [p for p in DOCUMENTS for _ in range(3)], through_flask


def test_a_retired_key_leaves_the_replayed_jwks_when_its_grace_ends(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    from tests.conftest import later

    register(app)
    old = {k["kid"] for k in client.get("/t/acme/jwks").get_json()["keys"]}
    with svc(app).db.session() as s:
        t = s.scalars(select(Tenant).where(Tenant.slug == "acme")).one()
        new = keys.rotate(s, svc(app).cipher, t, "RS256", grace=600).kid
    assert {k["kid"] for k in client.get("/t/acme/jwks").get_json()["keys"]} == old | {new}
    client.get("/t/acme/jwks")  # replayed now
    later(app, 601)
    after = {k["kid"] for k in client.get("/t/acme/jwks").get_json()["keys"]}
    assert new in after and len(after) == len(old)  # the retired RS256 key is gone


def test_documents_read_a_remote_version_at_most_once_a_second() -> None:
    """idp.document_cache saves a Redis round trip per request: a replayed document may
    trail a change by up to a second. Tenant, client and policy lookups never skip."""
    from idp.ephemeral.memory import MemoryStore

    now = [0.0]
    version = StoreVersion(MemoryStore(lambda: now[0]))
    cache = ConfigCache(version, lambda: now[0])
    cache.begin()
    cache.get("doc", lambda: "old")
    version.bump()
    cache.begin(within=1.0)
    assert cache.get("doc", lambda: "new") == "old"  # within the second: not read
    now[0] = 1.0
    cache.begin(within=1.0)
    assert cache.get("doc", lambda: "new") == "new"
    version.bump()
    cache.begin()  # a request's own lookup: always read
    assert cache.get("doc", lambda: "newer") == "newer"


def test_a_stale_cached_tenant_is_never_written_back(app: Flask, tenant: str) -> None:
    """A request's copy of the tenant may trail a change (a lost bump, a write the cache did
    not see). Writing through it must not undo that change: a password change, a wrong
    current password (the lock) and a reset used to merge the copy over the row."""
    from tests.password_support import change
    from tests.web.test_password_change import signed_in

    client = signed_in(app, tenant)
    assert client.get("/t/acme/account").status_code == 200  # the tenant is cached now
    with svc(app).db.engine.begin() as conn:  # a write the configuration cache cannot see
        conn.execute(
            update(Tenant).where(Tenant.slug == "acme").values(mfa_mode="required", remember_days=9)
        )
    change(client, "correct horse battery", "a brand new passphrase")
    with svc(app).db.session() as s:
        row = s.scalars(select(Tenant).where(Tenant.slug == "acme")).one()
        assert (row.mfa_mode, row.remember_days) == ("required", 9)


def test_no_module_merges_a_row_into_a_session() -> None:
    """``Session.merge`` copies every loaded attribute of the given object onto the row, so
    merging a cached copy writes its stale values back. Rows are read afresh instead
    (idp.tenancy.tenant_in, ``s.get``)."""
    root = Path(__file__).resolve().parents[2] / "idp"
    merging = [str(p.relative_to(root)) for p in root.rglob("*.py") if ".merge(" in p.read_text()]
    assert merging == []


def test_a_request_that_began_before_a_change_does_not_keep_what_it_loads(
    tmp_path: Path,
) -> None:
    """A request whose transaction reads an older snapshot may load the old row after
    another request saw the change and emptied the cache: it may use it (it began before the
    change), but it must not keep it for everyone else (the review of issue 17)."""
    import contextvars

    version = FileVersion(tmp_path / "config.version")
    cache = ConfigCache(version, lambda: 0.0)
    early = contextvars.copy_context()
    early.run(cache.begin)
    version.bump()  # a client's secret rotated and committed
    later_request = contextvars.copy_context()
    later_request.run(cache.begin)
    assert early.run(cache.get, "client", lambda: "old secret") == "old secret"
    assert later_request.run(cache.get, "client", lambda: "new secret") == "new secret"


def test_a_rolled_back_write_empties_this_process_cache(app: Flask, tenant: str) -> None:
    """What a transaction flushed may have been loaded into the cache by that transaction;
    when it rolls back, the cache forgets it."""
    config = svc(app).config
    config.begin()
    config.get(("tenant", "acme"), lambda: {"name": "kept"})
    with pytest.raises(RuntimeError), svc(app).db.session() as s:
        s.scalars(select(Tenant)).one().name = "never committed"
        s.flush()
        raise RuntimeError("rolled back")
    assert config.peek(("tenant", "acme")) is None


def test_a_kept_answer_has_no_date_of_its_own(app: Flask, client: FlaskClient, tenant: str) -> None:
    register(app)
    client.get("/t/acme/jwks")
    kept = svc(app).config.peek(("answer", "/t/acme/jwks"))
    assert kept is not None and kept.body and "date" not in {k.lower() for k, _ in kept.headers}


def test_reload_config_makes_a_change_made_outside_idp_apply(app: Flask, tenant: str) -> None:
    """An operator who edits the database with psql (say, a leaked client's secret) runs
    ``idp reload-config``: every node reads it again."""
    rp = register(app)
    client = app.test_client()
    assert client_credentials(client, rp) == 200  # cached
    with svc(app).db.engine.begin() as conn:  # outside idp: nothing bumps the version
        conn.execute(update(Client).where(Client.client_id == rp.client_id)
                     .values(secret_hash="0" * 64))  # fmt: skip
    assert client_credentials(client, rp) == 200  # still the cached row, for up to MAX_AGE
    env = {"IDP_ENV": "development", "IDP_INSTANCE_PATH": app.instance_path}
    reloaded = idp(env, "reload-config")
    assert reloaded.returncode == 0 and "emptied" in reloaded.stdout
    assert client_credentials(client, rp) == 401
