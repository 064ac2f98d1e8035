"""The service providers of a tenant: registered from their metadata, edited, refreshed from
new metadata and removed (the CLI, the console and the admin API share these operations), and
the endpoints of theirs we answer at."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.directory import Actor, DirectoryError, audit, now
from idp.saml.errors import SamlError, XmlError
from idp.saml.metadata import NAMEID_FORMATS, POST, REDIRECT, SpDescriptor, parse_sp
from idp.saml.xml import MAX_BYTES
from idp.store.models import ServiceProvider, Tenant

# What idp.saml.response can release, by key ("email" and "mail" are one attribute).
ATTRIBUTES = ("username", "email", "role", "displayName", "givenName", "sn", "mail", "memberOf")
DEFAULT_ATTRIBUTES = ("username", "email", "role")  # what an SP added without a choice gets
MAX_METADATA = MAX_BYTES  # 256 KiB, what the XML parser reads at most
# The settings of an SP an admin may set and change, by their public names (the console's
# fields, the admin API's members); ``nameid`` is a key of NAMEID_FORMATS.
FIELDS = ("name", "nameid", "attributes", "min_level", "sign_response", "encrypt_assertion")


def _by(actor: Actor | None) -> dict[str, Any]:
    """The audit fields naming who acted (none: the operator at the CLI)."""
    actor = actor or Actor()
    return {"actor": actor.user_id, "ip": actor.ip, **actor.details()}


def _parse(metadata: bytes) -> SpDescriptor:
    """The SP's metadata, parsed; DirectoryError with the precise reason otherwise."""
    if len(metadata) > MAX_METADATA:
        raise DirectoryError(f"metadata: larger than {MAX_METADATA // 1024} KiB")
    try:
        found = parse_sp(metadata)
    except XmlError as exc:
        raise DirectoryError(f"metadata: {exc}") from None
    if not any(a["binding"] == POST for a in found.acs):
        raise DirectoryError("the SP has no HTTP-POST AssertionConsumerService")
    return found


def check_settings(settings: dict[str, Any], encryption_cert: str | None) -> dict[str, Any]:
    """Every setting of an SP (:data:`FIELDS`) validated together, as columns; raise
    :class:`DirectoryError` saying what is wrong. Adding, editing and refreshing from new
    metadata all come here, so an SP cannot be edited into a state it could not be added in."""
    name = settings["name"].strip() if isinstance(settings["name"], str) else ""
    if not 0 < len(name) <= 200 or not name.isprintable():
        raise DirectoryError("the SP's name must be 1-200 characters, without control characters")
    nameid = settings["nameid"]
    if nameid not in NAMEID_FORMATS:
        raise DirectoryError(f"--nameid must be one of {', '.join(NAMEID_FORMATS)}")
    level = settings["min_level"]
    if isinstance(level, bool) or level not in (0, 1, 2, 3):
        raise DirectoryError("--min-level must be 0, 1, 2 or 3")
    released = settings["attributes"]
    if not isinstance(released, list) or any(a not in ATTRIBUTES for a in released):
        raise DirectoryError(f"--attributes must be among {', '.join(ATTRIBUTES)}")
    flags = {f: settings[f] for f in ("sign_response", "encrypt_assertion")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise DirectoryError("sign_response and encrypt_assertion must be true or false")
    if flags["encrypt_assertion"] and not encryption_cert:
        raise DirectoryError("--encrypt needs an encryption certificate in the metadata")
    if flags["encrypt_assertion"] and not _rsa(encryption_cert):
        raise DirectoryError("--encrypt needs an RSA encryption certificate (RSA-OAEP)")
    return {
        "name": name,
        "nameid_format": NAMEID_FORMATS[nameid],
        "attributes": [a for a in ATTRIBUTES if a in released],
        "min_level": level,
        **flags,
    }


def settings_of(sp: ServiceProvider) -> dict[str, Any]:
    """An SP's settings by their public names (:data:`FIELDS`)."""
    return {
        "name": sp.name,
        "nameid": nameid_key(sp.nameid_format),
        "attributes": list(sp.attributes),
        "min_level": sp.min_level,
        "sign_response": sp.sign_response,
        "encrypt_assertion": sp.encrypt_assertion,
    }


def nameid_key(fmt: str) -> str:
    """The short name of a NameID format URI (its key in NAMEID_FORMATS)."""
    return next((k for k, v in NAMEID_FORMATS.items() if v == fmt), "unspecified")


def _from_metadata(found: SpDescriptor) -> dict[str, Any]:
    """The columns an SP's metadata sets (its endpoints and keys)."""
    return {
        "acs": found.acs,
        "slo": found.slo,
        "signing_certs": found.signing_certs,
        "encryption_cert": found.encryption_cert,
        "authn_requests_signed": found.authn_requests_signed,
    }


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
    attributes: Sequence[str] | None = None,
    actor: Actor | None = None,
) -> ServiceProvider:
    """Register a service provider from its metadata (SAML 2.0 metadata 2.4.4)."""
    found = _parse(metadata)
    values = check_settings(
        {
            "name": (name or "").strip() or found.entity_id[:200],
            "nameid": nameid,
            "attributes": list(DEFAULT_ATTRIBUTES if attributes is None else attributes),
            "min_level": min_level,
            "sign_response": sign_response,
            "encrypt_assertion": encrypt,
        },
        found.encryption_cert,
    )
    if find_sp(s, tenant, found.entity_id) is not None:
        raise DirectoryError(f"SP {found.entity_id!r} already exists in tenant {tenant.slug!r}")
    sp = ServiceProvider(
        tenant_id=tenant.id,
        entity_id=found.entity_id,
        want_assertions_signed=True,  # always: an unsigned assertion is never sent
        created_at=now(),
        **_from_metadata(found),
        **values,
    )
    s.add(sp)
    s.flush()
    audit(s, tenant, "saml.sp_added", entity_id=sp.entity_id, sp=sp.id, **_by(actor))
    return sp


