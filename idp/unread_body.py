"""Answers that leave the request body unread say ``Connection: close`` (issue 13, cause 6).

An answer given before the body is read (413 for a body over ``MAX_CONTENT_LENGTH``, 404, 405,
a refused CSRF token) leaves the rest of the body on the connection. The server cannot read
the next request from behind it, so it closes the connection; without ``Connection: close``
a keep-alive client only learns this when its next request on that connection fails
(RFC 9112 section 9.6: a server that closes must say so).

The body is counted as the app reads it, never read on the app's behalf: draining it would
hold a worker thread for as long as a slow client takes to send what it declared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any

__all__ = ["CloseAfterUnreadBody"]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _declared_length(environ: Environ) -> int | None:
    """The body's Content-Length, 0 for none, or None when it is chunked or unreadable."""
    if environ.get("HTTP_TRANSFER_ENCODING", "").strip():
        return None
    raw = environ.get("CONTENT_LENGTH", "").strip()
    if not raw:
        return 0
    return int(raw) if raw.isascii() and raw.isdigit() else None


class CountingInput:
    """``wsgi.input``, counting the bytes the app reads and noticing the end of the body."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.read_bytes, self.ended = stream, 0, False

    def read(self, size: int | None = -1) -> bytes:
        whole = size is None or size < 0
        data = self.stream.read(-1 if whole or size is None else size)
        self.read_bytes += len(data)
        self.ended = self.ended or whole or not data
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self.stream.readline(size if size is not None else -1)
        self.read_bytes += len(data)
        self.ended = self.ended or not data
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class CloseAfterUnreadBody:
    """WSGI middleware: an answer that leaves body bytes unread says ``Connection: close``.

    The check happens when the app starts its response: by then it has read all of the body
    it is going to read.
    """

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        length = _declared_length(environ)
        stream = environ.get("wsgi.input")
        if length == 0 or stream is None:
            return self.app(environ, start_response)
        counted = environ["wsgi.input"] = CountingInput(stream)

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            unread = not counted.ended if length is None else counted.read_bytes < length
            if unread:
                headers = [(k, v) for k, v in headers if k.lower() != "connection"]
                headers.append(("Connection", "close"))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)
