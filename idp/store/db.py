"""Engine and sessions. SQLite runs in WAL mode with foreign keys on; PostgreSQL via psycopg 3.

On PostgreSQL every worker process keeps a pool of connections (docs/operations/postgres.md
has the sizing arithmetic). A connection is checked before each use (:class:`CheckOnCheckout`):
one the server has closed (a restart) or one idle for a second is pinged, so one left dead
is replaced without an error, and a failed ping also retires every older connection of the
pool at once. A connection in steady use costs no round trip for this.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Dialect, Engine, ExceptionContext, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

from idp.clock import SYSTEM
from idp.settings import Settings

# A unit of work keeps up to this many of the rows it loaded or wrote (below).
KEPT_ROWS = 1000


def _keep(session: Session, instance: object) -> None:
    """Hold a strong reference to a row for as long as its session lives.

    SQLAlchemy's identity map holds rows weakly: a row no local variable holds any more is
    dropped, and the next ``s.get`` of it reads the database again. A login POST read its
    user five times that way (three planner passes, the sign-in, the session record). The
    SQLAlchemy documentation's "Session Referencing Behavior" recipe, capped so that a long
    batch (an import, a prune) still lets go of what it no longer holds."""
    kept: list[object] = session.info.setdefault("kept", [])
    if len(kept) < KEPT_ROWS:
        kept.append(instance)


class SchemaOutdated(Exception):
    """The database is behind the code's migrations: ``idp init`` brings it up to date."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@dataclass(frozen=True)
class PoolSettings:
    """How a worker process talks to PostgreSQL (IDP_DB_*; ignored on SQLite).

    ``statement_timeout_ms`` is sent as a startup option, so the server cancels a statement
    that runs longer; 0 leaves the server's own setting.
    """

    size: int = 5
    max_overflow: int = 5
    timeout: int = 5
    recycle: int = 1800
    connect_timeout: int = 3
    statement_timeout_ms: int = 5000
    application_name: str = "stepwise"
    # A connection idle this long (seconds) is pinged before use (CheckOnCheckout).
    ping_idle_after: float = 1.0

    @classmethod
    def of(cls, settings: Settings) -> PoolSettings:
        node = settings.node_name
        return cls(
            size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            timeout=settings.db_pool_timeout,
            recycle=settings.db_pool_recycle,
            connect_timeout=settings.db_connect_timeout,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            # Shown in pg_stat_activity: which node holds which connections.
            application_name=f"stepwise {node}"[:63] if node else "stepwise",
        )

    def engine_options(self) -> dict[str, Any]:
        connect_args: dict[str, Any] = {
            "connect_timeout": self.connect_timeout,
            "application_name": self.application_name,
            # A server that vanished without closing the socket (a failed-over host, a cut
            # network) is noticed within about 25 s instead of the kernel's two hours.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            # Keepalives are not sent while sent data waits for its acknowledgement: a
            # statement (or a ping) sent to such a server would wait for the kernel's
            # retransmissions (about 15 minutes on Linux). This bounds that wait as well.
            "tcp_user_timeout": 25_000,
        }
        if self.statement_timeout_ms:
            connect_args["options"] = f"-c statement_timeout={self.statement_timeout_ms}"
        return {
            # The most recently returned connection is reused first: a busy worker keeps
            # using its warm connections (no ping, CheckOnCheckout), and the spares age out.
            "pool_use_lifo": True,
            "pool_size": self.size,
            "max_overflow": self.max_overflow,
            "pool_timeout": self.timeout,
            "pool_recycle": self.recycle,
            "connect_args": connect_args,
        }


# The connection record's info (cleared when the record gets a new connection).
_LAST_USED = "stepwise.last_used"  # when it was last checked in
_FRESH = "stepwise.fresh"  # connected and not checked out yet