def update_sp(
    s: Session,
    tenant: Tenant,
    sp: ServiceProvider,
    changes: dict[str, Any],
    actor: Actor | None = None,
) -> ServiceProvider:
    """Change some of an SP's settings (:data:`FIELDS`), validated exactly as when added;
    the audit event names the changed fields."""
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise DirectoryError(f"unknown SP setting(s): {', '.join(unknown)[:200]}")
    before = settings_of(sp)
    values = check_settings({**before, **changes}, sp.encryption_cert)
    for column, value in values.items():
        setattr(sp, column, value)
    changed = sorted(f for f, v in settings_of(sp).items() if v != before[f])
    if changed:
        audit(s, tenant, "saml.sp_updated", entity_id=sp.entity_id, sp=sp.id, changed=changed,
              **_by(actor))  # fmt: skip
    return sp


def refresh_sp(
    s: Session, tenant: Tenant, sp: ServiceProvider, metadata: bytes, actor: Actor | None = None
) -> ServiceProvider:
    """Take the SP's endpoints and certificates from new metadata of the same entity; its
    settings stay (and must still hold: encryption needs an encryption certificate)."""
    found = _parse(metadata)
    if found.entity_id != sp.entity_id:
        raise DirectoryError(
            f"the metadata is for {found.entity_id[:200]!r}, not {sp.entity_id[:200]!r}: "
            "add it as a new service provider instead"
        )
    check_settings(settings_of(sp), found.encryption_cert)
    for column, value in _from_metadata(found).items():
        setattr(sp, column, value)
    audit(s, tenant, "saml.sp_refreshed", entity_id=sp.entity_id, sp=sp.id, **_by(actor))
    return sp


def delete_sp(s: Session, tenant: Tenant, sp: ServiceProvider, actor: Actor | None = None) -> None:
    """Remove the SP: it can no longer ask for sign-ins here."""
    audit(s, tenant, "saml.sp_deleted", entity_id=sp.entity_id, sp=sp.id, **_by(actor))
    s.delete(sp)


def _rsa(cert_pem: str | None) -> bool:
    """Whether the certificate's key is RSA: assertions are encrypted with RSA-OAEP."""
    if cert_pem is None:
        return False
    key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    return isinstance(key, rsa.RSAPublicKey)


@dataclass(frozen=True)
class Certificate:
    """What an admin reads of a certificate from an SP's metadata."""

    use: str  # "signing" or "encryption"
    subject: str
    not_after: int
    fingerprint: str  # SHA-256, hex


def certificates(sp: ServiceProvider) -> list[Certificate]:
    """The SP's certificates, signing ones first."""
    pems = [("signing", c) for c in sp.signing_certs]
    pems += [("encryption", sp.encryption_cert)] if sp.encryption_cert else []
    out = []
    for use, pem in pems:
        cert = x509.load_pem_x509_certificate(pem.encode())
        out.append(
            Certificate(
                use,
                cert.subject.rfc4514_string()[:300],
                int(cert.not_valid_after_utc.timestamp()),
                cert.fingerprint(hashes.SHA256()).hex(),
            )
        )
    return out


def find_sp_by_id(s: Session, tenant: Tenant, sp_id: int) -> ServiceProvider | None:
    return s.scalar(
        select(ServiceProvider).where(
            ServiceProvider.tenant_id == tenant.id, ServiceProvider.id == sp_id
        )
    )


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
