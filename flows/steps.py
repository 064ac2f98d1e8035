"""Steps: small classes with one interface. A step returns ok, retry (with a message) or fail.

Steps reach storage only through the :class:`Env` protocol, which the web layer implements.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol

from factors.errors import InvalidCredentials
from factors.kinds import KINDS
from flows.context import VerifiedFactor
from flows.env import Env, Subject
from flows.errors import AccountLocked, Throttled
from flows.state import FlowState

PASSWORD = KINDS["password"]
GENERIC_LOGIN_ERROR = "Incorrect username or password."
USERNAME_MAX = 150


class Outcome(StrEnum):
    OK = "ok"
    RETRY = "retry"
    FAIL = "fail"


@dataclass(frozen=True)
class StepResult:
    outcome: Outcome
    message: str | None = None
    factor: VerifiedFactor | None = None
    rejected: bool = False  # a wrong password or code was presented (audited as a failure)

    @classmethod
    def ok(cls, factor: VerifiedFactor | None = None) -> StepResult:
        return cls(Outcome.OK, factor=factor)

    @classmethod
    def retry(cls, message: str) -> StepResult:
        return cls(Outcome.RETRY, message)

    @classmethod
    def wrong(cls, message: str) -> StepResult:
        """Try again: the password or code given was wrong."""
        return cls(Outcome.RETRY, message, rejected=True)

    @classmethod
    def fail(cls, message: str) -> StepResult:
        return cls(Outcome.FAIL, message)

    @classmethod
    def again(cls, message: str | None = None) -> StepResult:
        """Show the (possibly changed) plan's current step again, with an optional notice."""
        return cls(Outcome.RETRY, message)


def normalize_username(raw: str) -> str:
    """Usernames compare NFKC-casefolded, without surrounding blanks."""
    return unicodedata.normalize("NFKC", raw).strip().casefold()


class Step(Protocol):
    name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult: ...


class IdentifyStep:
    """Takes a username. It never says whether the user exists (no enumeration)."""

    name: ClassVar[str] = "identify"
    fields: ClassVar[tuple[str, ...]] = ("username",)

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        username = normalize_username(answer.get("username", ""))
        if not username:
            return StepResult.retry("Enter your username.")
        if len(username) > USERNAME_MAX:
            return StepResult.retry(GENERIC_LOGIN_ERROR)
        subject = env.find_subject(state.tenant, None, username)
        state.identified, state.username = True, username
        state.user_id = subject.user_id if subject else None
        return StepResult.ok()


class PasswordStep:
    """Checks the password under the account and IP throttle; rehashes on new parameters."""

    name: ClassVar[str] = "password"
    fields: ClassVar[tuple[str, ...]] = ("password",)

    def run(self, state: FlowState, answer: dict[str, str], env: Env) -> StepResult:
        password = answer.get("password", "")
        if not password:
            return StepResult.retry("Enter your password.")
        username = state.username or ""
        subject = env.find_subject(state.tenant, state.user_id, username)
        if subject is not None and subject.status == "locked":
            return self._retry(state, AccountLocked.message)
        key = subject.throttle_key(state.tenant) if subject else f"{state.tenant}:{username}@0"
        try:
            attempt = env.throttle("password").begin(key, env.client_ip, env.now)
        except (Throttled, AccountLocked) as exc:
            return self._retry(state, exc.message)
        try:
            env.passwords.verify(subject.password_hash if subject else None, password)
        except InvalidCredentials:
            if attempt.failed() and subject is not None:
                env.lock_account(subject.user_id)
            state.identified = state.reauth  # show the username again so a typo can be fixed
            return StepResult.wrong(GENERIC_LOGIN_ERROR)
        attempt.succeeded()
        assert subject is not None  # verify() raises for an unknown user
        if subject.status != "active":
            return StepResult.fail("This account is disabled. Contact your administrator.")
        if subject.password_hash and env.passwords.needs_rehash(subject.password_hash):
            env.store_password_hash(subject.user_id, env.passwords.hash(password))
        return StepResult.ok(VerifiedFactor(PASSWORD.name, PASSWORD.amr, env.now))

    @staticmethod
    def _retry(state: FlowState, message: str) -> StepResult:
        state.identified = state.reauth  # show the username again so a typo can be fixed
        return StepResult.retry(message)


__all__ = ["Env", "Outcome", "Step", "StepResult", "Subject"]
