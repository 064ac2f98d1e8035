"""A tiny relying party for the remembered-browser test in Chromium: a callback server that
shows what it received, and the id_token's claims checked against the issuer's JWKS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from testkit.servers import free_port


class _Callback(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"<!doctype html><title>RP</title><pre id=got>{self.path.partition('?')[2]}</pre>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def callback_server() -> Iterator[str]:
    """The application's redirect URI; its page shows the query it got in ``#got``."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/cb"
    finally:
        server.shutdown()
        server.server_close()


def id_token_claims(base: str, jws: str) -> dict[str, Any]:
    """The id_token's claims, its signature checked with the tenant's published keys."""
    keys = KeySet.import_key_set(requests.get(f"{base}/t/acme/jwks", timeout=10).json())
    return dict(jwt.decode(jws, keys).claims)
