"""The notifications outbox (issue 16): security notices are queued in the transaction of the
change they report and delivered by the worker (idp.outbox_worker) through real SMTP and SMS
servers, with retries and backoff on the app's clock; workers in parallel on PostgreSQL
never send a row twice; ``idp worker`` stops on SIGTERM; ``idp serve`` runs one as its child
(under libfaketime too) unless told not to."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from string import Formatter

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from idp import directory, outbox, password_changes
from idp.app import build_services
from idp.clock import SettableClock
from idp.mfa.notify import FOOTER, MESSAGES, security_event
from idp.outbox_worker import BATCH, LEASE, SENT_RETENTION, Worker
from idp.services import Services
from idp.settings import load
from idp.store.models import AuditEvent, OutboxMessage
from testkit.servers import (
    ServerClock,
    create_database,
    free_port,
    idp_env,
    live_idp,
    seed,
    wait_for_port,
)
from tests.conftest import PASSWORD, make_app, svc
from tests.outbox import Inbox, Outboxes, smtp_server
from tests.password_support import change, user_row
from tests.web.test_password_change import signed_in

NEW = "a brand new passphrase"
ALICE = "alice@acme.test"
CHANGED = "Acme Inc: Your password was changed"
RAW_ROWS = text("SELECT status, recipient, channel, tenant_id, subject, body FROM outbox")


def sent(channel: str, result: str) -> float:
    """This process's count of ``stepwise_notifications`` with these labels."""
    value = REGISTRY.get_sample_value(
        "stepwise_notifications_total", {"channel": channel, "result": result}
    )
    return value or 0.0


def rows(services: Services) -> list[OutboxMessage]:
    with services.db.session() as s:
        found = list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        s.expunge_all()
        return found


def test_the_queued_texts_have_no_room_for_a_code_or_a_link() -> None:
    """The outbox keeps its texts in clear: each security notice is a fixed sentence whose
    only blanks are labels and counts (a new blank must be added here, knowingly)."""
    blanks = {
        event: {name for text in texts for _, name, _, _ in Formatter().parse(text) if name}
        for event, texts in MESSAGES.items()
    }
    allowed = {"label", "old", "count", "remaining", "warning"}
    assert {e: b - allowed for e, b in blanks.items() if b - allowed} == {}
    assert {name for _, name, _, _ in Formatter().parse(FOOTER) if name} == {"account", "tenant"}


class Boom(Exception):
    """Something failing after the notice was queued, in the same transaction."""


@pytest.mark.delivery
def test_a_rolled_back_change_queues_nothing_a_committed_one_is_mailed_after_a_lease_then_pruned(
    app: Flask, tenant: str, outboxes: Outboxes
) -> None:
    services = svc(app)
    before = user_row(app, "alice").password_hash

    def change_password(s: Session) -> None:  # as the account page does, in its transaction
        t = directory.require_tenant(s, "acme")
        alice = directory.require_user(s, t, "alice")
        password_changes.change(s, services, t, alice, NEW, keep_sid="-",
                                now=int(services.clock.time()), ip=None)  # fmt: skip

    with app.app_context(), pytest.raises(Boom), services.db.session() as s:
        change_password(s)
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1  # queued here
        raise Boom()
    assert rows(services) == [] and user_row(app, "alice").password_hash == before
    assert outboxes.mail.to(ALICE) == []  # the worker ran (tests.outbox): nothing to send

    with app.app_context(), services.db.session() as s:
        change_password(s)
    # A worker claims the row and dies before sending: the row waits for its lease to pass.
    crashed, other = Worker(services), Worker(services)
    assert len(crashed.claim()) == 1
    assert other.run_once() == 0 and outboxes.mail.items == []
    later_by = LEASE + 1
    assert isinstance(services.clock, SettableClock)
    services.clock.advance(later_by)
    (mail,) = outboxes.mail.to(ALICE)  # the inbox's read runs the worker's pass
    assert mail["subject"] == CHANGED and "password of your account was changed" in mail["text"]
    (row,) = rows(services)
    assert (row.status, row.attempts, row.claimed_until) == ("sent", 1, None)
    assert row.sent_at is not None and row.sent_at >= row.created_at + later_by
    assert outboxes.mail.to(ALICE) == [mail]  # sent once: nothing is left to send

    # A sent row is kept for a week, then pruned by a worker's pass (once an hour).
    pruner = Worker(services)
    services.clock.advance(SENT_RETENTION - 3600)
    pruner.run_once()
    assert len(rows(services)) == 1
    services.clock.advance(3601)
    pruner.run_once()
    assert rows(services) == []


