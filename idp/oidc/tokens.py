"""JWS with the tenant's keys (joserfc): the key cache, signing, and verifying a JWT's
signature, issuer, type and expiry.

Two kinds of JWT use it: id_tokens (built and checked in idp.oidc.id_token) and access
tokens in the JWT profile of RFC 9068 (built by the token endpoint in idp.oidc.provider,
checked in idp.oidc.resources).

Signing keys are cached in memory per kid (their material never changes); which kid is
active, and the published set, live in the configuration cache (idp.config_cache), so a
rotation made by any process or node applies from the next request, while retired keys stay
published for verification (idp/oidc/keys.py). The caller passes the time: ``now`` in whole
seconds and a monotonic reading for when a retired key leaves the set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from idp.config_cache import ConfigCache
from idp.crypto import DataCipher
from idp.oidc import keys
from idp.oidc.errors import OAuthError
from idp.store.models import SigningKey, Tenant

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 (RFC 9068 section 2.1: a media type, not a secret)
MAX_TOKEN = 8192


class InvalidToken(OAuthError):
    """A token that is malformed, not ours, expired, or of the wrong type (RFC 6750 3.1)."""

    code, status = "invalid_token", 401


@dataclass(frozen=True)
class Signer:
    kid: str
    alg: str
    key: keys.Key


@dataclass(frozen=True)
class Published:
    """The published JWK Set (RFC 7517 section 5), serialised once."""

    body: bytes
    keyset: KeySet | None  # None: a tenant made without keys, nothing it could have signed
    changes_at: int | None  # when the first retired key leaves the set (epoch seconds)


class KeyCache:
    """Each tenant's active signer and published keys, in the configuration cache (valid
    until a key changes anywhere: idp.config_cache), and imported private keys by kid (their
    material never changes)."""

    def __init__(self, config: ConfigCache) -> None:
        self.config = config
        self._keys: dict[tuple[int, str], keys.Key] = {}
        self._lock = threading.Lock()

    def signer(self, s: Session, cipher: DataCipher, tenant: Tenant, alg: str) -> Signer:
        """The tenant's active key for ``alg``."""

        def load() -> Signer | None:
            row = keys.active_key(s, tenant, alg)
            return (
                None
                if row is None
                else Signer(row.kid, row.alg, self._private(cipher, tenant, row))
            )

        found = self.config.get(("signer", tenant.id, alg), load)
        if found is None:
            raise LookupError(f"tenant {tenant.slug!r} has no active {alg} key; run idp init")
        return found

    def _private(self, cipher: DataCipher, tenant: Tenant, row: SigningKey) -> keys.Key:
        key = self._keys.get((tenant.id, row.kid))
        if key is None:
            key = keys.private_key(cipher, tenant, row)
            with self._lock:
                self._keys[(tenant.id, row.kid)] = key
        return key

    def published(self, s: Session, tenant: Tenant, now: int, monotonic: float) -> Published:
        """The published keys; loaded again when a retired key's grace period ends."""

        def load() -> Published:
            rows = keys.published(s, tenant, now)
            document = {"keys": [r.public_jwk for r in rows]}
            body = json.dumps(document, separators=(",", ":")).encode()
            keyset = KeySet.import_key_set(document) if rows else None  # type: ignore[arg-type]
            ends = [r.publish_until for r in rows if not r.active and r.publish_until]
            return Published(body, keyset, min(ends, default=None))

        def until(found: Published) -> float | None:
            return None if found.changes_at is None else monotonic + found.changes_at - now

        return self.config.get(("jwks", tenant.id), load, until)

    def verifier(self, s: Session, tenant: Tenant, now: int, monotonic: float) -> KeySet:
        """The published keys, to verify tokens with (InvalidToken when there are none)."""
        keyset = self.published(s, tenant, now, monotonic).keyset
        if keyset is None:
            raise InvalidToken("the tenant has no signing keys")
        return keyset


def sign(signer: Signer, claims: dict[str, Any], typ: str = "JWT") -> str:
    header = {"alg": signer.alg, "kid": signer.kid, "typ": typ}
    return jwt.encode(header, claims, signer.key, algorithms=[signer.alg])


def half_hash(value: str, alg: str) -> str:
    """``at_hash``: the left half of the hash of the token (Core 3.1.3.6); SHA-256 for *256."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    assert alg.endswith("256")
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def new_jti(gid: str | None = None) -> str:
    """A token id; a user's tokens carry their grant id before the dot (for revocation)."""
    rand = secrets.token_urlsafe(12)
    return f"{gid}.{rand}" if gid else rand


def grant_of(jti: str) -> str | None:
    gid, dot, _ = jti.partition(".")
    return gid if dot else None


def verify(
    token: str, keyset: KeySet, issuer: str, now: int, typ: str | None = None, leeway: int = 0
) -> dict[str, Any]:
    """Check signature, issuer, type and expiry; return the claims or raise InvalidToken."""
    if not token or len(token) > MAX_TOKEN or token.count(".") != 2:
        raise InvalidToken("malformed token")
    try:
        obj = jwt.decode(token, keyset, algorithms=list(keys.ALGORITHMS))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken("signature or format invalid") from exc
    claims = dict(obj.claims)
    if typ is not None and obj.header.get("typ", "").lower() != typ:
        raise InvalidToken("wrong token type")
    if claims.get("iss") != issuer:
        raise InvalidToken("issued by someone else")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp + leeway < now:
        raise InvalidToken("expired")
    return claims


def peek_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, unverified (only to pick a key)."""
    try:
        return dict(jws.extract_compact(token.encode()).protected)
    except (JoseError, ValueError, TypeError):
        raise InvalidToken("malformed token") from None
