"""Admin API: signing keys (the console's Keys page).

``GET /keys`` lists both kinds (public facts only, never a private key). OIDC rotation is one
call; SAML rotation is two explicit calls, ``publish-next`` then ``activate-next``, so that a
retried request can never skip the step in which service providers fetch the new metadata.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from idp import clock
from idp.admin.api.core import Body, Call, Reply, operation
from idp.oidc import keys as oidc_keys
from idp.saml import keys as saml_keys
from idp.store.models import SamlKey, SigningKey


class OidcSigningKey(BaseModel):
    """A JWS signing key: ``active`` signs; a retired key is in the JWKS until
    ``publish_until`` (seconds since the epoch)."""

    kid: str
    alg: Literal["RS256", "ES256"]
    state: Literal["active", "retired"]
    published: bool
    created_at: int
    publish_until: int | None


class SamlSigningKey(BaseModel):
    """A SAML signing key's certificate facts: ``next`` is in metadata but does not sign yet;
    ``active`` signs; ``retired`` is neither."""

    id: int
    state: Literal["next", "active", "retired"]
    created_at: int
    certificate_not_after: int
    sha256_fingerprint: str


class SigningKeys(BaseModel):
    """The tenant's keys, newest first (at most 100 of each kind)."""

    oidc: list[OidcSigningKey]
    saml: list[SamlSigningKey]


class OidcRotationRequest(Body):
    """Which algorithm's key to replace, and how long the old one stays published."""

    alg: Literal["RS256", "ES256"] = "RS256"
    grace_seconds: int = Field(oidc_keys.DEFAULT_GRACE, ge=0, le=oidc_keys.MAX_GRACE)


class OidcRotation(BaseModel):
    """The new signing key, and the key it replaced (null when there was none)."""

    active: OidcSigningKey
    retired: OidcSigningKey | None


def oidc_key(k: SigningKey, at: int) -> OidcSigningKey:
    return OidcSigningKey(
        kid=k.kid,
        alg=k.alg,  # type: ignore[arg-type]
        state="active" if k.active else "retired",
        published=k.active or (k.publish_until is not None and k.publish_until > at),
        created_at=k.created_at,
        publish_until=None if k.active else k.publish_until,
    )


def saml_key(k: SamlKey) -> SamlSigningKey:
    facts = saml_keys.cert_facts(k.cert_pem)
    return SamlSigningKey(
        id=k.id,
        state=k.state,  # type: ignore[arg-type]
        created_at=k.created_at,
        certificate_not_after=facts.not_after,
        sha256_fingerprint=facts.sha256,
    )


@operation("GET", "/keys", summary="List the signing keys (OIDC and SAML)", tag="keys",
           response=SigningKeys)  # fmt: skip
def list_keys(call: Call) -> SigningKeys:
    at = clock.now()
    return SigningKeys(
        oidc=[oidc_key(k, at) for k in oidc_keys.recent(call.s, call.tenant)],
        saml=[saml_key(k) for k in saml_keys.recent(call.s, call.tenant)],
    )


@operation("POST", "/keys/oidc/rotate", summary="Rotate an OIDC signing key", tag="keys",
           body=OidcRotationRequest, response=OidcRotation)  # fmt: skip
def rotate_oidc(call: Call, body: OidcRotationRequest) -> OidcRotation:
    old = oidc_keys.active_key(call.s, call.tenant, body.alg)
    new = oidc_keys.rotate(
        call.s, call.svc.cipher, call.tenant, body.alg, body.grace_seconds, call.actor
    )
    at = clock.now()
    return OidcRotation(
        active=oidc_key(new, at), retired=oidc_key(old, at) if old is not None else None
    )


@operation("POST", "/keys/saml/publish-next", summary="Publish a next SAML certificate",
           tag="keys", response=SamlSigningKey, status=201, errors=(409,))  # fmt: skip
def publish_next_saml(call: Call) -> Reply:
    row = saml_keys.publish_next(call.s, call.svc.cipher, call.tenant, call.actor)
    return Reply(saml_key(row), 201)


@operation("POST", "/keys/saml/activate-next", summary="Sign with the next SAML certificate",
           tag="keys", response=SamlSigningKey, errors=(409,))  # fmt: skip
def activate_next_saml(call: Call) -> SamlSigningKey:
    return saml_key(saml_keys.activate_next(call.s, call.svc.cipher, call.tenant, call.actor))
