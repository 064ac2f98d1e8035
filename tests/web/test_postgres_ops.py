"""PostgreSQL for several nodes: the pool's settings reach the server, a slow statement is
cancelled, ``idp init`` started on several nodes at once initialises once, and a database
restart is a blip: clear 503 answers on every surface while it is down, then service again
without restarting Stepwise (docs/operations/postgres.md)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY
from requests import Request
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from idp import directory
from idp.app import build_services
from idp.clock import SettableClock
from idp.errors import database_down
from idp.oidc import keys
from idp.oidc.keys import ALGORITHMS
from idp.settings import load
from idp.store.db import Database, PoolSettings
from idp.store.migrate import alembic_config, upgrade
from idp.store.models import SigningKey
from testkit import servers
from testkit.pg_control import PgServer, restartable_postgres
from testkit.signin import sign_in
from tests.conftest import PASSWORD, make_app, svc

pytestmark = pytest.mark.postgres

# Each request's bound while the database is down: connection refused answers at once, and
# the connect timeout (1 s here) bounds a server that does not answer. Far above both, so a
# hang fails the test without the test timing anything.
BOUND = 15
NODES = 4


def fresh_database(server_url: str) -> str:
    return servers.create_database(server_url, f"ops_{uuid.uuid4().hex[:12]}")


def test_pool_settings_reach_the_server_and_a_slow_statement_is_cancelled(
    postgres_url: str,
) -> None:
    url = fresh_database(postgres_url)
    settings = load(
        {
            "database_url": url,
            "db_pool_size": 2,
            "db_max_overflow": 1,
            "db_statement_timeout_ms": 300,
            "node_name": "node-a",
        },
        environ={},
    )
    db = Database.for_settings(settings)
    assert (db.engine.pool.size(), db.engine.pool._max_overflow) == (2, 1)  # type: ignore[attr-defined]
    with db.session() as s:
        assert s.scalar(text("SHOW statement_timeout")) == "300ms"
        assert s.scalar(text("SHOW application_name")) == "stepwise node-a"
    with pytest.raises(OperationalError, match="statement timeout"):
        with db.session() as s:
            s.execute(text("SELECT pg_sleep(5)"))
    with db.session() as s:  # the connection that was cancelled is fine for the next request
        assert s.scalar(text("SELECT 1")) == 1
    db.engine.dispose()


def counting_pings(db: Database) -> list[None]:
    """The pings ``db``'s pool sends from now on, one entry each (the dialect's ``do_ping``,
    which both SQLAlchemy's ``pool_pre_ping`` and idp.store.db.CheckOnCheckout call)."""
    pings: list[None] = []
    dialect = db.engine.dialect
    ping: Callable[[Any], bool] = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(None)
        return ping(dbapi_connection)

    dialect.do_ping = counted  # type: ignore[method-assign]
    return pings


def units_of_work(db: Database, n: int) -> None:
    for _ in range(n):
        with db.session() as s:
            assert s.scalar(text("SELECT 1")) == 1


def test_a_connection_in_steady_use_costs_no_ping(postgres_url: str) -> None:
    """A ping before every use was one more round trip for every unit of work (a refresh
    grant: six instead of five). A connection back in the pool within the second, whose
    socket is quiet, is used as it is."""
    db = Database(fresh_database(postgres_url), PoolSettings(size=1, max_overflow=0))
    units_of_work(db, 1)
    pings = counting_pings(db)
    units_of_work(db, 20)
    assert pings == []
    db.engine.dispose()


def test_a_connection_idle_for_a_while_is_pinged(postgres_url: str) -> None:
    """A host that vanished without closing the socket sends nothing: a connection idle for
    ``ping_idle_after`` seconds is pinged whatever its socket says."""
    clock = SettableClock()
    clock.freeze()
    settings = PoolSettings(size=1, max_overflow=0)
    db = Database(fresh_database(postgres_url), settings, monotonic=clock.monotonic)
    units_of_work(db, 1)
    pings = counting_pings(db)
    clock.advance(settings.ping_idle_after)
    units_of_work(db, 1)
    assert len(pings) == 1
    units_of_work(db, 3)  # back in use: no more pings
    assert len(pings) == 1
    db.engine.dispose()


def test_a_new_connection_is_used_without_a_ping(postgres_url: str) -> None:
    """As with ``pool_pre_ping``, a connection just opened is not checked: were it closed
    again before its first use, twice running, the pool would run out of attempts and answer
    with an error that is not an outage (a 500)."""
    db = Database(fresh_database(postgres_url), PoolSettings(size=1, max_overflow=0,
                                                             ping_idle_after=0))  # fmt: skip
    pings = counting_pings(db)
    units_of_work(db, 1)
    assert pings == []
    units_of_work(db, 2)  # idle for 0 s or more: each later checkout pings
    assert len(pings) == 2
    db.engine.dispose()


