"""Answers that leave the request body unread keep a keep-alive connection usable, under the
real ``idp serve`` (issue 13, "Bad input never gives a 500", cause 6).

Before the fix a 413 came without ``Connection: close`` and the server then dropped the
connection, so a client's next request on it failed.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from testkit.servers import idp_env, live_idp
from tests.cli_support import seed

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BYTES = {"Content-Type": "application/octet-stream"}  # read by nothing, not even the form check


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    env = idp_env(tmp_path_factory.mktemp("keepalive") / "instance")
    seed(env, "acme", "alice", "correct horse battery")
    with live_idp(env) as base:
        yield urlsplit(base).port or 80


def health(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/healthz")
    resp = conn.getresponse()
    resp.read()
    return resp.status


@pytest.mark.parametrize(
    ("method", "path", "size", "headers", "status"),
    [
        ("POST", "/t/acme/token", 70_000, FORM, 413),  # over MAX_CONTENT_LENGTH (64 KiB)
        ("POST", "/t/acme/login", 200_000, FORM, 413),
        ("PUT", "/healthz", 60_000, BYTES, 405),  # under the limit, never read
        ("POST", "/nowhere", 60_000, BYTES, 404),
    ],
)
def test_the_next_request_on_the_connection_is_answered(
    port: int, method: str, path: str, size: int, headers: dict[str, str], status: int
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=b"a=" + b"x" * size, headers=headers)
        first = conn.getresponse()
        first.read()
        assert first.status == status
        assert first.getheader("Connection") == "close"  # the unread body is not drained
        assert health(conn) == 200  # http.client opened a new connection, as it was told
    finally:
        conn.close()


def test_a_body_never_sent_is_answered_with_connection_close(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # Only the head is sent: the server answers 413 before it reads any of the body.
        length = 2 * 1024 * 1024
        sock.sendall(
            b"POST /t/acme/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % length
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.partition(b"\r\n\r\n")[0].decode().lower().split("\r\n")
    assert head[0] == "http/1.1 413 payload too large"
    assert "connection: close" in head  # and the server then closed it (recv saw the end)


def test_a_client_that_is_told_reconnects(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", "/t/acme/token")
        conn.putheader("Content-Type", FORM["Content-Type"])
        conn.putheader("Content-Length", str(2 * 1024 * 1024))
        conn.endheaders()
        first = conn.getresponse()
        first.read()
        assert first.status == 413 and first.getheader("Connection") == "close"
        assert health(conn) == 200  # http.client opened a new connection, as it was told
    finally:
        conn.close()


def test_slow_bodies_hold_no_worker(port: int) -> None:
    """Clients that declare a body and send almost none of it get their answer at once, and
    the server keeps answering others: nothing waits for the rest of their bodies."""
    socks = []
    try:
        for _ in range(8):  # more than the worker's threads
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(
                b"POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/octet-stream\r\nContent-Length: 200000\r\n\r\n"
                b"0123456789"
            )
            socks.append(sock)
        for sock in socks:
            head = sock.recv(65536).partition(b"\r\n\r\n")[0].decode().lower().split("\r\n")
            assert head[0] == "http/1.1 404 not found" and "connection: close" in head
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        assert health(conn) == 200
        conn.close()
    finally:
        for sock in socks:
            sock.close()


def test_a_body_that_was_read_keeps_the_connection(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/t/acme/token", body=b"grant_type=password", headers=FORM)
        first = conn.getresponse()
        assert json.loads(first.read())["error"] == "unsupported_grant_type"
        assert first.status == 400 and first.getheader("Connection") is None
        sock = conn.sock
        assert health(conn) == 200
        assert conn.sock is sock  # the same connection answered
    finally:
        conn.close()
