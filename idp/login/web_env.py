"""The flow engine's adapter to the web app: :class:`WebEnv` implements ``flows.env.Env``
over the database, the ephemeral store, the senders and the audit log for one request."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from factors import backup
from factors.errors import DeliveryFailed
from factors.password import PasswordFactor
from factors.webauthn_rp import Assertion, NewCredential, RelyingParty
from flows.engine import Engine
from flows.env import StoredKey, Subject
from flows.policy import UserFacts
from flows.registry import registry
from flows.throttle import Throttle
from flows.webauthn_steps import b64, unb64
from idp.assurance import tenant_policy, user_facts
from idp.directory import audit, find_login, lock_user, subject_of
from idp.login.flow_store import SEAL, seal
from idp.login.planning import plan_for
from idp.mfa import credentials
from idp.mfa.notify import security_event
from idp.services import services
from idp.store.models import Credential, Tenant, User
from idp.throttle_counted import CountedThrottle


def relying_party(tenant: Tenant) -> RelyingParty:
    """WebAuthn's view of this site: rp.id is the base URL's host (WebAuthn L3 5.1.1)."""
    parts = urlsplit(services().settings.base_url)
    return RelyingParty(id=parts.hostname or "", name=tenant.name,
                        origin=f"{parts.scheme}://{parts.netloc}")  # fmt: skip


def engine_for(s: Session, tenant: Tenant) -> Engine:
    """An engine whose planner sees this tenant's policy and this session's context."""
    policy = tenant_policy(tenant)
    return Engine(registry(lambda _state: policy), lambda state: plan_for(s, tenant, state))


@dataclass
class WebEnv:
    """The flow engine's view of the world during one request (implements flows.steps.Env)."""

    s: Session
    tenant: Tenant
    now: int
    client_ip: str
    passwords: PasswordFactor
    refusals: list[str] = field(default_factory=list, kw_only=True)  # throttle refusals (metrics)

    def find_subject(self, tenant: str, user_id: int | None, username: str) -> Subject | None:
        user = (
            self.s.get(User, user_id)
            if user_id is not None
            else find_login(self.s, self.tenant, username)
        )
        if user is None or user.tenant_id != self.tenant.id:
            return None
        return subject_of(user)

    def throttle(self, scope: str) -> Throttle:
        return CountedThrottle(services().throttle(scope), self.tenant.slug, self.refusals.append)

    def lock_account(self, user_id: int) -> None:
        user = self.s.get(User, user_id)
        if user is not None:
            lock_user(self.s, self.tenant, user)

    def store_password_hash(self, user_id: int, encoded: str) -> None:
        user = self.s.get(User, user_id)
        if user is not None:
            user.password_hash = encoded

    # --- second factors (flows.env.Env) --------------------------------------------------
    def _user(self, user_id: int) -> User:
        user = self.s.get(User, user_id)
        assert user is not None and user.tenant_id == self.tenant.id
        return user

    def _event(self, user: User, event: str, **details: Any) -> None:
        security_event(self.s, services(), self.tenant, user, event, ip=self.client_ip, **details)

    def facts(self, user_id: int) -> UserFacts:
        return user_facts(self._user(user_id))

    def seal(self, value: str) -> str:
        return seal(value)

    def unseal(self, sealed: str) -> str:
        blob = base64.urlsafe_b64decode(sealed.encode())
        return services().cipher.decrypt(blob, SEAL).decode()

    def totp_secret(self, user_id: int, choice: str) -> tuple[str, int | None]:
        cred = credentials.find(self.s, user_id, choice)
        return credentials.secret_of(services().cipher, cred), cred.counter

    def claim_totp_step(self, user_id: int, choice: str, step: int) -> bool:
        return credentials.claim_step(self.s, credentials.find(self.s, user_id, choice), step)

    def contact(self, user_id: int, choice: str) -> str:
        return credentials.secret_of(services().cipher, credentials.find(self.s, user_id, choice))

    def has_contact(self, user_id: int, kind: str, value: str) -> bool:
        return credentials.has_value(self.s, services().cipher, self._user(user_id), kind, value)

    def add_factor(
        self, user_id: int, kind: str, value: str, counter: int | None, turn_on: bool
    ) -> str:
        user = self._user(user_id)
        cred = credentials.add(self.s, services().cipher, user, kind, value, counter, self.now)
        return self._added(user, cred, turn_on, kind=kind, label=cred.label)

    def _added(self, user: User, cred: Credential, turn_on: bool, **details: Any) -> str:
        credentials.touch(self.s, user, cred, self.now)
        self._event(user, "mfa.factor_added", **details)
        if turn_on and not user.mfa_enabled:
            user.mfa_enabled, user.mfa_skipped_at = True, None
            self._event(user, "mfa.enabled")
        return credentials.choice_of(cred)

    def new_backup_codes(self, user_id: int) -> list[str]:
        return credentials.new_backup_codes(self.s, services().backup_key, user_id, self.now)

    def use_backup_code(self, user_id: int, code: str) -> int:
        left = credentials.use_backup_code(self.s, services().backup_key, user_id, code, self.now)
        warning = " Create new ones soon." if left <= backup.LOW_WARNING else ""
        self._event(self._user(user_id), "mfa.backup_code_used", remaining=left, warning=warning)
        return left

    def factor_used(self, user_id: int, choice: str) -> None:
        user = self._user(user_id)
        credentials.touch(self.s, user, credentials.find(self.s, user_id, choice), self.now)

    def skip_offer(self, user_id: int) -> None:
        user = self._user(user_id)
        user.mfa_skipped_at = self.now
        audit(self.s, self.tenant, "mfa.offer_skipped", subject=user.id, ip=self.client_ip)

    def send_code(self, kind: str, target: str, code: str) -> None:
        svc = services()
        text = f"{code} is your {self.tenant.name} sign-in code. It expires in 5 minutes."
        if kind == "sms" and svc.sms is not None:
            svc.sms.send(target, text)
        elif kind == "email" and svc.mail is not None:
            svc.mail.send(target, f"{self.tenant.name}: your sign-in code", text)
        else:
            raise DeliveryFailed(kind)

    def count(self, key: str, ttl: int) -> int:
        return services().store.incr(f"count:{key}", ttl)

    # --- WebAuthn (flows.webauthn_steps) -----------------------------------------------------
    def relying_party(self) -> RelyingParty:
        return relying_party(self.tenant)

    def _stored(self, cred: Credential) -> StoredKey:
        assert cred.external_id is not None and cred.public_key is not None
        return StoredKey(cred.user_id, credentials.choice_of(cred), cred.external_id,
                         cred.public_key, cred.counter or 0)  # fmt: skip

    def webauthn_keys(self, user_id: int) -> list[StoredKey]:
        return [self._stored(c) for c in credentials.enrolled(self._user(user_id), ("webauthn",))]

    def webauthn_key(self, credential_id: str) -> StoredKey | None:
        cred = credentials.find_webauthn(self.s, self.tenant.id, credential_id)
        return self._stored(cred) if cred is not None else None

    def webauthn_handle(self, user_id: int) -> bytes:
        user = self._user(user_id)
        if user.webauthn_handle is None:
            user.webauthn_handle = b64(secrets.token_bytes(32))
        return unb64(user.webauthn_handle)

    def add_webauthn(
        self, user_id: int, new: NewCredential, passkey: bool, label: str, turn_on: bool
    ) -> str:
        user = self._user(user_id)
        cred = credentials.add_webauthn(self.s, self.tenant.id, user, new, passkey, label,
                                        self.now)  # fmt: skip
        return self._added(user, cred, turn_on, kind="webauthn", label=label, aaguid=new.aaguid,
                           passkey=passkey)  # fmt: skip

    def webauthn_used(self, key: StoredKey, assertion: Assertion) -> bool:
        user = self._user(key.user_id)
        cred = credentials.find(self.s, user.id, key.choice)
        if assertion.cloned:
            cred.data = {**cred.data, "cloned_at": self.now}
            blocked = self.tenant.webauthn_block_cloned
            self._event(user, "webauthn.clone_suspected", label=cred.label, blocked=blocked,
                        stored=key.sign_count, presented=assertion.sign_count)  # fmt: skip
            if blocked:
                return False
        cred.counter = max(assertion.sign_count, key.sign_count)
        credentials.touch(self.s, user, cred, self.now)
        return True

    def webauthn_rejected(self, user_id: int | None, reason: str) -> None:
        audit(self.s, self.tenant, "webauthn.rejected", subject=user_id, ip=self.client_ip,
              reason=reason)  # fmt: skip
