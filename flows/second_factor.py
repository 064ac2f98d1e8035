"""Second-factor steps: enrol (or skip the optional offer), choose, verify, see backup codes.

Each step is small and reaches storage and delivery only through :class:`flows.env.Env`.
Every code check runs under the per-account and per-IP throttle of scope ``otp``; codes sent
by SMS or email also count attempts per code (factors.codes). DESIGN.md "Login pages" names
the form fields: ``code``, ``factor``, and the buttons ``action=skip|resend|switch|back``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import ClassVar

from factors import codes, contact, kinds, totp
from factors.errors import DeliveryFailed, InvalidCode
from flows.context import VerifiedFactor
from flows.env import Env
from flows.errors import AccountLocked, Throttled
from flows.plan import choices, chosen
from flows.policy import TenantPolicy
from flows.state import FlowState
from flows.steps import StepResult

WRONG_CODE = "That code is not correct. Try again."
EXPIRED_CODE = "That code has expired or was tried too often. Send a new one."
SEND_FAILED = "The code could not be sent just now. Try again in a moment."
MAX_SENDS_PER_HOUR = 10


def user_id_of(state: FlowState) -> int:
    assert state.user_id is not None  # second-factor steps come after the password
    return state.user_id


def choose(state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
    """Take ``factor`` if it is one of the user's; clear anything the last choice left."""
    wanted = answer.get("factor", "")
    if wanted not in choices(env.facts(user_id_of(state))):
        return StepResult.again("Choose one of the listed methods.")
    state.choice = wanted
    state.forget_challenges()
    return StepResult.again()


def _checked(state: FlowState, env: Env, check: Callable[[], None]) -> StepResult | None:
    """Run ``check`` under the ``otp`` throttle; None when it passed, else the retry result."""
    subject = env.find_subject(state.tenant, state.user_id, state.username or "")
    if subject is None:
        return StepResult.fail("This account cannot sign in.")
    try:
        attempt = env.throttle("otp").begin(subject.throttle_key(state.tenant), env.client_ip,
                                            env.now)  # fmt: skip
    except (Throttled, AccountLocked) as exc:
        return StepResult.retry(exc.message)
    try:
        check()
    except InvalidCode as exc:
        if attempt.failed():
            env.lock_account(subject.user_id)
        return StepResult.wrong(EXPIRED_CODE if isinstance(exc, codes.CodeExpired) else WRONG_CODE)
    attempt.succeeded()
    return None


def verified(kind: str, env: Env) -> VerifiedFactor:
    """``kind`` verified now, with its ``amr`` values (a TOTP, a sent or a backup code)."""
    return VerifiedFactor(kind, kinds.KINDS[kind].amr, env.now)