class CheckOnCheckout:
    """Pool events that make sure a connection is alive before a unit of work uses it.

    SQLAlchemy's ``pool_pre_ping`` sends a ``SELECT 1`` on every checkout: one more round trip
    for every unit of work (a refresh grant made six instead of five). Instead:

    - A connection the server has closed has something to read: a restart or a terminated
      backend sends its FATAL message and closes the socket, and the end of the stream stays
      readable. A zero-timeout ``poll`` of the socket (no round trip) sees that, and such a
      connection is pinged.
    - A connection idle for ``idle_after`` seconds is pinged whatever its socket says: a host
      that vanished without closing (a failover's old primary) sends nothing. With the LIFO
      pool, a worker busy at least once a second checks out warm connections only, so this
      costs nothing there. HikariCP makes a similar trade (no check within 500 ms of the last
      use, and no socket check).
    - A new connection is used without a check, as ``pool_pre_ping`` did.
    - A ping that fails for a lost connection raises ``InvalidatePoolError``: the pool retires
      this connection and every older one and checks out a new one, as ``pool_pre_ping`` did.

    What this gives up (docs/operations/postgres.md): a connection used within the second
    whose server's goodbye has not arrived yet (a backend ended at that very moment), or
    whose address now answers with a reset (a failover), fails its request with a 503, where
    a ping would have noticed first.
    """

    def __init__(self, dialect: Dialect, idle_after: float,
                 monotonic: Callable[[], float] = SYSTEM.monotonic) -> None:  # fmt: skip
        self.dialect, self.idle_after, self.monotonic = dialect, idle_after, monotonic

    def install(self, engine: Engine) -> None:
        event.listen(engine, "connect", self.connected)
        event.listen(engine, "checkin", self.used)
        event.listen(engine, "checkout", self.checkout)

    def connected(self, _dbapi_conn: Any, record: Any) -> None:
        record.info[_FRESH] = True
        self.used(_dbapi_conn, record)

    def used(self, _dbapi_conn: Any, record: Any) -> None:
        record.info[_LAST_USED] = self.monotonic()

    def checkout(self, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop(_FRESH, False):
            return
        idle = self.monotonic() - record.info.get(_LAST_USED, float("-inf"))
        if idle < self.idle_after and _nothing_to_read(dbapi_conn):
            return
        try:
            self.dialect.do_ping(dbapi_conn)
        except self.dialect.loaded_dbapi.Error as exc:
            if not self.dialect.is_disconnect(exc, dbapi_conn, None):
                raise  # not a lost connection: the engine reports it as any other error
            raise InvalidatePoolError(f"ping failed: {exc!r}") from exc


def _nothing_to_read(dbapi_conn: Any) -> bool:
    """Whether an idle connection's socket is quiet: no data, no end of stream, no error.
    Between units of work the server sends nothing unprompted but its goodbye (or a NOTIFY,
    on a connection that LISTENs, which Stepwise's do not; the ping would read it)."""
    try:
        fd = dbapi_conn.fileno()
    except Exception:  # noqa: BLE001  # a lost or closed connection has no socket
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


# SQLSTATE read_only_sql_transaction: after a failover the connection still reaches the old
# primary, now a standby (or the address already names a standby). A ping passes on a standby,
# so without this the pool would keep those connections until they are recycled.
READ_ONLY = "25006"


def _standby_is_a_disconnect(context: ExceptionContext) -> None:
    """Treat a write refused by a standby as a lost connection: the pool drops it and every
    older one, and the next checkout connects afresh (to the new primary)."""
    if getattr(context.original_exception, "sqlstate", None) == READ_ONLY:
        context.is_disconnect = True


class Database:
    """One engine per app; ``session()`` yields a unit of work that commits on success."""

    def __init__(
        self,
        url: str,
        pool: PoolSettings | None = None,
        monotonic: Callable[[], float] = SYSTEM.monotonic,
    ) -> None:
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if not self.is_sqlite:
            kwargs.update((pool or PoolSettings()).engine_options())
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine, "handle_error", _standby_is_a_disconnect)
            idle_after = (pool or PoolSettings()).ping_idle_after
            CheckOnCheckout(self.engine.dialect, idle_after, monotonic).install(self.engine)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._factory, "loaded_as_persistent", _keep)
        event.listen(self._factory, "pending_to_persistent", _keep)

    @classmethod
    def for_settings(cls, settings: Settings) -> Database:
        """The database of IDP_DATABASE_URL, with the pool and timeouts of IDP_DB_*."""
        return cls(settings.effective_database_url, PoolSettings.of(settings))

    def listen(self, name: str, fn: Callable[..., None]) -> None:
        """Register a session event (e.g. ``before_commit``) for every session of this
        database (idp.config_cache)."""
        event.listen(self._factory, name, fn)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any error."""
        with self._factory() as s, s.begin():
            yield s

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
