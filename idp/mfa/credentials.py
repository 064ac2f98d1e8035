"""Enrolled second factors and backup codes in the database.

TOTP secrets, phone numbers and secondary email addresses are encrypted at rest (idp.crypto),
bound to their kind and user. Backup codes are stored only as keyed hashes (factors.backup).
Single use is enforced by conditional UPDATEs, so two parallel requests cannot both succeed.
A factor is named outside this module by its *choice* string ``kind:id``.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from factors import backup, codes, kinds
from factors.errors import InvalidCode
from factors.webauthn_rp import NewCredential
from idp.crypto import DataCipher
from idp.store.models import BackupCode, Credential, User
from idp.untrusted import row_id

KINDS = kinds.ALLOWABLE  # every second factor a user can enrol is stored here
# A secret or a target, encrypted at rest; WebAuthn keeps a public key (add_webauthn).
VALUE_KINDS = tuple(k for k in KINDS if k != "webauthn")


def choice_of(cred: Credential) -> str:
    return f"{cred.type}:{cred.id}"


def _purpose(kind: str, user_id: int) -> str:
    return f"credential:{kind}:{user_id}"


def enrolled(user: User, kinds: tuple[str, ...] = KINDS) -> list[Credential]:
    """The user's second factors of ``kinds``, most recently used first."""
    found = [c for c in user.credentials if c.type in kinds]
    return sorted(found, key=lambda c: (-(c.last_used_at or 0), -c.created_at, -c.id))


def find(s: Session, user_id: int, choice: str) -> Credential:
    """The user's credential named by ``choice``; InvalidCode when it is not theirs."""
    kind, _, raw_id = choice.partition(":")
    number = row_id(raw_id)
    cred = s.get(Credential, number) if number is not None else None
    if cred is None or cred.user_id != user_id or cred.type != kind:
        raise InvalidCode()
    return cred


def label_for(kind: str, value: str) -> str:
    """The kind's label, and for a sent code where it goes (masked)."""
    label = kinds.KINDS[kind].label
    sent = codes.BY_KIND.get(kind)
    return f"{label} to {sent.mask(value)}" if sent is not None else label


def add(
    s: Session, cipher: DataCipher, user: User, kind: str, value: str, counter: int | None, now: int
) -> Credential:
    """Store a verified factor; ``value`` is the TOTP secret, phone number or address."""
    if kind not in VALUE_KINDS:
        raise ValueError(f"unknown factor kind {kind!r}")
    cred = Credential(
        user_id=user.id,
        type=kind,
        label=label_for(kind, value),
        secret=cipher.encrypt(value.encode(), _purpose(kind, user.id)),
        data={},
        counter=counter,
        created_at=now,
    )
    s.add(cred)
    s.flush()
    user.credentials.append(cred)
    return cred


def add_webauthn(
    s: Session,
    tenant_id: int,
    user: User,
    new: NewCredential,
    passkey: bool,
    label: str,
    now: int,
) -> Credential:
    """Store a registered WebAuthn credential (public key only; its id unique per tenant)."""
    cred = Credential(
        user_id=user.id,
        tenant_id=tenant_id,
        type="webauthn",
        external_id=new.credential_id,
        label=label,
        public_key=new.public_key,
        data={"aaguid": new.aaguid, "passkey": passkey, "synced": new.synced},
        counter=new.sign_count,
        created_at=now,
    )
    s.add(cred)
    s.flush()
    user.credentials.append(cred)
    return cred


def find_webauthn(s: Session, tenant_id: int, credential_id: str) -> Credential | None:
    return s.scalar(
        select(Credential).where(
            Credential.tenant_id == tenant_id, Credential.external_id == credential_id
        )
    )


def secret_of(cipher: DataCipher, cred: Credential) -> str:
    assert cred.secret is not None
    return cipher.decrypt(cred.secret, _purpose(cred.type, cred.user_id)).decode()


def has_value(s: Session, cipher: DataCipher, user: User, kind: str, value: str) -> bool:
    return any(secret_of(cipher, c) == value for c in enrolled(user, (kind,)))


def claim_step(s: Session, cred: Credential, step: int) -> bool:
    """Record ``step`` as the last TOTP step used; False when it (or a later one) was used."""
    result = s.execute(
        update(Credential)
        .where(Credential.id == cred.id)
        .where((Credential.counter.is_(None)) | (Credential.counter < step))
        .values(counter=step)
    )
    claimed: int = result.rowcount  # type: ignore[attr-defined]
    return claimed == 1


def touch(s: Session, user: User, cred: Credential, now: int) -> None:
    cred.last_used_at = now
    user.mfa_last_factor = choice_of(cred)


def remaining_backup_codes(s: Session, user_id: int) -> int:
    rows = s.scalars(
        select(BackupCode.id).where(BackupCode.user_id == user_id, BackupCode.used_at.is_(None))
    )
    return len(list(rows))


def new_backup_codes(s: Session, key: bytes, user_id: int, now: int) -> list[str]:
    """Replace the user's backup codes with a new set; the old ones stop working."""
    s.execute(delete(BackupCode).where(BackupCode.user_id == user_id))
    codes = backup.generate()
    s.add_all(
        BackupCode(user_id=user_id, digest=backup.digest(key, c), created_at=now) for c in codes
    )
    s.flush()
    return codes


def use_backup_code(s: Session, key: bytes, user_id: int, code: str, now: int) -> int:
    """Spend one backup code; return how many remain. InvalidCode if none matches."""
    rows = list(
        s.scalars(
            select(BackupCode).where(BackupCode.user_id == user_id, BackupCode.used_at.is_(None))
        )
    )
    index = backup.match(key, [r.digest for r in rows], code)
    spent = s.execute(
        update(BackupCode)
        .where(BackupCode.id == rows[index].id, BackupCode.used_at.is_(None))
        .values(used_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidCode()  # a parallel request spent it first
    return len(rows) - 1


def remove_all(s: Session, user: User) -> int:
    """Delete every second factor and backup code of ``user``; return how many factors."""
    doomed = enrolled(user)
    for cred in doomed:
        user.credentials.remove(cred)
        s.delete(cred)
    s.execute(delete(BackupCode).where(BackupCode.user_id == user.id))
    user.mfa_last_factor = ""
    return len(doomed)