def _send(state: FlowState, env: Env, kind: str, typed: str, enrolling: bool = False) -> StepResult:
    """Send a fresh code (cool-down and an hourly cap per account and per IP); ``typed`` is
    the target as the user entered it when ``enrolling``, else the stored target."""
    factor = codes.BY_KIND[kind]
    previous = state.sent_code
    try:
        if enrolling:
            target, code, challenge = factor.enroll_begin(typed, env.now, previous)
        else:
            target = typed
            code, challenge = factor.challenge(target, env.now, previous)
    except contact.InvalidContact as exc:
        return StepResult.retry(str(exc))
    except codes.ResendTooSoon as exc:
        return StepResult.retry(f"A code was just sent. You can ask again in {exc.wait} seconds.")
    sent_by_user = env.count(f"otp-sends:user:{user_id_of(state)}", 3600)
    sent_by_ip = env.count(f"otp-sends:ip:{env.client_ip}", 3600)
    if max(sent_by_user, sent_by_ip // 5) > MAX_SENDS_PER_HOUR:
        return StepResult.retry("Too many codes were sent. Try again later.")
    try:
        env.send_code(kind, target, code)
    except DeliveryFailed:
        return StepResult.retry(SEND_FAILED)
    state.sent_code = challenge
    if enrolling:
        state.contact = env.seal(target)
    return StepResult.again(f"We sent a code to {factor.mask(target)}.")


def _check_code(
    state: FlowState, env: Env, kind: str, code: str, enrolling: str = ""
) -> Callable[[], None]:
    """The check of a sent code; ``enrolling``: the target being added, which it must match."""

    def check() -> None:
        challenge = state.sent_code
        if challenge is None:
            raise codes.CodeExpired()
        attempt = env.count(f"otp-attempts:{challenge.key}", codes.LIFETIME)
        factor = codes.BY_KIND[kind]
        if enrolling:
            factor.enroll_finish(challenge, enrolling, code, env.now, attempt)
        else:
            factor.verify(challenge, code, env.now, attempt)

    return check


class ChooseStep:
    """Several factors enrolled and none remembered: the user picks one (``factor``)."""

    name: ClassVar[str] = "choose"
    fields: ClassVar[tuple[str, ...]] = ("factor",)

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        return choose(state, answer, env)


class VerifyStep:
    """Shared by the verify steps: switch factor (``action=switch``) or check the code."""

    name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]] = ("code",)

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        if answer.get("action") == "switch":
            return choose(state, answer, env)
        return self.verify(state, answer, env)

    def verify(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        raise NotImplementedError

    def _done(self, state: FlowState, env: Env, kind: str) -> StepResult:
        if kind != "backup":  # a backup code is a fallback, never the method offered first
            env.factor_used(user_id_of(state), state.choice)
        state.forget_challenges()
        return StepResult.ok(verified(kind, env))


def _current_choice(state: FlowState, env: Env) -> str:
    return chosen(env.facts(user_id_of(state)), state.choice)


class VerifyTotpStep(VerifyStep):
    name: ClassVar[str] = "verify_totp"

    def verify(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        code, uid = answer.get("code", ""), user_id_of(state)
        if not code.strip():
            return StepResult.retry("Enter the code from your authenticator app.")
        state.choice = _current_choice(state, env)

        def check() -> None:
            secret, last_step = env.totp_secret(uid, state.choice)
            step = totp.verify(secret, code, env.now, last_step)
            if not env.claim_totp_step(uid, state.choice, step):
                raise InvalidCode()  # a parallel request used this code first

        return _checked(state, env, check) or self._done(state, env, "totp")


class VerifyCodeStep(VerifyStep):
    """A code sent by SMS or email to the chosen number or address."""

    kind: ClassVar[str]

    def verify(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        state.choice = _current_choice(state, env)
        if answer.get("action") == "resend":
            return _send(state, env, self.kind, env.contact(user_id_of(state), state.choice))
        code = answer.get("code", "")
        if not code.strip():
            return StepResult.retry("Enter the code we sent you.")
        check = _check_code(state, env, self.kind, code)
        return _checked(state, env, check) or self._done(state, env, self.kind)


class VerifySmsStep(VerifyCodeStep):
    name: ClassVar[str] = "verify_sms"
    kind: ClassVar[str] = "sms"


class VerifyEmailStep(VerifyCodeStep):
    name: ClassVar[str] = "verify_email"
    kind: ClassVar[str] = "email"


class VerifyBackupStep(VerifyStep):
    name: ClassVar[str] = "verify_backup"

    def verify(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        code, uid = answer.get("code", ""), user_id_of(state)
        if not code.strip():
            return StepResult.retry("Enter one of your backup codes.")
        state.choice = "backup"

        def check() -> None:
            env.use_backup_code(uid, code)

        return _checked(state, env, check) or self._done(state, env, "backup")


def enrolment_kinds(policy: TenantPolicy, phishing_resistant: bool = False) -> tuple[str, ...]:
    """What the user may choose to set up: the tenant's methods, WebAuthn as two choices
    (a security key, or a passkey that also signs in without a password)."""
    out = [k for kind in policy.enrollable for k in kinds.enrolment_choices(kind)]
    return tuple(k for k in out if kinds.KINDS[k].phishing_resistant or not phishing_resistant)


def begin_enrolment(state: FlowState, kind: str, seal: Callable[[str], str]) -> None:
    """Set the flow up to enrol ``kind`` (one of :func:`enrolment_kinds`)."""
    state.contact, state.secret = "", ""
    state.forget_challenges()
    state.enrolling = kinds.stored_as(kind)
    state.passkey = kind == "passkey"  # the page adds the WebAuthn challenge when shown
    if kind == "totp":  # made now, kept sealed in the flow until activated
        state.secret = seal(totp.new_secret())


def start_enrolment(
    state: FlowState, env: Env, kind: str, policy: TenantPolicy, phishing_resistant: bool = False
) -> StepResult:
    if kind not in enrolment_kinds(policy, phishing_resistant):
        return StepResult.again("Choose one of the listed methods.")
    begin_enrolment(state, kind, env.seal)
    return StepResult.ok()


class EnrollStep:
    """No factor yet and one is required: choose what to set up (no skip)."""

    name: ClassVar[str] = "enroll"
    fields: ClassVar[tuple[str, ...]] = ("factor",)
    skippable: ClassVar[bool] = False
    phishing_resistant: ClassVar[bool] = False

    def __init__(self, policy: Callable[[FlowState], TenantPolicy]) -> None:
        self.policy = policy

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        if self.skippable and answer.get("action") == "skip":
            env.skip_offer(user_id_of(state))
            state.offer_skipped = True
            return StepResult.ok()
        kind = answer.get("factor", "")
        return start_enrolment(state, env, kind, self.policy(state), self.phishing_resistant)


class OfferStep(EnrollStep):
    """Optional mode: the same choice with a Skip button (``action=skip``)."""

    name: ClassVar[str] = "offer"
    skippable: ClassVar[bool] = True


class EnrollPhishingResistantStep(EnrollStep):
    """Level 3 is needed and the user has no WebAuthn credential: a key or a passkey only."""

    name: ClassVar[str] = "enroll_phishing_resistant"
    phishing_resistant: ClassVar[bool] = True


def _enrolled(state: FlowState, env: Env, kind: str, value: str, counter: int | None) -> StepResult:
    """Store the new factor (TOTP, SMS or email) and finish its enrolment."""
    uid = user_id_of(state)
    first = not env.facts(uid).has_backup_codes
    choice = env.add_factor(uid, kind, value, counter, turns_mfa_on(state))
    return finish_enrolment(state, env, choice, verified(kind, env), first)


def turns_mfa_on(state: FlowState) -> bool:
    """Enrolling turns MFA on for the user, except inside an application's step-up: a factor
    set up because one application asked for more (DESIGN.md "Who is asked")."""
    return not (state.request.requested_level or state.request.app_min_level)


def finish_enrolment(
    state: FlowState, env: Env, choice: str, factor: VerifiedFactor, first: bool
) -> StepResult:
    """The new factor counts as verified; the first one also brings backup codes, shown next."""
    if first:
        state.codes = env.seal(json.dumps(env.new_backup_codes(user_id_of(state))))
    state.enrolling = state.secret = state.contact = ""
    state.choice, state.passkey = choice, False
    state.forget_challenges()
    return StepResult.ok(factor)


class EnrollTotpStep:
    """Scan the QR code (or type the key), then prove it with one code, or two in a row."""

    name: ClassVar[str] = "enroll_totp"
    fields: ClassVar[tuple[str, ...]] = ("code",)

    def __init__(self, policy: Callable[[FlowState], TenantPolicy]) -> None:
        self.policy = policy

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        if answer.get("action") == "back":
            state.enrolling = state.secret = ""
            return StepResult.again()
        given = [answer.get("code", "")]
        if self.policy(state).totp_two_codes:
            given.append(answer.get("next_code", ""))
        if not all(c.strip() for c in given):
            return StepResult.retry("Enter the code shown in your authenticator app.")
        secret = env.unseal(state.secret)
        try:
            step = totp.enroll_finish(secret, given, env.now)
        except InvalidCode:
            return StepResult.wrong(WRONG_CODE)
        return _enrolled(state, env, "totp", secret, step)


class EnrollContactStep:
    """Add a phone (SMS) or email address: enter it, receive a code, type it back."""

    name: ClassVar[str]
    kind: ClassVar[str]
    fields: ClassVar[tuple[str, ...]] = ("code",)

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        action, uid = answer.get("action"), user_id_of(state)
        if action == "back":
            state.enrolling, state.contact = "", ""
            state.forget_challenges()
            return StepResult.again()
        if action == "resend":
            typed = answer.get(kinds.KINDS[self.kind].contact_field, "").strip()
            if not typed and state.contact:  # "Send a new code" to the same target
                return _send(state, env, self.kind, env.unseal(state.contact))
            if not typed:
                return StepResult.retry("Enter where the code should go.")
            try:
                if env.has_contact(uid, self.kind, codes.BY_KIND[self.kind].normalize(typed)):
                    return StepResult.retry("That one is already set up.")
            except contact.InvalidContact as exc:
                return StepResult.retry(str(exc))
            return _send(state, env, self.kind, typed, enrolling=True)
        code = answer.get("code", "")
        if not state.contact or not code.strip():
            return StepResult.retry("Enter the code we sent you.")
        target = env.unseal(state.contact)
        failed = _checked(state, env, _check_code(state, env, self.kind, code, target))
        if failed is not None:
            return failed
        return _enrolled(state, env, self.kind, target, None)


class EnrollSmsStep(EnrollContactStep):
    name: ClassVar[str] = "enroll_sms"
    kind: ClassVar[str] = "sms"


class EnrollEmailStep(EnrollContactStep):
    name: ClassVar[str] = "enroll_email"
    kind: ClassVar[str] = "email"


class BackupCodesStep:
    """Shows the new backup codes once; continuing confirms they were saved."""

    name: ClassVar[str] = "backup_codes"
    fields: ClassVar[tuple[str, ...]] = ("confirm",)

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        state.codes = ""
        return StepResult.ok()
