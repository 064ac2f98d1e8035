"""Log lines and the access log (docs/operations/observability.md).

- ``IDP_LOG_FORMAT=text`` (the development default) or ``json``: one object per line
  (python-json-logger), each naming the request it belongs to: ``request_id``, ``tenant``,
  ``route``, ``method``, ``status`` once known, and ``node`` (``IDP_NODE_NAME``) when set.
- ``IDP_ACCESS_LOG=on``: one line per request, handed to a background thread through a queue
  (logging's QueueHandler and QueueListener), so that a request never waits for a write or
  for the lock of a handler that writes. Off by default.

No Flask here: idp.request_telemetry opens a :class:`RequestFacts` per request in
:data:`CURRENT`; the :class:`RequestFields` filter copies it onto every record.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from logging.handlers import QueueHandler, QueueListener
from typing import TextIO

from idp.settings import Settings

__all__ = ["CURRENT", "RequestFacts", "configure", "request_id"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
ACCESS = "idp.access"  # the access log's logger; it never propagates to the root logger
_SANE_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


@dataclass(slots=True)
class RequestFacts:
    """What the log lines of one request say about it; ``route`` and ``tenant`` are known
    once the URL has matched, ``status`` once the answer has started."""

    request_id: str
    method: str
    route: str | None = None
    tenant: str | None = None
    status: int | None = None


CURRENT: ContextVar[RequestFacts | None] = ContextVar("stepwise_request", default=None)


def request_id(given: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is sane (at most 128 characters of a safe set,
    so that it cannot forge or break a log line), else a new random one."""
    if given and _SANE_ID.fullmatch(given):
        return given
    return os.urandom(16).hex()  # unpredictable: echoed to every client


class RequestFields(logging.Filter):
    """Puts the current request's facts on each record (as attributes: JSON fields)."""

    def filter(self, record: logging.LogRecord) -> bool:
        facts = CURRENT.get()
        if facts is not None:
            record.request_id = facts.request_id
            record.method = facts.method
            if facts.route is not None:
                record.route = facts.route
            if facts.tenant is not None and not hasattr(record, "tenant"):
                record.tenant = facts.tenant
            if facts.status is not None and not hasattr(record, "status"):
                record.status = facts.status
        return True


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to ``sys.stderr`` as it is when a line is written (as ``logging.lastResort``
    does): test runners and embedding hosts swap it, and a closed stream must not be kept."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """The stream is always the current ``sys.stderr``."""


class Enqueue(QueueHandler):
    """Puts records on the access log's queue as they are: the listener's thread formats them.
    (QueueHandler formats and copies each record first, so that it survives pickling to
    another process; this queue stays in the process, and the request keeps the saving.)"""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def formatter(settings: Settings) -> logging.Formatter:
    """The formatter of ``IDP_LOG_FORMAT``; JSON lines also carry ``node`` when it is set."""
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter  # only when asked for (CLI start-up)

        return JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"node": settings.node_name} if settings.node_name else None,
            timestamp="time",  # ISO 8601, UTC
        )
    return logging.Formatter(TEXT_FORMAT, defaults={"request_id": "-"})


class _State:
    """What :func:`configure` installed last, so that configuring again replaces it."""

    handler: logging.Handler | None = None
    listener: QueueListener | None = None


def configure(settings: Settings) -> None:
    """Set up the app's log lines; safe to call again (each app a test builds calls it).

    As ``logging.basicConfig`` did before: in text mode a root logger that someone else has
    given handlers (a test runner, an embedding host) is left alone. JSON is asked for
    explicitly, so its handler is always added.
    """
    root = logging.getLogger()
    if _State.handler is not None:
        root.removeHandler(_State.handler)
        _State.handler = None
    if settings.log_format == "json" or not root.handlers:
        handler = StderrHandler()
        handler.addFilter(RequestFields())
        handler.setFormatter(formatter(settings))
        root.addHandler(handler)
        root.setLevel(settings.log_level)
        _State.handler = handler
    _configure_access_log(settings)


def _configure_access_log(settings: Settings) -> None:
    stop_access_log()
    access = logging.getLogger(ACCESS)
    for old in list(access.handlers):
        access.removeHandler(old)
    access.propagate = False
    if settings.access_log != "on":
        return  # and idp.request_telemetry writes no line
    access.setLevel(logging.INFO)
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    enqueue = Enqueue(lines)
    enqueue.addFilter(RequestFields())
    access.addHandler(enqueue)
    writer = StderrHandler()
    writer.setFormatter(formatter(settings))
    _State.listener = QueueListener(lines, writer)
    _State.listener.start()


def unconfigure() -> None:
    """Undo :func:`configure` (for hosts that embed the app, and tests)."""
    if _State.handler is not None:
        logging.getLogger().removeHandler(_State.handler)
        _State.handler = None
    stop_access_log()
    for old in list(logging.getLogger(ACCESS).handlers):
        logging.getLogger(ACCESS).removeHandler(old)


def access_log_enabled() -> bool:
    return _State.listener is not None


def stop_access_log() -> None:
    """Write what the access log's queue still holds, then stop its thread."""
    if _State.listener is not None:
        _State.listener.stop()
        _State.listener = None


atexit.register(stop_access_log)
