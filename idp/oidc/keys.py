"""Per-tenant JWS signing keys (RFC 7517 JWK, RFC 7638 thumbprint kids) and their rotation.

RS256 is the default (mandatory to implement, OpenID Connect Core 1.0 section 15.1); every
tenant also has an ES256 key. ``rotate`` adds a new active key and keeps the retired one in the
JWKS for ``grace`` seconds, longer than any token it signed can live.
"""

from __future__ import annotations

from joserfc.jwk import ECKey, KeyParameters, RSAKey
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from idp.crypto import DataCipher
from idp.directory import Actor, DirectoryError, audit, now
from idp.store.models import SigningKey, Tenant

ALGORITHMS = ("RS256", "ES256")
DEFAULT_GRACE = 24 * 3600
MAX_GRACE = 365 * 24 * 3600

Key = RSAKey | ECKey


def _generate(alg: str) -> Key:
    params: KeyParameters = {"use": "sig", "alg": alg}
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=params, auto_kid=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, auto_kid=True)
    raise DirectoryError(f"--alg must be one of {', '.join(ALGORITHMS)}")


def _purpose(tenant: Tenant, kid: str) -> str:
    return f"signing_key:{tenant.id}:{kid}"


def _add(s: Session, cipher: DataCipher, tenant: Tenant, alg: str) -> SigningKey:
    key = _generate(alg)
    kid = str(key.kid)
    row = SigningKey(
        tenant_id=tenant.id,
        kid=kid,
        alg=alg,
        private_key=cipher.encrypt(key.as_pem(private=True), _purpose(tenant, kid)),
        public_jwk=key.as_dict(private=False),
        active=True,
        created_at=now(),
    )
    s.add(row)
    s.flush()
    return row


def active_key(s: Session, tenant: Tenant, alg: str) -> SigningKey | None:
    return s.scalar(
        select(SigningKey).where(
            SigningKey.tenant_id == tenant.id, SigningKey.alg == alg, SigningKey.active.is_(True)
        )
    )


def ensure_keys(s: Session, cipher: DataCipher, tenant: Tenant) -> list[str]:
    """Give ``tenant`` an active key per algorithm where it has none; returns the new kids."""
    created = [
        _add(s, cipher, tenant, alg).kid for alg in ALGORITHMS if not active_key(s, tenant, alg)
    ]
    if created:
        audit(s, tenant, "keys.created", kids=created)
    return created


def rotate(
    s: Session,
    cipher: DataCipher,
    tenant: Tenant,
    alg: str = "RS256",
    grace: int = DEFAULT_GRACE,
    actor: Actor | None = None,
) -> SigningKey:
    """Make a new active key; the previous one stops signing but stays published for ``grace``
    seconds (0 to :data:`MAX_GRACE`). ``actor`` is who asked (None: the operator)."""
    if alg not in ALGORITHMS:
        raise DirectoryError(f"the algorithm must be one of {', '.join(ALGORITHMS)}")
    if type(grace) is not int or not 0 <= grace <= MAX_GRACE:
        raise DirectoryError(f"the grace period must be from 0 to {MAX_GRACE} seconds")
    by = actor or Actor()
    old = active_key(s, tenant, alg)
    new = _add(s, cipher, tenant, alg)
    if old is not None:
        old.active, old.publish_until = False, now() + grace
    audit(s, tenant, "keys.rotated", actor=by.user_id, ip=by.ip, alg=alg, new=new.kid,
          retired=old.kid if old else None, grace=grace, **by.details())  # fmt: skip
    return new


def recent(s: Session, tenant: Tenant, limit: int = 100) -> list[SigningKey]:
    """The tenant's keys, newest first: active, retired and still published, and retired."""
    return list(
        s.scalars(
            select(SigningKey)
            .where(SigningKey.tenant_id == tenant.id)
            .order_by(SigningKey.id.desc())
            .limit(limit)
        )
    )


def published(s: Session, tenant: Tenant, at: int) -> list[SigningKey]:
    """Active keys and retired keys still within their grace period."""
    return list(
        s.scalars(
            select(SigningKey)
            .where(
                SigningKey.tenant_id == tenant.id,
                or_(SigningKey.active.is_(True), SigningKey.publish_until > at),
            )
            .order_by(SigningKey.id)
        )
    )


def private_key(cipher: DataCipher, tenant: Tenant, row: SigningKey) -> Key:
    """The usable private key of ``row`` (decrypted in memory only)."""
    pem = cipher.decrypt(row.private_key, _purpose(tenant, row.kid))
    params: KeyParameters = {"use": "sig", "alg": row.alg, "kid": row.kid}
    if row.alg == "RS256":
        return RSAKey.import_key(pem, parameters=params)
    return ECKey.import_key(pem, parameters=params)
