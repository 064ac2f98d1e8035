"""Flow state storage and the bridge between the flow engine and the web app.

A flow lives in the ephemeral store under a random id with a TTL. Its id is also recorded in
the browser session, and a flow is only found through that session: a flow id that leaks
(in a log or a Referer) is useless in another browser.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from flask import session
from sqlalchemy.orm import Session

from factors import backup
from factors.errors import DeliveryFailed
from factors.password import PasswordFactor
from factors.webauthn_rp import Assertion, NewCredential, RelyingParty
from flows.context import VerifiedFactor, merge
from flows.engine import Engine
from flows.env import StoredKey, Subject
from flows.errors import FlowNotFound
from flows.plan import Pending, plan
from flows.policy import Request, UserFacts
from flows.registry import registry
from flows.second_factor import begin_enrolment
from flows.state import FlowState
from flows.throttle import Throttle
from flows.webauthn_steps import b64, unb64
from idp import assurance, clock
from idp.assurance import session_alive, session_context, tenant_policy, user_facts
from idp.directory import audit, find_user, set_status, subject_of
from idp.mfa import credentials
from idp.mfa.notify import security_event
from idp.services import services
from idp.store.models import Credential, Tenant, User

MAX_FLOWS_PER_SESSION = 5
SEAL = "flow-state"  # associated data of secrets kept in a flow (idp.crypto)


def safe_return_to(tenant: Tenant, target: str | None) -> str:
    """Only paths inside this tenant are followed after login (no open redirects)."""
    default = f"/t/{tenant.slug}/account"
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. "http://[::1": an unclosed IPv6 literal
        return default
    if parts.scheme or parts.netloc or not parts.path.startswith(f"/t/{tenant.slug}/"):
        return default
    if "//" in parts.path or "/../" in parts.path:
        return default
    return target


def seal(value: str) -> str:
    """Encrypt a secret for keeping in a flow (the ephemeral store is storage too)."""
    return base64.urlsafe_b64encode(services().cipher.encrypt(value.encode(), SEAL)).decode()


def start(
    tenant: Tenant, request: Request, return_to: str, continue_to: str = "", enrolling: str = ""
) -> FlowState:
    """Create a flow for this browser session; a signed-in user is already identified.

    ``enrolling`` starts the flow at setting up that factor (the security page's "Add").
    """
    state = FlowState(
        id=secrets.token_urlsafe(24),
        tenant=tenant.slug,
        request=replace(request, reauth_max_age=services().settings.reauth_window),
        created_at=clock.now(),
        return_to=safe_return_to(tenant, return_to),
        continue_to=continue_to,
    )
    if enrolling:
        begin_enrolment(state, enrolling, seal)
    ctx = session_context()
    if ctx is not None:
        with services().db.session() as s:
            user = s.get(User, ctx.user_id)
            if user is not None and user.tenant_id == tenant.id and session_alive(user, ctx):
                state.identified = state.reauth = True
                state.user_id = user.id
                state.username = user.username_norm
    save(state)
    flows = [f for f in session.get("flows", []) if f != state.id][-(MAX_FLOWS_PER_SESSION - 1) :]
    session["flows"] = [*flows, state.id]
    return state


def load(flow_id: str) -> FlowState:
    if flow_id not in session.get("flows", []):
        raise FlowNotFound()
    raw = services().store.get(f"flow:{flow_id}")
    if raw is None:
        raise FlowNotFound()
    return FlowState.from_json(raw)


def save(state: FlowState) -> None:
    svc = services()
    svc.store.set(f"flow:{state.id}", state.to_json().encode(), svc.settings.flow_ttl)


def finish(state: FlowState) -> None:
    services().store.delete(f"flow:{state.id}")
    session["flows"] = [f for f in session.get("flows", []) if f != state.id]


def relying_party(tenant: Tenant) -> RelyingParty:
    """WebAuthn's view of this site: rp.id is the base URL's host (WebAuthn L3 5.1.1)."""
    parts = urlsplit(services().settings.base_url)
    return RelyingParty(id=parts.hostname or "", name=tenant.name,
                        origin=f"{parts.scheme}://{parts.netloc}")  # fmt: skip


def plan_for(s: Session, tenant: Tenant, state: FlowState) -> list[str]:
    """The steps ``state`` still needs, given the tenant's policy and this browser's session.

    The session's factors that still count (idp.assurance) are merged with the flow's; a
    forced fresh login (prompt=login, max_age=0, ForceAuthn) counts only this flow's, since
    the session's may carry the same second as the request.
    """
    user = s.get(User, state.user_id) if state.user_id is not None else None
    ctx = session_context()
    achieved: list[VerifiedFactor] = []
    cap: int | None = None
    if user is not None and ctx is not None and ctx.user_id == user.id:
        if not state.request.force_fresh:
            standing, cap = assurance.standing(tenant, user, ctx)
            achieved = list(standing.factors)
    for factor in state.verified:
        achieved = merge(achieved, factor)
    pending = Pending(state.choice, state.enrolling, bool(state.codes), state.offer_skipped)
    facts = user_facts(user) if user is not None else None
    return plan(state.request, tenant_policy(tenant), facts, state.identified, achieved, pending,
                clock.now(), cap)  # fmt: skip


def standing_flow(s: Session, tenant: Tenant, return_to: str) -> FlowState | None:
    """A flow to run when the signed-in session no longer meets the policy (after a stricter
    policy with ``apply=immediate``, an admin reset, or turning MFA off), else None."""
    now = clock.now()
    if assurance.decide(s, tenant, Request(started_at=now), now=now).verdict.ready:
        return None
    return start(tenant, Request(started_at=now), return_to)


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

    def find_subject(self, tenant: str, user_id: int | None, username: str) -> Subject | None:
        user = (
            self.s.get(User, user_id)
            if user_id is not None
            else find_user(self.s, self.tenant, username)
        )
        if user is None or user.tenant_id != self.tenant.id:
            return None
        return subject_of(user)

    def throttle(self, scope: str) -> Throttle:
        return services().throttle(scope)

    def lock_account(self, user_id: int) -> None:
        user = self.s.get(User, user_id)
        if user is not None and user.status == "active":
            set_status(self.s, self.tenant, user, "locked")

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
