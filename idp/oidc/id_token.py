"""The ID Token (OpenID Connect Core 1.0 section 2): built here, and checked here when it
comes back as an ``id_token_hint``.

The token endpoint issues one with every code exchange and refresh whose scope has
``openid`` (Core 3.1.3.3, 12.2). Its ``acr``, ``amr`` and ``auth_time`` are the grant's, as
the assurance authority counted them at login. JWS signing and checking are
idp.oidc.tokens's.
"""

from __future__ import annotations

from typing import Any

from joserfc.jwk import KeySet

from idp.oidc import tokens
from idp.oidc.grants import Principal
from idp.oidc.tokens import InvalidToken, Signer

TTL = 600


def issue(signer: Signer, issuer: str, client_id: str, who: Principal, access_token: str,
          now: int, released: dict[str, Any] | None = None) -> str:  # fmt: skip
    """A signed ID Token for ``client_id`` about ``who`` (Core 2, 3.1.3.6 ``at_hash``), with
    the user's claims the grant's scopes release (``released``, idp.oidc.claims)."""
    claims: dict[str, Any] = {
        **(released or {}),
        "iss": issuer,
        "sub": who.user.sub,
        "aud": client_id,
        "azp": client_id,
        "exp": now + TTL,
        "iat": now,
        "auth_time": who.auth_time,
        "acr": who.acr,
        "amr": who.amr,
        "sid": who.sid,
        "at_hash": tokens.half_hash(access_token, signer.alg),
    }
    if who.nonce:
        claims["nonce"] = who.nonce
    return tokens.sign(signer, claims)


def verify(token: str, keyset: KeySet, issuer: str, now: int, leeway: int = 0) -> dict[str, Any]:
    """The claims of an ID Token of ``issuer`` (Core 2), or raise :class:`InvalidToken`.

    It must have ``typ`` JWT and be for a client (``aud`` and ``azp``); an access token
    (RFC 9068 ``at+jwt``, ``aud`` the issuer) is refused.
    """
    claims = tokens.verify(token, keyset, issuer, now, typ="jwt", leeway=leeway)
    aud = claims.get("aud")
    if not isinstance(aud, str) or aud == issuer or claims.get("azp") != aud:
        raise InvalidToken("not an ID token")
    if not isinstance(claims.get("sub"), str) or "scope" in claims or "client_id" in claims:
        raise InvalidToken("not an ID token")
    return claims
