"""Public documents answered from memory, before Flask: each tenant's JWKS and discovery
document, which relying parties and resource servers fetch far more often than they change.

The first GET of a document goes through Flask as usual. A view that may be replayed says so
(:func:`replayable`), and this middleware keeps the answer it gave (status 200, every header
the app set, the body) in the configuration cache (idp.config_cache), so it stays valid as
long as the document does: until any configuration changes anywhere (seen within
:data:`LAG`: the version is read at most once a second here, one Redis round trip saved per
request), or until the time the view gives (a retired key leaving the JWKS). Later plain
GETs (no query string, no cookie, no conditional header) get those same headers and bytes
without a request context; everything else, a 304 included, goes to Flask. The answer is the
same by construction, since it is the one Flask gave. The request id, the latency histogram
and the access log still apply: this sits inside idp.request_telemetry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from idp import logs
from idp.config_cache import ConfigCache

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]

DOCUMENT = re.compile(
    r"/t/[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?/(?:jwks|\.well-known/openid-configuration)"
)
REPLAY = "stepwise.replay_until"  # environ key: the view allows a replay, until this time
LAG = 1.0  # seconds a replayed document may trail a change made on another node
VARIES = ("HTTP_COOKIE", "QUERY_STRING", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE")


@dataclass(frozen=True)
class Kept:
    headers: list[tuple[str, str]]
    body: bytes
    route: str | None
    tenant: str | None


def replayable(environ: Environ, until: float | None = None) -> None:
    """Called by a view whose 200 answer is the same for every plain GET of its URL while the
    configuration version holds (and until ``until``, monotonic, when given)."""
    environ[REPLAY] = until


class DocumentCache:
    """WSGI middleware: replays kept answers, and keeps the ones views allow."""

    def __init__(self, app: WsgiApp, config: ConfigCache) -> None:
        self.app, self.config = app, config

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or not path.startswith("/t/")
            or any(environ.get(k) for k in VARIES)
            or not DOCUMENT.fullmatch(path)
        ):
            return self.app(environ, start_response)
        self.config.begin(within=LAG)
        kept: Kept | None = self.config.peek(("answer", path))
        if kept is not None:
            facts = logs.CURRENT.get()
            if facts is not None:
                facts.route, facts.tenant = kept.route, kept.tenant
            start_response("200 OK", list(kept.headers))
            return [kept.body]
        return self._keep(path, environ, start_response)

    def _keep(self, path: str, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        generation = self.config.generation
        answer: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            answer.update(status=status, headers=list(headers))
            return start_response(status, headers, *exc)

        chunks = self.app(environ, start)
        if REPLAY not in environ or not answer.get("status", "").startswith("200 "):
            return chunks
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        # Date is the server's to add to each answer (granian does), never a kept one.
        headers = [(k, v) for k, v in answer["headers"] if k.lower() != "date"]
        if not any(k.lower() == "set-cookie" for k, _ in headers):
            facts = logs.CURRENT.get()
            route, tenant = (facts.route, facts.tenant) if facts is not None else (None, None)
            kept = Kept(headers, body, route, tenant)
            self.config.put(("answer", path), kept, generation, environ[REPLAY])
        return [body]
