"""The app's long-lived services, built once by the app factory (idp.app).

This module depends only on shared modules and on small protocols (the senders below), so
that every package may use it and it uses none of them: the app factory plugs the
implementations in (idp.mfa.delivery, idp.oidc).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from flask import current_app

from factors.kinds import ALLOWABLE, KINDS
from factors.password import PasswordFactor
from flows.throttle import Throttle, ThrottleRules
from idp.clock import Clock
from idp.config_cache import ConfigCache
from idp.crypto import DataCipher
from idp.ephemeral import EphemeralStore
from idp.settings import Settings
from idp.store.db import Database

T = TypeVar("T")


class SmsSender(Protocol):
    """Hands a text message to a provider (idp.mfa.delivery)."""

    def send(self, to: str, text: str) -> None: ...


class MailSender(Protocol):
    """Hands an email to a provider (idp.mfa.delivery)."""

    def send(self, to: str, subject: str, text: str) -> None: ...


@dataclass
class Services:
    settings: Settings
    db: Database
    store: EphemeralStore
    passwords: PasswordFactor
    throttle_rules: ThrottleRules
    cipher: DataCipher
    config: ConfigCache
    sms: SmsSender | None = None
    mail: MailSender | None = None
    clock: Clock = field(default_factory=Clock)
    caches: dict[str, object] = field(default_factory=dict)  # see cached()

    @property
    def deliverable(self) -> tuple[str, ...]:
        """Second factors this deployment can offer (SMS and email need a sender)."""
        senders = {"sms": self.sms, "email": self.mail}
        return tuple(k for k in ALLOWABLE if not KINDS[k].needs_sender or senders.get(k))

    @property
    def backup_key(self) -> bytes:
        return self.cipher.derive("backup codes")

    def cached(self, name: str, make: Callable[[], T]) -> T:
        """This process's cache called ``name`` (e.g. idp.oidc's signing keys), made on first
        use; clearing ``caches`` is what a fresh process sees."""
        found = self.caches.get(name)
        if found is None:
            found = self.caches[name] = make()
        return found  # type: ignore[return-value]  # made by ``make`` under this name

    def throttle(self, scope: str) -> Throttle:
        return Throttle(self.store, scope, self.throttle_rules)


def services() -> Services:
    """The services of the app handling the current request or CLI command."""
    svc: Services = current_app.extensions["stepwise"]
    return svc