def test_a_connection_the_server_closed_is_replaced_without_an_error(postgres_url: str) -> None:
    """The server ends the pool's connections (what a restart does, without the wait): the
    next unit of work sees the closed socket, pings, and gets a new connection with no error;
    the pool retires the other stale connection with it. The idle check is off here (an hour),
    so only the socket can tell."""
    url = fresh_database(postgres_url)
    db = Database(url, PoolSettings(size=2, max_overflow=0, ping_idle_after=3600))
    with db.session() as a, db.session() as b:  # both connections in the pool
        pids = [
            a.scalar(text("SELECT pg_backend_pid()")),
            b.scalar(text("SELECT pg_backend_pid()")),
        ]
    assert pids[0] != pids[1]
    admin = Database(postgres_url)
    with admin.engine.connect() as conn:
        # Waits (up to 5 s each) until the backends are gone: their goodbyes have been sent.
        ended = conn.scalars(
            text("SELECT pg_terminate_backend(pid, 5000) FROM unnest(CAST(:pids AS int[])) pid"),
            {"pids": pids},
        ).all()
    assert ended == [True, True]
    pings = counting_pings(db)
    with db.session() as a, db.session() as b:
        assert a.scalar(text("SELECT 1")) == 1 and b.scalar(text("SELECT 1")) == 1
    assert len(pings) == 1  # the first stale one failed its ping; the pool let go of both
    db.engine.dispose()
    admin.engine.dispose()


def test_a_write_refused_by_a_standby_moves_the_pool_on(postgres_url: str) -> None:
    """After a failover a pooled connection may reach the old primary, now a standby: its
    pings pass but writes are refused. The refusal is an outage (503, not 500), and the pool
    drops those connections, so the next request connects afresh."""
    url = fresh_database(postgres_url)
    db = Database(url)
    name = make_url(url).database
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n int)"))
    admin = Database(postgres_url)
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    db.engine.dispose()  # the pool now connects "to a standby"
    with pytest.raises(DBAPIError) as refused:
        with db.session() as s:
            s.execute(text("INSERT INTO t VALUES (1)"))
    assert refused.value.connection_invalidated and database_down(refused.value)
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
    with db.session() as s:  # "the new primary": a new connection, writes go through
        s.execute(text("INSERT INTO t VALUES (2)"))
    db.engine.dispose()
    admin.engine.dispose()


