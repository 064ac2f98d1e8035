"""WebAuthn steps: passkey sign-in on the first page, a key as second factor, registration.

A challenge is made when the page that needs it is shown (the web layer puts it in
``state.webauthn_challenge``) and is taken out of the flow before the answer is checked, so
each is used at most once and only by this flow. Every rejected response is audited with its
reason (replay, wrong origin or rp.id, bad signature, unknown credential).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import ClassVar

from factors import kinds
from factors import webauthn_rp as wa
from flows.context import VerifiedFactor
from flows.env import Env, StoredKey
from flows.policy import TenantPolicy
from flows.second_factor import VerifyStep, finish_enrolment, turns_mfa_on, user_id_of
from flows.state import FlowState
from flows.steps import IdentifyStep, StepResult

WEBAUTHN = kinds.KINDS["webauthn"]
REJECTED = "That security key or passkey could not be verified. Try again."
CLONED = "This security key may have been copied, so it was blocked. Use another method."
LABEL_MAX = 100


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def take_challenge(state: FlowState) -> bytes | None:
    """The flow's WebAuthn challenge, removed from it: a response can use it only once."""
    nonce, state.webauthn_challenge = state.webauthn_challenge, None
    return nonce.value if nonce is not None else None


def factor_of(assertion: wa.Assertion | wa.NewCredential, env: Env) -> VerifiedFactor:
    amr = wa.amr_for(assertion.synced, assertion.user_verified)
    resists = WEBAUTHN.phishing_resistant
    return VerifiedFactor(WEBAUTHN.name, amr, env.now, resists, assertion.user_verified)


def _verify_with(
    env: Env, response: str, nonce: bytes | None, keys: list[StoredKey], require_uv: bool
) -> tuple[StoredKey, wa.Assertion]:
    """Check ``response`` against the one of ``keys`` it names; raise InvalidAssertion."""
    if nonce is None:
        raise wa.InvalidAssertion("no challenge pending (replayed or expired response)")
    wanted = wa.credential_id_of(response)
    key = next((k for k in keys if k.credential_id == wanted), None)
    if key is None:
        raise wa.InvalidAssertion("credential not registered for this user")
    rp = env.relying_party()
    return key, wa.verify(rp, response, nonce, key.public_key, key.sign_count, require_uv)


class PasskeyIdentifyStep(IdentifyStep):
    """The first page: a username, or "Sign in with a passkey" (discoverable credential,
    user verification required), which is the whole login at level 3 on its own."""

    def __init__(self, policy: Callable[[FlowState], TenantPolicy]) -> None:
        self.policy = policy

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        response = answer.get("credential", "")
        nonce = take_challenge(state)
        if not response:
            state.forget_challenges()  # the passkey offer ends with the username
            return super().run(state, answer, env)
        owner: int | None = None
        try:
            if WEBAUTHN.name not in self.policy(state).enrollable:
                raise wa.InvalidAssertion("WebAuthn is not allowed in this tenant")
            key = env.webauthn_key(wa.credential_id_of(response))
            if key is None:
                raise wa.InvalidAssertion("unknown credential")
            owner = key.user_id
            if wa.user_handle_of(response) != b64(env.webauthn_handle(key.user_id)):
                raise wa.InvalidAssertion("user handle does not match the credential")
            key, assertion = _verify_with(env, response, nonce, [key], require_uv=True)
        except wa.InvalidAssertion as exc:
            env.webauthn_rejected(owner, exc.reason)
            return StepResult.retry(REJECTED)
        subject = env.find_subject(state.tenant, key.user_id, "")
        if subject is None or subject.status != "active":
            return StepResult.fail("This account cannot sign in. Contact your administrator.")
        if not env.webauthn_used(key, assertion):
            return StepResult.retry(CLONED)
        state.identified, state.user_id, state.username = True, key.user_id, subject.username
        return StepResult.ok(factor_of(assertion, env))


class VerifyWebauthnStep(VerifyStep):
    """A registered key or passkey as the second factor (allowCredentials: the user's keys)."""

    name: ClassVar[str] = "verify_webauthn"
    fields: ClassVar[tuple[str, ...]] = ("credential",)

    def verify(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        uid = user_id_of(state)
        nonce = take_challenge(state)
        response = answer.get("credential", "")
        if not response:
            return StepResult.retry("Use your security key or passkey when the browser asks.")
        try:
            key, assertion = _verify_with(env, response, nonce, env.webauthn_keys(uid), False)
        except wa.InvalidAssertion as exc:
            env.webauthn_rejected(uid, exc.reason)
            return StepResult.retry(REJECTED)
        if not env.webauthn_used(key, assertion):
            return StepResult.retry(CLONED)
        state.choice = key.choice
        state.forget_challenges()
        return StepResult.ok(factor_of(assertion, env))


class EnrollWebauthnStep:
    """Register a security key or a passkey (``navigator.credentials.create()``)."""

    name: ClassVar[str] = "enroll_webauthn"
    fields: ClassVar[tuple[str, ...]] = ("credential",)

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        if answer.get("action") == "back":
            state.enrolling = ""
            state.forget_challenges()
            return StepResult.again()
        uid = user_id_of(state)
        passkey = state.passkey
        nonce = take_challenge(state)
        response = answer.get("credential", "")
        if not response:
            return StepResult.retry("Use your security key or passkey when the browser asks.")
        try:
            if nonce is None:
                raise wa.InvalidAssertion("no challenge pending (replayed or expired response)")
            new = wa.enroll_finish(env.relying_party(), response, nonce, passkey)
        except wa.InvalidAssertion as exc:
            env.webauthn_rejected(uid, exc.reason)
            return StepResult.retry(REJECTED)
        if env.webauthn_key(new.credential_id) is not None:
            return StepResult.retry("That security key is already registered.")
        label = " ".join(answer.get("label", "").split())[:LABEL_MAX]
        first = not env.facts(uid).has_backup_codes
        label = label or kinds.KINDS["passkey" if passkey else WEBAUTHN.name].label
        choice = env.add_webauthn(uid, new, passkey, label, turns_mfa_on(state))
        return finish_enrolment(state, env, choice, factor_of(new, env), first)