@pytest.mark.delivery
def test_the_password_page_queues_the_notice_with_its_recipient_encrypted(
    app: Flask, tenant: str, outboxes: Outboxes
) -> None:
    services = svc(app)
    resp = change(signed_in(app, tenant), PASSWORD, NEW)
    assert resp.status_code == 200
    assert outboxes.mail.items == []  # the response did not wait for the mail server
    with services.db.engine.connect() as conn:
        ((status, blob, channel, tenant_id, subject, body),) = conn.execute(RAW_ROWS).all()
    assert (status, channel, subject) == ("pending", "mail", CHANGED)
    assert b"alice" not in blob and b"acme.test" not in blob
    assert (
        services.cipher.decrypt(blob, outbox.recipient_purpose(tenant_id, "mail"))
        == b"alice@acme.test"
    )
    assert "alice" not in body  # the text names no address either

    # An SMS notice: the phone number is encrypted too, and the gateway gets it.
    with app.app_context(), services.db.session() as s:
        t = directory.require_tenant(s, "acme")
        queued = outbox.enqueue(s, services, t, "test.notice", outbox.SMS, "+447700900123",
                                "A notice by text message.")  # fmt: skip
    assert queued
    with services.db.engine.connect() as conn:
        blobs = [r.recipient for r in conn.execute(RAW_ROWS) if r.channel == "sms"]
    assert len(blobs) == 1 and b"7700900123" not in blobs[0]
    (sms,) = outboxes.sms.to("+447700900123")
    assert sms["text"] == "A notice by text message." and sms["auth"] == "Bearer gateway-token"
    assert [m["subject"] for m in outboxes.mail.to(ALICE)] == [CHANGED]
    assert [r.status for r in rows(services)] == ["sent", "sent"]


def test_a_mail_server_down_means_retries_with_backoff_then_a_failure_that_is_audited_and_counted(
    tmp_path: Path,
) -> None:
    closed = free_port()  # nothing listens here: every attempt is refused at once
    app = make_app(tmp_path, mail_sender="smtp", smtp_host="127.0.0.1", smtp_port=closed,
                   smtp_security="none", mail_from="id@acme.test",
                   outbox_max_attempts=3)  # fmt: skip
    services = svc(app)
    assert isinstance(services.clock, SettableClock)
    services.clock.freeze()
    with app.app_context(), services.db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        alice = directory.create_user(s, services.passwords, t, "alice", ALICE, "member",
                                      PASSWORD)  # fmt: skip
        security_event(s, services, t, alice, "mfa.disabled")
    worker = Worker(services)
    retries, failures = sent("mail", "retry"), sent("mail", "failed")

    for attempt, wait in ((1, 30), (2, 60)):
        now = int(services.clock.time())
        assert worker.run_once() == 1
        (row,) = rows(services)
        assert (row.status, row.attempts, row.claimed_until) == ("pending", attempt, None)
        assert row.last_error == "DeliveryFailed: smtp"
        assert now + wait // 2 <= row.next_attempt_at <= now + wait  # backoff, with jitter
        assert sent("mail", "retry") == retries + attempt
        services.clock.advance(row.next_attempt_at - now - 1)
        assert worker.run_once() == 0  # not due yet: no attempt
        services.clock.advance(1)

    assert worker.run_once() == 1
    (row,) = rows(services)
    assert (row.status, row.attempts) == ("failed", 3)
    assert sent("mail", "failed") == failures + 1 and sent("mail", "retry") == retries + 2
    with services.db.session() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.event == "notification.failed"))
        assert event.result == "failure" and event.subject_id == row.user_id
        assert event.details == {"notification": "mfa.disabled", "channel": "mail",
                                 "attempts": 3, "error": "DeliveryFailed: smtp"}  # fmt: skip
    services.clock.advance(86400)
    assert worker.run_once() == 0  # failed for good: never tried again


@pytest.mark.postgres
def test_two_workers_on_postgresql_never_send_one_row_twice(
    tmp_path: Path, postgres_url: str, outboxes: Outboxes
) -> None:
    url = create_database(postgres_url, f"t_{uuid.uuid4().hex[:12]}")
    # Two nodes: one database, one data key (each row's recipient is encrypted under it).
    node = {"database_url": url, "data_key": secrets.token_urlsafe(32), "mail_sender": "smtp",
            "smtp_host": "127.0.0.1", "smtp_port": outboxes.smtp_port, "smtp_security": "none",
            "mail_from": "id@acme.test"}  # fmt: skip
    apps = [make_app(tmp_path / name, **node) for name in ("a", "b")]
    first = svc(apps[0])
    total = 40
    with apps[0].app_context(), first.db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        for n in range(total):
            outbox.mail(s, first, t, "test.notice", f"user{n}@acme.test", f"notice {n}", "Hello.")

    claimed: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def work(i: int) -> None:
        worker = Worker(svc(apps[i]))
        start.wait(10)
        while (n := worker.run_once()) > 0:
            claimed[i].append(n)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(claimed[0]) + sum(claimed[1]) == total  # each row claimed by one worker, once
    assert max(claimed[0] + claimed[1]) <= BATCH  # PostgreSQL ran the LIMIT once (the CTE)
    got = sorted(m["subject"] for m in outboxes.mail.items)
    assert got == sorted(f"notice {n}" for n in range(total))  # each delivered exactly once
    assert {r.status for r in rows(first)} == {"sent"}
    for app in apps:
        svc(app).db.engine.dispose()


