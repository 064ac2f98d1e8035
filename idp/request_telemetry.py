"""What every request leaves behind: its request id, its latency in the histogram, and (when
IDP_ACCESS_LOG=on) an access-log line.

This is the hot path (issue 17 measures it), so the work per request is a few dictionary
lookups, one clock read at each end and one histogram observation; the access log only puts a
record on a queue (idp.logs). A WSGI middleware rather than Flask hooks: it also sees answers
that Flask's hooks would not (a session store that is down, a refused body), and its start
is the earliest point of the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from flask import Flask

from idp import logs
from idp.clock import SYSTEM
from idp.metrics import REQUEST_SECONDS

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]

UNMATCHED = "unmatched"  # no route matched (404, 405): one series, whatever the path
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
LONGEST_PATH = 512  # characters of a path kept in the access log


def status_class(status: int | None) -> str:
    """``2xx`` ... ``5xx``; an answer that never started (an exception) counts as ``5xx``."""
    if status is None or not 100 <= status <= 599:
        return "5xx"
    return STATUS_CLASSES[status // 100 - 1]


def loggable_path(environ: Environ) -> str:
    """The path without its query string (query strings carry codes and tokens), with
    control characters escaped so that a path cannot forge a text log line."""
    path = str(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))[:LONGEST_PATH]
    if path.isprintable():
        return path
    return path.encode("unicode_escape").decode("ascii")


class RequestTelemetry:
    """WSGI middleware: opens the request's :class:`idp.logs.RequestFacts`, echoes its id in
    ``X-Request-Id``, and on the way out observes ``REQUEST_SECONDS`` and writes the access
    log line."""

    def __init__(self, app: WsgiApp, access: logging.Logger | None) -> None:
        self.app, self.access = app, access
        self._now = SYSTEM.monotonic
        # Histogram children by (endpoint, status class): bounded by the app's endpoints.
        self._series: dict[tuple[str, str], Any] = {}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started = self._now()
        facts = logs.RequestFacts(
            logs.request_id(environ.get("HTTP_X_REQUEST_ID")), environ.get("REQUEST_METHOD", "")
        )
        token = logs.CURRENT.set(facts)

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            facts.status = int(status[:3])
            headers.append(("X-Request-Id", facts.request_id))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            try:
                self._observe(environ, facts, self._now() - started)
            finally:
                logs.CURRENT.reset(token)

    def _observe(self, environ: Environ, facts: logs.RequestFacts, elapsed: float) -> None:
        key = (facts.route or UNMATCHED, status_class(facts.status))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = REQUEST_SECONDS.labels(*key)
        series.observe(elapsed)
        if self.access is not None:
            self._access_line(environ, facts, elapsed)

    def _access_line(self, environ: Environ, facts: logs.RequestFacts, elapsed: float) -> None:
        path, ms = loggable_path(environ), round(elapsed * 1000, 2)
        assert self.access is not None
        self.access.info(
            "%s %s %s %.2fms",
            facts.method,
            path,
            facts.status,
            ms,
            extra={"path": path, "status": facts.status, "duration_ms": ms},
        )


def install(app: Flask) -> None:
    """Wrap ``app.wsgi_app`` and name each request's route and tenant for its log lines and
    its latency series."""

    @app.url_value_preprocessor
    def _name_route(endpoint: str | None, values: dict[str, Any] | None) -> None:
        """Registered on the app, this runs before every blueprint's preprocessor (the tenant
        loader pops the slug from ``values``)."""
        facts = logs.CURRENT.get()
        if facts is not None:
            facts.route = endpoint
            if values and "tenant" in values:
                facts.tenant = values["tenant"]

    access = logging.getLogger(logs.ACCESS) if logs.access_log_enabled() else None
    app.wsgi_app = RequestTelemetry(app.wsgi_app, access)  # type: ignore[method-assign]
