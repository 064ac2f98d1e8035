"""Answers that leave the request body unread keep the connection usable (issue 13, cause 6).

An answer given before the body is read (413 for a body over ``MAX_CONTENT_LENGTH``, 404, 405,
a refused CSRF token) leaves the rest of the body on the connection. The server cannot read
the next request from behind it, so it closes the connection; without ``Connection: close``
a keep-alive client only learns this when its next request on that connection fails
(RFC 9112 section 9.6: a server that closes must say so). This middleware reads what is left
of the body, up to a bound, so the connection stays alive; a body with more left than that is
not read, and the answer says ``Connection: close`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import IO, Any

__all__ = ["DRAIN_LIMIT", "DrainUnreadBody"]

#: The most unread body bytes drained to keep a connection alive (four times the form limit).
DRAIN_LIMIT = 256 * 1024
CHUNK = 64 * 1024

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


def drain(stream: IO[bytes], limit: int) -> bool:
    """Read ``stream`` to its end if that takes at most ``limit`` bytes; True if it ended."""
    left = limit
    while True:
        chunk = stream.read(min(CHUNK, left + 1))
        if not chunk:
            return True
        left -= len(chunk)
        if left < 0:
            return False


class DrainUnreadBody:
    """WSGI middleware: drain the unread request body, or answer ``Connection: close``.

    The drain happens when the app starts its response: by then it has read all of the body
    it is going to read.
    """

    def __init__(self, app: WsgiApp, limit: int = DRAIN_LIMIT) -> None:
        self.app, self.limit = app, limit

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        length = _declared_length(environ)
        if length == 0:
            return self.app(environ, start_response)

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            stream = environ.get("wsgi.input")
            too_long = length is not None and length > self.limit
            if stream is None or too_long or not drain(stream, self.limit):
                headers = [(k, v) for k, v in headers if k.lower() != "connection"]
                headers.append(("Connection", "close"))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)
