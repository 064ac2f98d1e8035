"""The fuzzer (bench/fuzz.py, issue 13) in the suite: a small seeded sample against a live
``idp serve`` gets no 5xx and logs no error, and the fuzzer's counting can fail: it counts a
crashing request of a dedicated app, a connection dropped without ``Connection: close``, and
the tracebacks in real log text; and the Flask-client fuzz tests' check sees an unhandled
error."""

from __future__ import annotations

import io
import logging
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from bench import fuzz
from testkit.unhandled import as_in_production, logged_errors
from tests.conftest import make_app

SEED, SAMPLE = 13, 1000  # enough to reach each of the ~90 routes


def test_a_seeded_sample_gets_no_5xx_and_logs_no_error(tmp_path: Path) -> None:
    with fuzz.live_server(tmp_path) as server:
        fuzzer = fuzz.Fuzzer(server, SEED)
        fuzzer.prepare()
        report = fuzzer.run(fuzz.Generator(SEED, server.routes).specs(SAMPLE))
    out = io.StringIO()
    fuzz.print_report(report, server.port, server.routes, out)
    assert (report.five_xx, report.tracebacks, report.dropped) == (0, 0, 0), out.getvalue()
    assert report.sent == report.answered == SAMPLE, out.getvalue()
    # The sample reached the app's routes signed in and not, and got past the first checks.
    assert set(report.rules) >= {r.rule for r in server.routes}, out.getvalue()
    assert {"anon", "alice", "bob", "olivia"} <= {w for w, c in fuzzer.clients.items() if c.csrf}
    assert report.statuses[200] > 0 and report.statuses[400] > 0, out.getvalue()


def crashing_app(log: Path) -> Flask:
    """A dedicated app: ``/boom`` raises, and Flask logs the traceback to ``log``."""
    app = Flask("crashing")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    handler = logging.FileHandler(log)
    app.logger.addHandler(handler)

    @app.get("/ok")
    def ok() -> str:
        return "ok"

    @app.get("/boom")
    def boom() -> str:
        return str(1 // 0)

    return app


def fuzzer_for(port: int, log: Path, rules: list[str]) -> fuzz.Fuzzer:
    routes = [fuzz.Route(rule, ("GET",), "test") for rule in rules]
    server = fuzz.Server(f"http://127.0.0.1:{port}", port, log, {}, routes, {})
    fuzzer = fuzz.Fuzzer(server, SEED)
    fuzzer.values["host"] = f"127.0.0.1:{port}"
    return fuzzer


def get(index: int, path: str) -> fuzz.Spec:
    return fuzz.Spec(index, "anon", "GET", path, path, headers=[("Host", "{{host}}")])


def test_a_crashing_request_is_counted_with_its_cause(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    server = make_server("127.0.0.1", 0, crashing_app(log))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        fuzzer = fuzzer_for(server.port, log, ["/ok", "/boom"])
        report = fuzzer.run(iter([get(0, "/ok"), get(1, "/boom"), get(2, "/ok")]))
    finally:
        server.shutdown()
        server.server_close()
    assert (report.sent, report.five_xx, report.tracebacks) == (3, 1, 1)
    assert report.failed
    (crash,) = [f for f in report.findings.values() if f.kind == "traceback"]
    assert crash.summary.startswith("ZeroDivisionError: integer division or modulo by zero")
    assert "tests/web/test_fuzz_sample.py" in crash.summary and "in boom" in crash.summary
    assert crash.spec is not None and crash.spec.path == "/boom"


class DropsAfterOneAnswer(socketserver.BaseRequestHandler):
    """Answers one request as keep-alive, then closes without saying so (cause 6)."""

    def handle(self) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@contextmanager
def dropping_server() -> Iterator[int]:
    server = socketserver.TCPServer(("127.0.0.1", 0), DropsAfterOneAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_connection_dropped_without_connection_close_is_counted(tmp_path: Path) -> None:
    log = tmp_path / "empty.log"
    log.touch()
    with dropping_server() as port:
        fuzzer = fuzzer_for(port, log, ["/a", "/b"])
        report = fuzzer.run(iter([get(0, "/a"), get(1, "/b")]))
    assert report.dropped == 1 and report.failed
    (finding,) = report.findings.values()
    assert finding.spec is not None and finding.spec.path == "/a"  # the answer that left it open


def test_the_log_scanner_reads_real_tracebacks() -> None:
    out = io.StringIO()
    logger = logging.getLogger("test_fuzz_sample.scanner")
    logger.propagate = False
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    try:
        logger.warning('127.0.0.1 - "GET /t/acme/login HTTP/1.1" 200')
        try:
            try:
                {}["missing"]  # the first exception of a chain
            except KeyError as exc:
                raise ValueError("bad value") from exc
        except ValueError:
            logger.exception("unhandled error on GET /t/acme/login")
        logger.error("unhandled error on POST /t/acme/token")  # one without its traceback
    finally:
        logger.removeHandler(handler)
    crashes = fuzz.scan_log(out.getvalue())
    assert len(crashes) == 2, crashes
    chained, bare = crashes
    assert chained.exception == "ValueError: bad value"
    assert chained.frame.startswith("tests/web/test_fuzz_sample.py:")
    assert chained.frame.endswith("in test_the_log_scanner_reads_real_tracebacks")
    assert "KeyError: 'missing'" in chained.text  # the chain is one crash
    assert bare.frame == "(no traceback)" and "unhandled error on POST" in bare.exception
    assert fuzz.scan_log('127.0.0.1 - "GET / HTTP/1.1" 200\n') == []


def test_the_fuzz_tests_see_an_unhandled_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The check of tests/web/test_*_fuzz.py (testkit.unhandled) counts a real one."""
    app = make_app(tmp_path)

    @app.get("/boom")
    def boom() -> str:
        return str(1 // 0)

    resp = as_in_production(app).test_client().get("/boom")
    assert resp.status_code == 500
    (record,) = logged_errors(caplog.records)
    assert record.getMessage() == "unhandled error on GET /boom"
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
