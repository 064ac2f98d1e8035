"""The notification worker (``idp worker``): delivers the outbox (idp.outbox).

- **Claiming.** One statement claims a batch of due rows by setting a lease
  (``claimed_until``): ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`` on
  PostgreSQL, so workers on several nodes take different rows without waiting for each
  other; on SQLite the same conditional UPDATE runs under the database's write lock. A
  worker that dies leaves its rows to be claimed again once the lease has passed.
- **At least once.** A row is marked sent after the provider took it. A crash between the
  two sends it again once the lease passes: a notification can arrive twice, never zero
  times (docs/operations/notifications.md).
- **Retries.** A failed attempt is retried after an exponential backoff with jitter, capped;
  after ``IDP_OUTBOX_MAX_ATTEMPTS`` the row is marked failed, audited as
  ``notification.failed`` (event and channel, never the recipient) and counted in
  ``stepwise_notifications{result="failed"}``.
- **Waiting.** Between polls the worker waits in ``select()`` on a pipe that SIGTERM (or
  :meth:`Stopper.stop`) writes to. Not ``time.sleep``: under libfaketime, which the live
  test servers run under, every sleep fails at once with EINVAL, and a loop around it would
  spin a core; ``select``'s relative timeout is left alone.
- **Pruning.** Sent rows are deleted after :data:`SENT_RETENTION`, failed ones after
  :data:`FAILED_RETENTION`, once an hour by each worker (an indexed range delete).

Time comes from ``svc.clock`` (idp.clock), so tests move it instead of sleeping.
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, delete, or_, update
from sqlalchemy import select as select_rows
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased

from factors.errors import DeliveryFailed
from idp import clock as clocks
from idp import logs, metrics
from idp.directory import audit
from idp.outbox import MAIL, recipient
from idp.services import Services
from idp.store.models import OutboxMessage, Tenant

log = logging.getLogger("idp.outbox")

BATCH = 20  # rows claimed at once
LEASE = 300  # seconds a claimed batch stays with its worker (SMTP waits up to 10 s a step)
BACKOFF_BASE = 30  # seconds before the first retry; doubled for each one after
BACKOFF_CAP = 3600  # the longest wait between two attempts
SENT_RETENTION = 7 * 86400  # sent rows are kept a week (to answer "was it sent?")
FAILED_RETENTION = 30 * 86400  # failed ones a month, for the operator to look into
PRUNE_EVERY = 3600  # seconds between two prunings by one worker
PARENT_CHECK = 5.0  # seconds: the longest a worker outlives the ``idp serve`` that started it
PARENT_ENV = "STEPWISE_OUTBOX_PARENT"  # set by spawn(): the pid of that ``idp serve``
STOP_TIMEOUT = 15.0  # seconds stop() gives the child to finish its delivery
RESPAWN_DELAY = 1.0  # seconds before a child that died is started again
_jitter = secrets.SystemRandom()


def backoff(attempts: int) -> int:
    """Seconds before the next attempt after ``attempts`` failed ones: exponential, capped,
    with "equal jitter" (between half and all of it), so that rows that failed together do
    not all come back together."""
    full = min(BACKOFF_CAP, BACKOFF_BASE << min(max(attempts - 1, 0), 20))
    return full // 2 + _jitter.randint(0, full - full // 2)


class Stopper:
    """A stop request that also wakes a waiting worker: a self-pipe, written by a signal
    handler or another thread, and read with ``select`` (see the module's notes)."""

    def __init__(self) -> None:
        self.stopped = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def stop(self) -> None:
        self.stopped = True
        try:
            os.write(self._write, b"x")
        except BlockingIOError:  # the pipe is full: the worker is woken already
            pass

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` or until stopped; whether a stop was asked."""
        if not self.stopped and seconds > 0:
            select.select([self._read], [], [], seconds)
        return self.stopped

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


@dataclass(frozen=True)
class Claim:
    """A row leased to one worker."""

    id: int
    lease: int  # the claimed_until this worker set: its proof that the row is still its own


class Worker:
    """Delivers due rows of the outbox with ``svc``'s senders; :meth:`run_once` is one pass
    (what tests drive), :meth:`run` the loop of ``idp worker``."""

    def __init__(self, svc: Services, poll_interval: float | None = None) -> None:
        self.svc = svc
        self.poll_interval = float(poll_interval or svc.settings.outbox_poll_interval)
        self.max_attempts = svc.settings.outbox_max_attempts
        self._next_prune = 0.0

    def run(self, stopper: Stopper, parent: int | None = None) -> None:
        """Deliver until ``stopper`` is stopped, or the process ``parent`` is gone."""
        while not stopper.stopped:
            try:
                handled = self.run_once(stopper)
            except SQLAlchemyError as exc:  # the database is down or restarting: try again
                log.warning("outbox: database unavailable (%s)", exc.__class__.__name__)
                handled = 0
            if parent is not None and os.getppid() != parent:
                log.warning("outbox: the idp serve that started this worker is gone; stopping")
                return
            if handled < BATCH:  # a full batch: more rows are probably due, go on at once
                stopper.wait(min(self.poll_interval, PARENT_CHECK if parent else 3600.0))

    def run_once(self, stopper: Stopper | None = None) -> int:
        """Claim the rows due now and deliver them, one short transaction each; return how
        many were claimed. Stops between two deliveries when ``stopper`` is stopped, and
        hands the batch's undelivered rows back."""
        token = clocks.bind(self.svc.clock)  # audit() and idp.outbox read it (idp.clock)
        try:
            self._prune_now_and_then()
            claimed = self.claim()
            for n, row in enumerate(claimed):
                if stopper is not None and stopper.stopped:
                    self._release(claimed[n:])
                    break
                self._deliver(row)
            return len(claimed)
        finally:
            clocks.unbind(token)

    # --- the steps of a pass ------------------------------------------------------------
    def _now(self) -> int:
        return int(self.svc.clock.time())

    def claim(self) -> list[Claim]:
        """Lease the rows due now (at most :data:`BATCH`) to this worker; what :meth:`run_once`
        delivers next."""
        now = self._now()
        lease = now + LEASE

        def free(t: type[OutboxMessage]) -> ColumnElement[bool]:
            return and_(t.status == "pending",
                        or_(t.claimed_until.is_(None), t.claimed_until <= now))  # fmt: skip

        inner = aliased(OutboxMessage)  # not correlated with the UPDATE's own table
        due = (
            select_rows(inner.id)
            .where(free(inner), inner.next_attempt_at <= now)
            .order_by(inner.next_attempt_at)
            .limit(BATCH)
        )
        picked = due.cte("due")
        if not self.svc.db.is_sqlite:
            # A row another worker holds is skipped, not waited for; and the CTE is computed
            # once (MATERIALIZED): as a plain IN (subquery) PostgreSQL may run it again for
            # each row it updates, and claim far more than the LIMIT (seen: 40 of 20).
            picked = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        claim = (
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(select_rows(picked.c.id)), free(OutboxMessage))
            .values(claimed_until=lease)
            .returning(OutboxMessage.id)
        )
        # A read first, so that an idle poll takes no write lock (SQLite has one, for the
        # whole file). In a transaction of its own: on SQLite a read transaction that turns
        # into a write after another connection wrote fails at once (SQLITE_BUSY_SNAPSHOT).
        with self.svc.db.session() as s:
            if s.scalar(due.limit(1)) is None:
                return []
        with self.svc.db.session() as s:
            ids = sorted(s.scalars(claim, execution_options={"synchronize_session": False}))
        return [Claim(i, lease) for i in ids]

    def _mine(self, claimed: Claim) -> ColumnElement[bool]:
        return and_(
            OutboxMessage.id == claimed.id,
            OutboxMessage.claimed_until == claimed.lease,
            OutboxMessage.status == "pending",
        )

    def _deliver(self, claimed: Claim) -> None:
        svc = self.svc
        with svc.db.session() as s:
            row = s.get(OutboxMessage, claimed.id)
            if row is None or row.claimed_until != claimed.lease or row.status != "pending":
                return  # pruned, or the lease passed and another worker took it
        # The session is closed: no connection or transaction waits on the provider.
        channel, attempts = row.channel, row.attempts + 1
        error = self._send(row)
        now = self._now()
        with svc.db.session() as s:
            mine = self._mine(claimed)
            if error is None:
                s.execute(update(OutboxMessage).where(mine).values(
                    status="sent", sent_at=now, attempts=attempts, claimed_until=None,
                    last_error=None))  # fmt: skip
                metrics.NOTIFICATIONS.labels(channel=channel, result="sent").inc()
                return
            if attempts < self.max_attempts:
                s.execute(update(OutboxMessage).where(mine).values(
                    attempts=attempts, claimed_until=None, last_error=error,
                    next_attempt_at=now + backoff(attempts)))  # fmt: skip
                metrics.NOTIFICATIONS.labels(channel=channel, result="retry").inc()
                return
            given_up = s.execute(update(OutboxMessage).where(mine).values(
                status="failed", attempts=attempts, claimed_until=None, last_error=error,
                next_attempt_at=now))  # fmt: skip
            if not cast(CursorResult[Any], given_up).rowcount:
                return  # another worker holds the row now: its outcome counts
            audit(s, s.get(Tenant, row.tenant_id), "notification.failed", subject=row.user_id,
                  notification=row.event, channel=channel, attempts=attempts,
                  error=error)  # fmt: skip
        metrics.NOTIFICATIONS.labels(channel=channel, result="failed").inc()
        log.warning("outbox: %s by %s failed for good after %d attempts (%s)",
                    row.event, channel, attempts, error)  # fmt: skip

    def _send(self, row: OutboxMessage) -> str | None:
        """Hand the message to its provider; None when it took it, else a short reason that
        names no recipient (it goes to the row, the log and the audit event)."""
        svc = self.svc
        try:
            to = recipient(svc.cipher, row)
            if row.channel == MAIL:
                if svc.mail is None:
                    raise DeliveryFailed("no mail sender")
                svc.mail.send(to, row.subject, row.body)
            else:
                if svc.sms is None:
                    raise DeliveryFailed("no sms sender")
                svc.sms.send(to, row.body)
        except DeliveryFailed as exc:
            return f"DeliveryFailed: {exc}"[:200]
        # Anything else (a key that changed, a message a provider library refuses) fails this
        # row, not the worker: its class only, as exception texts may quote the address.
        except Exception as exc:  # noqa: BLE001
            return exc.__class__.__name__[:200]
        return None

    def _release(self, rest: list[Claim]) -> None:
        """Give rows claimed but not tried back, for this or another worker's next pass."""
        with self.svc.db.session() as s:
            for claimed in rest:
                s.execute(update(OutboxMessage).where(self._mine(claimed))
                          .values(claimed_until=None))  # fmt: skip

    def _prune_now_and_then(self) -> None:
        if self.svc.clock.monotonic() < self._next_prune:
            return
        self._next_prune = self.svc.clock.monotonic() + PRUNE_EVERY
        now = self._now()
        with self.svc.db.session() as s:
            for status, keep in (("sent", SENT_RETENTION), ("failed", FAILED_RETENTION)):
                # next_attempt_at (indexed with status) is never after sent_at: the range
                # narrows the scan, sent_at decides.
                cutoff = now - keep
                old = and_(
                    OutboxMessage.status == status,
                    OutboxMessage.next_attempt_at < cutoff,
                    or_(OutboxMessage.sent_at.is_(None), OutboxMessage.sent_at < cutoff),
                )
                s.execute(delete(OutboxMessage).where(old))


def run_forever(svc: Services) -> None:
    """Deliver due notifications until SIGTERM or SIGINT (then after the current delivery);
    a worker started by ``idp serve`` also ends when that process is gone."""
    from idp.store.migrate import check_schema  # alembic's modules: only for this command

    logs.configure(svc.settings)  # text or JSON lines, as the app's
    check_schema(svc.db.engine)  # as ``idp serve`` does: SchemaOutdated before ``idp init``
    stopper = Stopper()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopper.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    parent = int(os.environ.get(PARENT_ENV) or 0) or None
    if parent is not None and os.getppid() != parent:
        return  # that ``idp serve`` died while this process started
    log.info("outbox worker started (poll every %ss)", svc.settings.outbox_poll_interval)
    try:
        Worker(svc).run(stopper, parent)
    finally:
        stopper.close()
    log.info("outbox worker stopped")


def spawn() -> subprocess.Popen[bytes] | None:
    """Start ``idp worker`` as a child process of ``idp serve``, with its environment (and so
    its settings and its metrics directory). The ``-c`` form needs no console script on the
    PATH, wherever pip put it."""
    env = {**os.environ, PARENT_ENV: str(os.getpid())}
    code = "from idp.cli import main; main(['worker'])"
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def stop(child: subprocess.Popen[bytes]) -> None:
    """Stop the child started by :func:`spawn`: SIGTERM, then SIGKILL if it has not ended
    within :data:`STOP_TIMEOUT` (its SMTP call may be waiting on a slow server), and reap it.
    The wait is a ``select`` on a pidfd: ``Popen.wait(timeout)`` sleeps, which fails under
    libfaketime."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        pidfd = os.pidfd_open(child.pid)
    except (AttributeError, OSError):  # no pidfd here (not Linux 5.3+): wait as long as it takes
        child.wait()
        return
    try:
        ended, _, _ = select.select([pidfd], [], [], STOP_TIMEOUT)
    finally:
        os.close(pidfd)
    if not ended:
        log.warning("outbox worker did not stop within %ss; killing it", STOP_TIMEOUT)
        child.kill()
    child.wait()


class Supervisor:
    """Keeps one ``idp worker`` child running beside ``idp serve``: a child that dies (killed,
    out of memory) is started again after :data:`RESPAWN_DELAY` seconds, so security
    notifications never stop in silence while the node keeps serving.

    A daemon thread blocks in ``Popen.wait()`` (a plain waitpid, which libfaketime leaves
    alone) and waits out the delay in ``select`` on a pipe that :meth:`close` writes to.
    """

    def __init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self.child = spawn()
        self.respawned = 0
        self._thread = threading.Thread(target=self._watch, name="outbox-supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            child = self.child
            if child is None:
                return
            status = child.wait()
            if self._stopping:
                return
            log.warning("outbox worker exited with status %s; starting another", status)
            ready, _, _ = select.select([self._wake_r], [], [], RESPAWN_DELAY)
            if ready or self._stopping:
                return
            self.child = spawn()
            self.respawned += 1

    def close(self) -> None:
        """Stop supervising, then stop the child."""
        self._stopping = True
        os.write(self._wake_w, b"x")
        if self.child is not None:
            stop(self.child)
        self._thread.join(STOP_TIMEOUT)
        os.close(self._wake_r)
        os.close(self._wake_w)