def test_nodes_starting_together_initialise_the_database_once(
    postgres_url: str, tmp_path: Path
) -> None:
    """Four ``idp init`` at once on a database two releases old, with tenants and no keys yet
    (0003 brings them): every one exits 0, each tenant gets one key per algorithm, and the
    schema is at the newest revision. Without the lock, concurrent migrations collide
    (duplicate tables, two version rows) and tenants get two active keys."""
    url = fresh_database(postgres_url)
    old = Database(url)
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = alembic_config(old.engine)
    command.upgrade(cfg, "0002")
    with old.engine.begin() as conn:
        for slug in ("acme", "globex"):
            conn.execute(
                text(
                    "INSERT INTO tenants (slug, name, mfa_mode, mfa_scope, created_at)"
                    " VALUES (:slug, :slug, 'off', 'all', 0)"
                ),
                {"slug": slug},
            )
    env = servers.idp_env(tmp_path / "instance", IDP_DATABASE_URL=url)
    exe = str(Path(sys.executable).parent / "idp")
    procs = [
        subprocess.Popen([exe, "init"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(NODES)
    ]
    errors = [p.communicate(timeout=120)[1].decode()[-800:] for p in procs]
    assert [p.returncode for p in procs] == [0] * NODES, errors
    with old.session() as s:
        versions = s.scalars(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [ScriptDirectory.from_config(cfg).get_current_head()]
        active = s.execute(
            select(SigningKey.tenant_id, SigningKey.alg, func.count())
            .where(SigningKey.active)
            .group_by(SigningKey.tenant_id, SigningKey.alg)
        ).all()
        assert sorted(n for _, _, n in active) == [1] * 2 * len(ALGORITHMS), active
        assert s.scalar(select(func.count()).select_from(SigningKey)) == 2 * len(ALGORITHMS)
    old.engine.dispose()


def test_a_database_outage_is_a_counted_503(tmp_path: Path) -> None:
    """Rendering a database outage counts it in stepwise_database_errors_total."""
    app = make_app(tmp_path)
    svc(app).db = Database(f"postgresql+psycopg://x@127.0.0.1:{servers.free_port()}/x")
    before = REGISTRY.get_sample_value("stepwise_database_errors_total") or 0.0
    client = app.test_client()
    assert client.get("/t/acme/login").status_code == 503
    assert client.post("/t/acme/token").get_json()["error"] == "temporarily_unavailable"
    assert REGISTRY.get_sample_value("stepwise_database_errors_total") == before + 2


def seed_in_process(env: dict[str, str]) -> None:
    """What ``testkit.servers.seed`` does through three CLI runs, in this process (faster)."""
    services = build_services(load(environ=env))
    upgrade(services.db.engine)
    with services.db.session() as s:
        tenant = directory.create_tenant(s, "acme")
        keys.ensure_keys(s, services.cipher, tenant)
        directory.create_user(
            s, services.passwords, tenant, "alice", "alice@acme.test", "member", PASSWORD
        )
    services.db.engine.dispose()


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PgServer, str]]:
    """One Stepwise node on a PostgreSQL that the test stops and starts; a user "alice"."""
    with restartable_postgres() as pg:
        instance = tmp_path_factory.mktemp("pg-restart") / "instance"
        env = servers.idp_env(
            instance,
            IDP_DATABASE_URL=pg.create_database("stepwise"),
            IDP_DB_CONNECT_TIMEOUT="1",
            IDP_DB_POOL_TIMEOUT="2",
            IDP_NODE_NAME="pg-node",
        )
        seed_in_process(env)
        with servers.live_idp(env) as base:
            yield pg, base


def outage_answers(base: str, browser: requests.Session) -> dict[str, tuple[int, str, str]]:
    """Each surface's answer: status, content type, and the error code or page text."""
    bearer = {"Authorization": "Bearer x"}
    calls = {
        "login page": Request("GET", f"{base}/t/acme/login"),
        "account (signed in)": Request("GET", f"{base}/t/acme/account"),
        "token": Request(
            "POST",
            f"{base}/t/acme/token",
            auth=("no-such-client", "x"),
            data={"grant_type": "client_credentials"},
        ),
        "userinfo": Request("GET", f"{base}/t/acme/userinfo", headers=bearer),
        "discovery": Request("GET", f"{base}/t/acme/.well-known/openid-configuration"),
        "saml sso": Request("GET", f"{base}/t/acme/saml/sso", params={"SAMLRequest": "x"}),
        "admin api": Request("GET", f"{base}/t/acme/admin/api/users", headers=bearer),
    }
    out = {}
    for name, call in calls.items():
        r = browser.send(browser.prepare_request(call), timeout=BOUND, allow_redirects=False)
        kind = r.headers.get("Content-Type", "").split(";")[0]
        said = r.json().get("error", "") if kind.endswith("json") else r.text
        out[name] = (r.status_code, kind, said)
    return out


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_database_restart_is_a_blip(restartable: tuple[PgServer, str], mode: str) -> None:
    """While PostgreSQL is down every surface answers a clear 503 at once (HTML page, OAuth
    ``temporarily_unavailable``, SAML's page: no Response can be signed without the keys,
    the admin API's problem document); once it is back, the same node serves again and the
    signed-in user still is, without restarting Stepwise."""
    pg, base = restartable
    browser = requests.Session()
    sign_in(browser, f"{base}/t/acme/account", f"{base}/t/acme/account", "alice", PASSWORD)
    assert browser.get(f"{base}/t/acme/account", timeout=BOUND).status_code == 200
    pg.stop(mode)  # type: ignore[arg-type]
    try:
        down = outage_answers(base, browser)
    finally:
        pg.start()
    page = "Stepwise cannot reach its storage right now"
    for name in ("login page", "account (signed in)", "saml sso"):
        status, kind, said = down[name]
        assert (status, kind) == (503, "text/html") and page in said, (name, down[name])
    for name in ("token", "userinfo"):
        assert down[name] == (503, "application/json", "temporarily_unavailable"), name
    # Configuration is cached in memory (idp.config_cache): discovery needs no database.
    assert down["discovery"][:2] == (200, "application/json")
    assert down["admin api"] == (503, "application/problem+json", "temporarily_unavailable")
    # Back: the pool's connections from before the restart are dead, and the check before
    # each use replaces them; no request fails.
    answers = [browser.get(f"{base}/t/acme/account", timeout=BOUND) for _ in range(12)]
    assert [r.status_code for r in answers] == [200] * 12
    assert "alice" in answers[-1].text
    # A restart between two requests: every pooled connection is stale, none may surface.
    pg.stop(mode)  # type: ignore[arg-type]
    pg.start()
    again = [browser.get(f"{base}/t/acme/account", timeout=BOUND) for _ in range(12)]
    assert [r.status_code for r in again] == [200] * 12
    token = requests.post(f"{base}/t/acme/token", data={"grant_type": "x"}, timeout=BOUND)
    assert token.status_code in (400, 401) and token.json()["error"] != "temporarily_unavailable"
