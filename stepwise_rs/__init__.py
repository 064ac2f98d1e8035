"""Step-up for resource servers: OAuth 2.0 Step Up Authentication Challenge (RFC 9470).

A package of its own: a resource server imports it without the identity provider's app
(no Flask app factory, no SQLAlchemy; Flask only inside :func:`requires`).

A resource server protects a route with a :class:`Requirement` (acceptable ``acr`` values,
and a ``max_age`` in seconds). :class:`TokenChecker` validates an access token from a
Stepwise tenant (RFC 9068 JWT: signature against the tenant's JWKS, fetched from discovery and
cached; ``typ``, ``iss``, ``exp``, optionally ``aud``) and checks ``acr`` and ``auth_time``.
When the authentication is not enough it raises :class:`InsufficientUserAuthentication`,
whose :meth:`~InsufficientUserAuthentication.header` is the ``WWW-Authenticate`` value of RFC
9470 section 3::

    Bearer error="insufficient_user_authentication",
      error_description="...", acr_values="urn:stepwise:loa:2", max_age=300

The client follows it by sending the user to ``/authorize`` with those ``acr_values`` and
``max_age`` and retrying with the new token. Use it from plain WSGI (:func:`protect`) or from
Flask (:func:`requires`)::

    checker = TokenChecker("https://id.example.com/t/acme")

    @app.get("/api/transfer")
    @requires(checker, Requirement(["urn:stepwise:loa:2"], max_age=300))
    def transfer(): ...  # flask.g.token_claims holds the token's claims
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from flows.assurance import Reason, token_meets
from idp.oidc.acr import LEVELS

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 (RFC 9068 section 2.1: a media type, not a secret)

CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Requirement:
    """What a route needs: one of ``acr_values`` (or a higher level), within ``max_age``."""

    acr_values: list[str] = field(default_factory=list)
    max_age: int | None = None


class InvalidToken(Exception):
    """No token, a bad signature, another issuer, expired: RFC 6750 ``invalid_token``."""


class InsufficientUserAuthentication(Exception):
    """RFC 9470 section 3: the token is good, the authentication behind it is not enough."""

    def __init__(self, requirement: Requirement, description: str) -> None:
        super().__init__(description)
        self.requirement, self.description = requirement, description

    def header(self) -> str:
        parts = ['Bearer error="insufficient_user_authentication"',
                 f'error_description="{self.description}"']  # fmt: skip
        if self.requirement.acr_values:
            parts.append(f'acr_values="{" ".join(self.requirement.acr_values)}"')
        if self.requirement.max_age is not None:
            parts.append(f"max_age={self.requirement.max_age}")
        return ", ".join(parts)


class TokenChecker:
    """Validates access tokens of one issuer; the JWKS is cached for ``jwks_ttl`` seconds and
    fetched again at once when a token names an unknown key (key rotation)."""

    def __init__(
        self,
        issuer: str,
        audience: str | None = None,
        jwks_ttl: int = 300,
        levels: Mapping[str, int] | None = None,
        leeway: int = 30,
    ) -> None:
        self.issuer, self.audience, self.ttl, self.leeway = issuer, audience, jwks_ttl, leeway
        self.levels = dict(levels or LEVELS)
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _get_json(self, url: str) -> Any:
        if not url.startswith(("https://", "http://")):
            raise InvalidToken("bad URL")
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (checked above)
            return json.loads(resp.read(1_000_000))

    def keys(self, refresh: bool = False) -> KeySet:
        with self._lock:
            if refresh or self._keys is None or time.monotonic() - self._fetched > self.ttl:
                meta = self._get_json(self.issuer + "/.well-known/openid-configuration")
                self._keys = KeySet.import_key_set(self._get_json(meta["jwks_uri"]))
                self._fetched = time.monotonic()
            return self._keys

    def claims(self, token: str, now: int | None = None) -> dict[str, Any]:
        """The claims of a valid access token of this issuer, or raise :class:`InvalidToken`."""
        now = int(time.time()) if now is None else now
        try:
            try:
                found = jwt.decode(token, self.keys())
            except (JoseError, ValueError):  # maybe a new key: refresh the JWKS once
                found = jwt.decode(token, self.keys(refresh=True))
        except (JoseError, ValueError, OSError) as exc:
            raise InvalidToken("the access token is invalid") from exc
        c, typ = found.claims, str(found.header.get("typ", "")).lower()
        if typ not in (ACCESS_TOKEN_TYP, "application/at+jwt") or c.get("iss") != self.issuer:
            raise InvalidToken("not an access token of this issuer")
        if not isinstance(c.get("exp"), int) or c["exp"] + self.leeway < now:
            raise InvalidToken("the access token has expired")
        aud = c.get("aud")
        if self.audience and self.audience not in (aud if isinstance(aud, list) else [aud]):
            raise InvalidToken("the access token is for another audience")
        return dict(c)

    def check(self, token: str, need: Requirement, now: int | None = None) -> dict[str, Any]:
        """The token's claims when its authentication meets ``need``; else raise."""
        now = int(time.time()) if now is None else now
        c = self.claims(token, now)
        wanted = min((self.levels.get(v, 99) for v in need.acr_values), default=0)
        level = self.levels.get(str(c.get("acr", "")), 0)
        reason = token_meets(level, c.get("auth_time"), wanted, need.max_age, now)
        if reason is Reason.LEVEL_MISSING:
            raise InsufficientUserAuthentication(need, "A stronger authentication is required")
        if reason is not None:
            raise InsufficientUserAuthentication(need, "A more recent authentication is required")
        return c


def parse_challenge(header: str) -> dict[str, str]:
    """The parameters of a ``Bearer`` challenge (RFC 6750 3), for clients following one:
    ``{"error": "insufficient_user_authentication", "acr_values": "...", "max_age": "300"}``."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    return {k.lower(): v1 or v2 for k, v1, v2 in CHALLENGE_PARAM.findall(rest)}


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("no bearer token")
    return token.strip()


def _refusal(exc: Exception) -> tuple[str, list[tuple[str, str]], bytes]:
    if isinstance(exc, InsufficientUserAuthentication):
        header, error = exc.header(), "insufficient_user_authentication"
    else:
        header, error = 'Bearer error="invalid_token"', "invalid_token"
    body = json.dumps({"error": error, "error_description": str(exc)}).encode()
    return "401 Unauthorized", [("WWW-Authenticate", header),
                                ("Content-Type", "application/json"),
                                ("Content-Length", str(len(body)))], body  # fmt: skip


def protect(app: WSGIApp, checker: TokenChecker, need: Requirement) -> WSGIApp:
    """WSGI middleware: a request reaches ``app`` only with a token that meets ``need``; the
    claims are in ``environ["stepwise.claims"]``."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
            environ["stepwise.claims"] = checker.check(token, need)
        except (InvalidToken, InsufficientUserAuthentication) as exc:
            status, headers, body = _refusal(exc)
            start_response(status, headers)
            return [body]
        return app(environ, start_response)

    return guarded


def requires(checker: TokenChecker, need: Requirement) -> Callable[[Any], Any]:
    """Flask view decorator; the claims are in ``flask.g.token_claims``."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            from flask import Response, g, request

            try:
                token = bearer_token(request.headers.get("Authorization"))
                g.token_claims = checker.check(token, need)
            except (InvalidToken, InsufficientUserAuthentication) as exc:
                status, headers, body = _refusal(exc)
                return Response(body, status=int(status[:3]), headers=headers)
            return view(*args, **kwargs)

        return wrapped

    return decorate