# --- the worker as a process --------------------------------------------------------------
@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Inbox]]:
    """One instance (tenant acme, user alice) that mails a real SMTP server, shared by the
    process tests below; the worker polls every second."""
    tmp = tmp_path_factory.mktemp("outbox")
    with smtp_server() as (port, inbox):
        env = idp_env(tmp / "instance", IDP_MAIL_SENDER="smtp", IDP_SMTP_HOST="127.0.0.1",
                      IDP_SMTP_PORT=str(port), IDP_SMTP_SECURITY="none",
                      IDP_MAIL_FROM="id@acme.test", IDP_OUTBOX_POLL_INTERVAL="1",
                      IDP_OUTBOX_WORKER="on")  # fmt: skip
        seed(env, "acme", "alice", PASSWORD)
        yield env, inbox


def queue_notice(env: dict[str, str], subject: str) -> None:
    """A notice for alice, queued as a request would (the app of ``env``'s instance)."""
    services = build_services(load(environ=env))
    with services.db.session() as s:
        t = directory.require_tenant(s, "acme")
        alice = directory.require_user(s, t, "alice")
        assert outbox.mail(s, services, t, "test.notice", ALICE, subject, "Hello.", user=alice)
    services.db.engine.dispose()


def arrived(inbox: Inbox, subject: str, timeout: float = 10) -> bool:
    """Whether a mail to alice with ``subject`` arrives within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(m["subject"] == subject for m in inbox.to(ALICE)):
            return True
        time.sleep(0.05)
    return False


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append((int(entry), cmdline.replace(b"\0", b" ").decode()))
    return found


def workers_of(pid: int) -> list[int]:
    return [child for child, cmd in children(pid) if "main(['worker'])" in cmd]


def serve_pid(base: str) -> int:
    """The ``idp serve`` process listening at ``base`` (live_idp does not say)."""
    port = base.rpartition(":")[2]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in args and port.encode() in args:
                return int(entry)
    raise AssertionError(f"no idp serve for {base}")


def test_idp_worker_delivers_and_stops_on_sigterm(instance: tuple[dict[str, str], Inbox]) -> None:
    env, inbox = instance
    queue_notice(env, "to the worker")
    exe = str(Path(sys.executable).parent / "idp")
    proc = subprocess.Popen([exe, "worker"], env=env, stderr=subprocess.PIPE)
    try:
        assert arrived(inbox, "to the worker")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()


def test_idp_serve_runs_the_worker_as_its_child_and_replaces_it_also_under_libfaketime(
    instance: tuple[dict[str, str], Inbox], tmp_path: Path
) -> None:
    env, inbox = instance
    clock = ServerClock(tmp_path)  # every sleep in the server's processes now fails
    with live_idp(env, clock=clock) as base:
        serve = serve_pid(base)
        (worker,) = workers_of(serve)
        clock.advance(3600)  # a row queued now is due for the worker (its clock is ahead)
        queue_notice(env, "from the child")
        assert arrived(inbox, "from the child")
        assert Path(f"/proc/{worker}").exists()  # alive: it waits without sleeping
        # A child that dies is replaced: notifications never stop in silence.
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while workers_of(serve) in ([], [worker]) and time.monotonic() < deadline:
            time.sleep(0.05)
        (worker,) = workers_of(serve)
        queue_notice(env, "from the next child")
        assert arrived(inbox, "from the next child")
    deadline = time.monotonic() + 10
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # reaped by its parent's stop()
    assert not Path(f"/proc/{worker}").exists()


def test_no_worker_with_no_worker_or_outbox_worker_off(
    instance: tuple[dict[str, str], Inbox],
) -> None:
    env, _ = instance
    with live_idp({**env, "IDP_OUTBOX_WORKER": "off"}) as base:
        assert workers_of(serve_pid(base)) == []
    port = free_port()
    exe = str(Path(sys.executable).parent / "idp")
    proc = subprocess.Popen([exe, "serve", "--port", str(port), "--workers", "1", "--no-worker"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        wait_for_port(port, proc)
        assert workers_of(proc.pid) == []  # spawn() would have run before granian listens
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # nothing of this server is under test any more
        proc.wait()
