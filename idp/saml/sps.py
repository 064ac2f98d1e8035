"""The service providers of a tenant, registered from their metadata (``idp sp add``), and
the endpoints of theirs we answer at."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.directory import DirectoryError, audit, now
from idp.saml.errors import SamlError, XmlError
from idp.saml.metadata import NAMEID_FORMATS, POST, REDIRECT, parse_sp
from idp.store.models import ServiceProvider, Tenant

ATTRIBUTES = ("username", "email", "role")


def add_sp(
    s: Session,
    tenant: Tenant,
    metadata: bytes,
    *,
    name: str | None = None,
    nameid: str = "persistent",
    sign_response: bool = False,
    encrypt: bool = False,
    min_level: int = 0,
    attributes: list[str] | None = None,
) -> ServiceProvider:
    try:
        found = parse_sp(metadata)
    except XmlError as exc:
        raise DirectoryError(f"metadata: {exc}") from None
    if nameid not in NAMEID_FORMATS:
        raise DirectoryError(f"--nameid must be one of {', '.join(NAMEID_FORMATS)}")
    if not 0 <= min_level <= 3:
        raise DirectoryError("--min-level must be 0, 1, 2 or 3")
    released = list(ATTRIBUTES) if attributes is None else attributes
    if any(a not in ATTRIBUTES for a in released):
        raise DirectoryError(f"--attributes must be among {', '.join(ATTRIBUTES)}")
    if encrypt and not found.encryption_cert:
        raise DirectoryError("--encrypt needs an encryption certificate in the metadata")
    if encrypt and not _rsa(found.encryption_cert):
        raise DirectoryError("--encrypt needs an RSA encryption certificate (RSA-OAEP)")
    if not any(a["binding"] == POST for a in found.acs):
        raise DirectoryError("the SP has no HTTP-POST AssertionConsumerService")
    if find_sp(s, tenant, found.entity_id) is not None:
        raise DirectoryError(f"SP {found.entity_id!r} already exists in tenant {tenant.slug!r}")
    sp = ServiceProvider(
        tenant_id=tenant.id,
        entity_id=found.entity_id,
        name=(name or found.entity_id)[:200],
        acs=found.acs,
        slo=found.slo,
        signing_certs=found.signing_certs,
        encryption_cert=found.encryption_cert,
        authn_requests_signed=found.authn_requests_signed,
        want_assertions_signed=True,  # always: an unsigned assertion is never sent
        sign_response=sign_response,
        encrypt_assertion=encrypt,
        nameid_format=NAMEID_FORMATS[nameid],
        attributes=released,
        min_level=min_level,
        created_at=now(),
    )
    s.add(sp)
    s.flush()
    audit(s, tenant, "saml.sp_added", entity_id=sp.entity_id)
    return sp


def _rsa(cert_pem: str | None) -> bool:
    """Whether the certificate's key is RSA: assertions are encrypted with RSA-OAEP."""
    if cert_pem is None:
        return False
    key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    return isinstance(key, rsa.RSAPublicKey)


def list_sps(s: Session, tenant: Tenant) -> list[ServiceProvider]:
    return list(
        s.scalars(
            select(ServiceProvider)
            .where(ServiceProvider.tenant_id == tenant.id)
            .order_by(ServiceProvider.name)
        )
    )


def find_sp(s: Session, tenant: Tenant, entity_id: str) -> ServiceProvider | None:
    return s.scalar(
        select(ServiceProvider).where(
            ServiceProvider.tenant_id == tenant.id, ServiceProvider.entity_id == entity_id
        )
    )


def acs_for(sp: ServiceProvider, url: str | None, index: int | None) -> str:
    """The ACS to answer at: only URLs from the metadata (HTTP-POST), never one from the
    request alone (SAML 2.0 profiles 4.1.4.1). SamlError when the request names another."""
    posts = [a for a in sp.acs if a["binding"] == POST]
    if url is not None:
        if any(a["location"] == url for a in posts):
            return url
        raise SamlError("AssertionConsumerServiceURL is not in the SP's metadata")
    if index is not None:
        for a in posts:
            if a["index"] == index:
                return str(a["location"])
        raise SamlError("AssertionConsumerServiceIndex is not in the SP's metadata")
    chosen = next((a for a in posts if a.get("default")), posts[0])
    return str(chosen["location"])


def slo_for(sp: ServiceProvider, response: bool) -> tuple[str, str] | None:
    """The SP's SingleLogoutService as (binding, location), HTTP-Redirect preferred; for a
    response its ResponseLocation when it has one (SAML 2.0 metadata 2.2.2); None: it has none
    we can use."""
    endpoints = sorted(sp.slo, key=lambda e: e.get("binding") != REDIRECT)
    for endpoint in endpoints:
        if endpoint.get("binding") in (REDIRECT, POST):
            location = endpoint.get("response_location") if response else None
            return str(endpoint["binding"]), str(location or endpoint["location"])
    return None
