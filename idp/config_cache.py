"""This process's cache of tenant configuration: tenants, OIDC clients, signing keys and the
documents built from them (JWKS, discovery), kept correct across processes and nodes by one
version token in the shared store.

These rows are read on every request and change rarely. Every transaction that writes one of
:data:`CACHED_TABLES` replaces the version token (:func:`watch`): before its commit, so that
a bump that fails fails the change, and again after it, so that a process that reloaded
between the two drops what it read. Each request reads the token once
(:meth:`ConfigCache.begin`, from idp.tenancy) and a new token empties this process's cache,
so a change, an "immediate" MFA policy among them, applies from the next request on every
node. If the after-commit bump is lost (the store failed at that moment), entries still
expire after :data:`MAX_AGE` seconds.

Where the token lives: in the shared store (Redis) when there is one; with the in-process
store, which only its own process sees, in a file of the instance directory, so that ``idp``
commands run beside the server (SQLite) are seen at once as well.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from itertools import chain
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import inspect
from sqlalchemy.orm import ORMExecuteState, Session, make_transient_to_detached
from sqlalchemy.orm.instrumentation import manager_of_class

from idp.ephemeral import EphemeralStore, EphemeralUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")  # a mapped class
CACHED_TABLES = frozenset({"tenants", "clients", "signing_keys", "saml_sps", "saml_keys"})
KEY = "config-version"
TOKEN_TTL = 90 * 24 * 3600  # renewed by every bump; an expired token only costs one reload
MAX_AGE = 60.0  # seconds: the bound on staleness when an after-commit bump was lost
_CHANGED = "stepwise.config_changed"


class ConfigVersion(Protocol):
    """A value that changes whenever cached configuration may have changed. ``remote``:
    reading it is a network round trip."""

    remote: bool

    def read(self) -> object: ...

    def bump(self) -> None: ...


class StoreVersion:
    """The token in the shared store: a random value (never an old one again, so a reader
    can never mistake a new version for the one it holds)."""

    remote = True

    def __init__(self, store: EphemeralStore) -> None:
        self.store = store

    def read(self) -> object:
        return self.store.get(KEY)

    def bump(self) -> None:
        self.store.set(KEY, secrets.token_bytes(12), TOKEN_TTL)


class FileVersion:
    """The token as a file that grows by one byte per change: its size, inode and mtime.
    A stat is about a microsecond, and every process on the machine sees it."""

    remote = False

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> object:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def bump(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)


class ConfigCache:
    """Entries by key, valid while the version read by :meth:`begin` is unchanged, for at
    most :data:`MAX_AGE` seconds, and never past the expiry a loader gives."""

    def __init__(self, version: ConfigVersion, monotonic: Callable[[], float]) -> None:
        self.version = version
        self._monotonic = monotonic
        self._seen: object = object()  # no version read yet
        self._read_at = float("-inf")
        self._generation = 0
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        # The generation this request (context) saw at its begin(): what it loads is kept
        # only if nothing emptied the cache since, whatever snapshot its transaction reads.
        self._began: ContextVar[int | None] = ContextVar(f"config_cache_{id(self)}", default=None)

    def begin(self, within: float = 0.0) -> None:
        """Once per request, before any lookup: a new version empties the cache. ``within``:
        skip a remote read if the version was read less than that many seconds ago (only for
        public documents, which may lag a second; never for tenants, clients or policy)."""
        now = self._monotonic()
        if within and self.version.remote and now - self._read_at < within:
            self._began.set(self._generation)
            return
        self._read_at = now
        current = self.version.read()
        with self._lock:
            if current != self._seen:
                self._entries = {}
                self._generation += 1
                self._seen = current
            self._began.set(self._generation)

    @property
    def generation(self) -> int:
        """Changes whenever the cache is emptied: a value loaded under an older generation
        is not kept (:meth:`put`). This request's, from its :meth:`begin`, if it began."""
        began = self._began.get()
        return self._generation if began is None else began

    def peek(self, key: Hashable) -> Any:
        """The live value of ``key``, or None."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > self._monotonic() else None

    def put(self, key: Hashable, value: object, generation: int, until: float | None) -> None:
        """Keep ``value``, loaded under ``generation``, for at most :data:`MAX_AGE` seconds
        and never past ``until`` (monotonic); dropped if the cache was emptied since."""
        expires = self._monotonic() + MAX_AGE
        if until is not None:
            expires = min(expires, until)
        with self._lock:
            if generation == self._generation:
                self._entries[key] = (expires, value)

    def get(
        self,
        key: Hashable,
        load: Callable[[], T],
        until: Callable[[T], float | None] | None = None,
    ) -> T:
        """The cached value of ``key``, or ``load()``'s (cached unless it is None).
        ``until(value)``: a monotonic time after which it must be loaded again, or None."""
        found: T | None = self.peek(key)
        if found is not None:
            return found
        generation = self.generation
        value = load()
        if value is not None:
            self.put(key, value, generation, until(value) if until is not None else None)
        return value

    def row(self, key: Hashable, cls: type[R], find: Callable[[], R | None]) -> R | None:
        """The row ``find`` returns (None: there is none, and nothing is cached), kept as its
        column values and handed out as the caller's own detached copy (:func:`detached`)."""

        def load() -> dict[str, Any] | None:
            found = find()
            return values_of(found) if found is not None else None

        values = self.get(key, load)
        return detached(cls, values) if values is not None else None

    def clear(self) -> None:
        with self._lock:
            self._entries = {}
            self._generation += 1


