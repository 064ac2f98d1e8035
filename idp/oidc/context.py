"""One request of one tenant, as the OpenID Provider's Flask-free code sees it.

:class:`Context` carries the storage, keys and the request's time (``now``, read once by the
web layer from ``idp.clock``). :class:`HttpRequest` and :class:`HttpResponse` are the HTTP
request and response as plain data, and :class:`OAuthRequest` is authlib's view of the
former (RFC 6749), so nothing below the web modules imports Flask.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import rfc6749
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from flows.context import level_of_amr
from idp.crypto import DataCipher
from idp.ephemeral import EphemeralStore
from idp.oidc import acr
from idp.oidc.tokens import KeyCache, Signer
from idp.store.models import Tenant


@dataclass
class Context:
    """What one request of one tenant needs: storage, keys and the time.

    ``now`` is the request's time in whole seconds; ``monotonic`` the app clock's monotonic
    reading, for when a retired key leaves the cached JWKS.
    """

    s: Session
    tenant: Tenant
    issuer: str
    cipher: DataCipher
    store: EphemeralStore
    now: int
    keys: KeyCache
    client_ip: str = "-"
    monotonic: float = 0.0

    def signer(self, alg: str = "RS256") -> Signer:
        return self.keys.signer(self.s, self.cipher, self.tenant, alg)

    def verifier(self) -> KeySet:
        return self.keys.verifier(self.s, self.tenant, self.now, self.monotonic)

    def acr_levels(self) -> dict[str, int]:
        return acr.table(self.tenant.acr_levels)

    def token_level(self, acr_value: str, amr: Sequence[str]) -> int:
        """The level a token or family holds: its ``acr`` in today's table, but never more
        than its ``amr`` proves (an admin may have raised that acr value's level since)."""
        return min(self.acr_levels().get(acr_value, 1), max(1, level_of_amr(amr)))


@dataclass
class HttpRequest:
    """A framework-free view of the HTTP request: method, URL, headers and parameters."""

    method: str
    uri: str
    headers: dict[str, str]
    params: dict[str, list[str]]


@dataclass
class HttpResponse:
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Payload(rfc6749.OAuth2Payload):  # authlib ships no type hints
    def __init__(self, params: dict[str, list[str]]) -> None:
        self._datalist = defaultdict(list, params)
        self._data = {k: v[0] for k, v in params.items() if v}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class OAuthRequest(rfc6749.OAuth2Request):  # authlib ships no type hints
    """authlib's request (RFC 6749) over an :class:`HttpRequest`."""

    def __init__(self, req: HttpRequest) -> None:
        super().__init__(req.method, req.uri, headers=req.headers)
        self.payload = _Payload(req.params)

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data
