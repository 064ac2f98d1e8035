"""What a step may ask of the outside world; the web layer implements it (idp.login.flows).

Everything here takes and returns plain values. Methods that take a ``choice`` (``kind:id``)
check that it belongs to ``user_id`` and raise :class:`factors.errors.InvalidCode` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from factors.password import PasswordFactor
from factors.webauthn_rp import Assertion, NewCredential, RelyingParty
from flows.policy import UserFacts
from flows.throttle import Throttle


@dataclass(frozen=True)
class Subject:
    """A user as the steps see it."""

    user_id: int
    username: str
    password_hash: str | None
    status: str
    facts: UserFacts
    unlocked_at: int | None = None

    def throttle_key(self, tenant: str) -> str:
        """Counters start afresh after an admin unlock, whichever process keeps them."""
        return f"{tenant}:{self.username.casefold()}@{self.unlocked_at or 0}"


@dataclass(frozen=True)
class StoredKey:
    """A registered WebAuthn credential as the steps see it."""

    user_id: int
    choice: str
    credential_id: str
    public_key: bytes
    sign_count: int


class Env(Protocol):
    """What a step may ask of the outside world during one request."""

    now: int
    client_ip: str
    passwords: PasswordFactor

    def find_subject(self, tenant: str, user_id: int | None, username: str) -> Subject | None: ...
    def throttle(self, scope: str) -> Throttle: ...
    def lock_account(self, user_id: int) -> None: ...
    def store_password_hash(self, user_id: int, encoded: str) -> None: ...

    # Second factors (flows.second_factor)
    def facts(self, user_id: int) -> UserFacts: ...
    def seal(self, value: str) -> str: ...
    def unseal(self, sealed: str) -> str: ...
    def totp_secret(self, user_id: int, choice: str) -> tuple[str, int | None]: ...
    def claim_totp_step(self, user_id: int, choice: str, step: int) -> bool: ...
    def contact(self, user_id: int, choice: str) -> str: ...
    def has_contact(self, user_id: int, kind: str, value: str) -> bool: ...
    def add_factor(
        self, user_id: int, kind: str, value: str, counter: int | None, turn_on: bool
    ) -> str: ...
    def new_backup_codes(self, user_id: int) -> list[str]: ...
    def use_backup_code(self, user_id: int, code: str) -> int: ...
    def factor_used(self, user_id: int, choice: str) -> None: ...
    def skip_offer(self, user_id: int) -> None: ...
    def send_code(self, kind: str, target: str, code: str) -> None: ...
    def count(self, key: str, ttl: int) -> int: ...

    # WebAuthn (flows.webauthn_steps)
    def relying_party(self) -> RelyingParty: ...
    def webauthn_keys(self, user_id: int) -> list[StoredKey]: ...
    def webauthn_key(self, credential_id: str) -> StoredKey | None: ...
    def webauthn_handle(self, user_id: int) -> bytes: ...
    def add_webauthn(
        self, user_id: int, new: NewCredential, passkey: bool, label: str, turn_on: bool
    ) -> str: ...
    def webauthn_used(self, key: StoredKey, assertion: Assertion) -> bool: ...
    def webauthn_rejected(self, user_id: int | None, reason: str) -> None: ...
