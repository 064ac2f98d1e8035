"""The fault tests' load generator (testkit.load) can see what it is there to see: answers
sorted into outcomes as its docstring says, the recovery point, and a token or code given
without its factors, shown against a deliberately broken identity provider (a local HTTP
server that skips the TOTP step or answers ``prompt=none`` with a code)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from testkit.load import (
    REDIRECT_URI,
    Load,
    Outcome,
    Record,
    Target,
    classify,
    recovery_point,
    summarize,
)


def answer(status: int, body: str = "", **headers: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp._content = status, body.encode()
    resp.headers.update(headers)
    return resp


NODE = {"X-Stepwise-Node": "node-a"}
PAGE_503 = '<html><link rel="stylesheet" href="/static/style.css"><h1>Service unavailable</h1>'


@pytest.mark.parametrize(
    ("resp", "outcome", "detail"),
    [
        (answer(200, "{}", **NODE), Outcome.OK, "200"),
        (answer(503, PAGE_503, **NODE), Outcome.REFUSED, "503 page"),
        (
            answer(
                503, '{"error": "temporarily_unavailable"}', **{"Content-Type": "application/json"}
            ),
            Outcome.REFUSED,
            "temporarily_unavailable",
        ),
        (
            answer(503, "<html><body><h1>503 Service Unavailable</h1>\nNo server is available"),
            Outcome.REFUSED,
            "proxy 503",
        ),
        (answer(502, "<html><body><h1>502 Bad Gateway</h1>\n"), Outcome.DROPPED, "proxy 502"),
        (
            answer(500, "<!doctype html><title>500 Internal Server Error</title>"),
            Outcome.IMPROPER,
            "500 Internal Server Error",
        ),
        (
            answer(302, Location=f"{REDIRECT_URI}?error=temporarily_unavailable"),
            Outcome.REFUSED,
            "temporarily_unavailable (redirect)",
        ),
        (
            answer(400, '{"error": "invalid_grant"}', **{"Content-Type": "application/json"}),
            Outcome.REJECTED,
            "400 invalid_grant",
        ),
        (
            answer(500, "<title>Something went wrong · Stepwise</title>", **NODE),
            Outcome.IMPROPER,
            "500 Something went wrong",
        ),
        (answer(503, "half a page", **NODE), Outcome.IMPROPER, "503 without a proper body"),
    ],
)
def test_answers_are_sorted_as_documented(
    resp: requests.Response, outcome: Outcome, detail: str
) -> None:
    assert classify(resp, lambda r: r.status_code == 200) == (outcome, detail)


def rec(at: float, outcome: Outcome) -> Record:
    return Record(at, "refresh", "token", 200, 0.01, outcome, outcome.value)


def test_recovery_is_the_first_success_after_which_all_succeed() -> None:
    ok, refused = Outcome.OK, Outcome.REFUSED
    rows = [rec(0, ok), rec(1, refused), rec(2, ok), rec(3, refused), rec(4, ok), rec(5, ok)]
    assert recovery_point(rows) == 4
    assert recovery_point([*rows, rec(6, refused)]) is None  # not recovered
    assert recovery_point([rec(0, ok), rec(1, ok)]) == 0
    summary = summarize(rows, start=1, end=3.5)
    assert (summary.recovery_from_start, summary.recovery_from_end) == (3, 0.5)
    assert summary.lost == 0 and summary.outcomes == {"ok": 4, "refused": 2}
    assert summary.latency["during"][2] == 3  # requests started at 1, 2 and 3


def token_with_amr(amr: list[str]) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"amr": amr}).encode()).decode().rstrip("=")
    return f"e30.{claims}.sig"


class BrokenIdp(BaseHTTPRequestHandler):
    """Just enough of the login pages to be driven by testkit.load, with the flaws the load
    must report: ``skip_totp`` gives the code right after the password of a TOTP user; else
    ``prompt=none`` between the password and the TOTP step gives a code. Its id_tokens say
    only ``pwd``."""

    skip_totp = False

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def send(self, status: int, body: str = "", **headers: str) -> None:
        self.send_response(status)
        for k, v in {"X-Stepwise-Node": "broken", **headers}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def form(self, step: str) -> None:
        self.send(200, f'<form method="post" action="/t/acme/login?flow=f">'
                       f'<input type="hidden" name="step" value="{step}"></form>')  # fmt: skip

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/t/acme/authorize" and query.get("prompt") == ["none"]:
            self.send(302, Location=f"{REDIRECT_URI}?code=probe&state=s")
        elif url.path == "/t/acme/authorize":
            self.send(302, Location="/t/acme/login?flow=f")
        else:
            self.form("identify")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = parse_qs(self.rfile.read(length).decode())
        if self.path == "/t/acme/token":
            body = json.dumps({"access_token": "a", "id_token": token_with_amr(["pwd"])})
            self.send(200, body, **{"Content-Type": "application/json"})
        elif form["step"] == ["identify"] and not self.skip_totp:
            self.form("verify_totp")
        else:
            self.send(302, Location=f"{REDIRECT_URI}?code=c&state=s")


@pytest.fixture
def broken() -> Iterator[type[BrokenIdp]]:
    handler = type("Handler", (BrokenIdp,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.base = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


def load_on(broken: type[BrokenIdp]) -> Load:
    base: str = broken.base  # type: ignore[attr-defined]
    return Load(Target(base, "acme", "client", "secret", ["alice"], []), 0, 0)


def test_a_code_without_the_totp_step_is_a_violation(broken: type[BrokenIdp]) -> None:
    broken.skip_totp = True
    load = load_on(broken)
    with requests.Session() as browser:
        assert load.login(browser, "tom", totp_code="123456") is not None
        assert load.login(browser, "alice") is not None  # a password user: pwd is enough
    assert load.violations == [
        "tom: a code without an accepted TOTP code",
        "tom: id_token amr ['pwd'], wanted ['otp', 'pwd']",
    ]


def test_a_code_for_prompt_none_before_the_totp_step_is_a_violation(
    broken: type[BrokenIdp],
) -> None:
    load = load_on(broken)
    with requests.Session() as browser:
        load.login(browser, "tom", totp_code="123456")
    assert load.violations[0] == "tom: prompt=none gave a code before the TOTP step"
    probe = [r for r in load.records if r.step == "probe"]
    assert probe and probe[0].outcome is Outcome.REJECTED