def version_for(store: EphemeralStore, shared: bool, instance_dir: Path) -> ConfigVersion:
    """The shared store's token, or with the in-process store a file beside the database."""
    if shared:
        return StoreVersion(store)
    instance_dir.mkdir(parents=True, exist_ok=True)
    return FileVersion(instance_dir / "config.version")


# --- rows as values ---------------------------------------------------------------------
def values_of(row: Any) -> dict[str, Any]:
    """A row's column values, to cache (never the row: a row belongs to one session)."""
    return {a.key: getattr(row, a.key) for a in inspect(type(row)).column_attrs}


def detached(cls: type[T], values: dict[str, Any]) -> T:
    """A fresh detached instance of ``cls`` holding ``values``, as if just loaded (no
    ``__init__``, no change history): each request gets its own, so no two sessions or
    threads ever share one. JSON columns hold flat lists and dicts: copied one level."""
    row: T = manager_of_class(cls).new_instance()
    row.__dict__.update(
        {k: v.copy() if isinstance(v, list | dict) else v for k, v in values.items()}
    )
    make_transient_to_detached(row)
    return row


# --- invalidation -------------------------------------------------------------------------
def _touches_cached(objects: Any) -> bool:
    return any(getattr(o, "__tablename__", None) in CACHED_TABLES for o in objects)


def watch(
    listen: Callable[[str, Callable[..., None]], None],
    version: ConfigVersion,
    local: ConfigCache | None = None,
) -> None:
    """Bump ``version`` around every commit that writes a cached table. ``listen`` registers
    a session event (idp.store.db.Database.listen). A rollback of such a write empties
    ``local``, this process's cache, which may have loaded the uncommitted rows."""

    def pending(s: Session) -> None:
        if _touches_cached(chain(s.new, s.dirty, s.deleted)):
            s.info[_CHANGED] = True

    def flushed(s: Session, _ctx: Any) -> None:
        pending(s)

    def executed(state: ORMExecuteState) -> None:
        if state.is_update or state.is_delete or state.is_insert:
            table = getattr(state.statement, "table", None)
            if getattr(table, "name", None) in CACHED_TABLES:
                state.session.info[_CHANGED] = True

    def before_commit(s: Session) -> None:
        pending(s)
        if s.info.get(_CHANGED):
            version.bump()  # an error here rolls the change back

    def after_commit(s: Session) -> None:
        if s.info.pop(_CHANGED, False):
            try:
                version.bump()
            except EphemeralUnavailable:
                log.warning("configuration version not bumped after a commit; caches "
                            "elsewhere catch up within %.0f s", MAX_AGE)  # fmt: skip

    def after_rollback(s: Session) -> None:
        if s.info.pop(_CHANGED, False) and local is not None:
            local.clear()

    listen("after_flush", flushed)
    listen("do_orm_execute", executed)
    listen("before_commit", before_commit)
    listen("after_commit", after_commit)
    listen("after_rollback", after_rollback)
