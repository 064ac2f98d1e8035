"""Real local servers that receive what Stepwise sends: an SMTP server (aiosmtpd) and an HTTP
server standing in for an SMS gateway's webhook. Tests read messages back from them.

Notifications go through the outbox (idp.outbox). For an app in the test's process, an inbox
is given a ``drain``: the real worker's single pass (idp.outbox_worker.Worker.run_once), run
before every read, so what was queued is delivered through SMTP first, and "nothing came"
means nothing was queued. A live server's own worker delivers instead (``wait`` polls)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from idp.outbox_worker import Worker
from idp.services import Services
from testkit.servers import free_port

CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class Inbox:
    """Messages received, newest last; ``wait`` polls because delivery happens in a thread
    or another process."""

    items: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False  # the SMS gateway answers 503 while set
    lock: threading.Lock = field(default_factory=threading.Lock)
    drain: Callable[[], object] | None = None  # delivers the app's outbox (see the module)

    def _drain(self) -> None:
        if self.drain is not None:
            self.drain()

    def add(self, item: dict[str, Any]) -> None:
        with self.lock:
            self.items.append(item)

    def wait(self, to: str, after: int = 0, timeout: float = 5) -> dict[str, Any]:
        """The first message to ``to`` beyond the first ``after`` ones to that address."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._drain()
            with self.lock:
                mine = [m for m in self.items if m["to"] == to]
            if len(mine) > after:
                return mine[after]
            time.sleep(0.02)
        raise AssertionError(f"no message #{after + 1} for {to} within {timeout}s")

    def to(self, address: str) -> list[dict[str, Any]]:
        self._drain()
        with self.lock:
            return [m for m in self.items if m["to"] == address]

    def code(self, to: str, after: int = 0) -> str:
        match = CODE.search(self.wait(to, after)["text"])
        assert match, "no 6-digit code in the message"
        return match.group(1)


@dataclass(frozen=True)
class Outboxes:
    mail: Inbox
    sms: Inbox
    smtp_port: int
    sms_url: str

    def attach(self, svc: Services) -> None:
        """Read through ``svc``'s outbox: each read first runs the real worker's pass."""
        worker = Worker(svc)
        self.mail.drain = self.sms.drain = worker.run_once


class _SmtpHandler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg: Message = message_from_bytes(envelope.content)
        body = msg.get_payload(decode=True)
        text = body.decode() if isinstance(body, bytes) else str(msg.get_payload())
        for rcpt in envelope.rcpt_tos:
            self.inbox.add({"to": rcpt, "subject": str(msg["Subject"]), "text": text})
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(_SmtpHandler(inbox), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@contextmanager
def sms_gateway() -> Iterator[tuple[str, Inbox]]:
    """An HTTP server taking the webhook sender's JSON (a stand-in for an SMS vendor)."""
    inbox = Inbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if inbox.down:
                self.send_response(503)
            else:
                inbox.add(
                    {
                        "to": body["to"],
                        "text": body["message"],
                        "auth": self.headers.get("Authorization"),
                    }
                )
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/send", inbox
    finally:
        server.shutdown()
        server.server_close()
