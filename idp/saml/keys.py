"""Each tenant's SAML signing key: RSA 2048 with a self-signed certificate (metadata trust
is by the certificate itself, SAML 2.0 metadata section 2.4.1.1). Private keys are encrypted
at rest like the JWS keys (idp.crypto)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp import clock
from idp.crypto import DataCipher
from idp.directory import Actor, Conflict, audit, now
from idp.store.models import SamlKey, Tenant

VALID_DAYS = 3650


def _purpose(tenant: Tenant) -> str:
    return f"saml_key:{tenant.id}"


def _new(
    s: Session, cipher: DataCipher, tenant: Tenant, state: str, actor: Actor | None = None
) -> SamlKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Stepwise SAML {tenant.slug}")])
    # Valid from a little before now, for relying parties whose clocks run behind.
    start = dt.datetime.fromtimestamp(clock.current().time(), dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=VALID_DAYS))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    row = SamlKey(
        tenant_id=tenant.id,
        private_key=cipher.encrypt(pem, _purpose(tenant)),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        state=state,
        created_at=now(),
    )
    s.add(row)
    s.flush()
    by = actor or Actor()
    audit(s, tenant, "saml.key_created", actor=by.user_id, ip=by.ip, state=state,
          **by.details())  # fmt: skip
    return row


def _in_state(s: Session, tenant: Tenant, state: str) -> SamlKey | None:
    return s.scalar(select(SamlKey).where(SamlKey.tenant_id == tenant.id, SamlKey.state == state))


def ensure_key(
    s: Session, cipher: DataCipher, tenant: Tenant, actor: Actor | None = None
) -> SamlKey:
    """The tenant's active (signing) SAML key, made on first use (by ``actor``'s change)."""
    return _in_state(s, tenant, "active") or _new(s, cipher, tenant, "active", actor)


def published(s: Session, tenant: Tenant) -> list[SamlKey]:
    """The certificates metadata lists: the active one, and the next one once announced."""
    rows = s.scalars(
        select(SamlKey).where(SamlKey.tenant_id == tenant.id, SamlKey.state.in_(("active", "next")))
    )
    return sorted(rows, key=lambda r: r.state != "active")


def upcoming(s: Session, tenant: Tenant) -> SamlKey | None:
    """The published *next* key, if one is waiting to be activated."""
    return _in_state(s, tenant, "next")


def publish_next(
    s: Session, cipher: DataCipher, tenant: Tenant, actor: Actor | None = None
) -> SamlKey:
    """Step one: a *next* key whose certificate metadata lists beside the signing one."""
    ensure_key(s, cipher, tenant)
    if upcoming(s, tenant) is not None:
        raise Conflict("a next SAML certificate is already published; activate it first")
    return _new(s, cipher, tenant, "next", actor)


def activate_next(
    s: Session, cipher: DataCipher, tenant: Tenant, actor: Actor | None = None
) -> SamlKey:
    """Step two: the published *next* key signs from now; the signing one is retired."""
    ensure_key(s, cipher, tenant)
    nxt = upcoming(s, tenant)
    if nxt is None:
        raise Conflict("no next SAML certificate is published; publish one first")
    current = _in_state(s, tenant, "active")
    if current is not None:
        current.state = "retired"
    nxt.state = "active"
    by = actor or Actor()
    audit(s, tenant, "saml.key_activated", actor=by.user_id, ip=by.ip, **by.details())
    return nxt


def rotate(s: Session, cipher: DataCipher, tenant: Tenant, actor: Actor | None = None) -> str:
    """Two steps, so SPs can fetch the new certificate before it signs anything:
    first publish a *next* key; the second call makes it the signing key."""
    ensure_key(s, cipher, tenant)
    if upcoming(s, tenant) is None:
        publish_next(s, cipher, tenant, actor)
        return "next"
    activate_next(s, cipher, tenant, actor)
    return "active"


def recent(s: Session, tenant: Tenant, limit: int = 100) -> list[SamlKey]:
    """The tenant's SAML keys, newest first (next, active, then retired)."""
    return list(
        s.scalars(
            select(SamlKey)
            .where(SamlKey.tenant_id == tenant.id)
            .order_by(SamlKey.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class CertFacts:
    """What an admin reads about a certificate (public facts only)."""

    not_after: int  # seconds since the epoch
    sha256: str  # hex, colon-separated


def cert_facts(pem: str) -> CertFacts:
    cert = x509.load_pem_x509_certificate(pem.encode())
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return CertFacts(
        int(cert.not_valid_after_utc.timestamp()),
        ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
    )


def private_pem(cipher: DataCipher, tenant: Tenant, row: SamlKey) -> bytes:
    return cipher.decrypt(row.private_key, _purpose(tenant))


def cert_body(pem: str) -> str:
    """The base64 body of a PEM certificate, as ``ds:X509Certificate`` carries it."""
    return "".join(line for line in pem.strip().splitlines() if "-----" not in line)
