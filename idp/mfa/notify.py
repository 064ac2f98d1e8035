"""Security events: each is audited and, where the user should know, confirmed by email.

Mail goes to the account's primary address, through the outbox (idp.outbox): it is queued in
the transaction of the change it reports and delivered by the worker, with retries, so the
request never waits for a mail server and a failed delivery never undoes the change. The
texts name what happened and where to act; they never hold a code, a link or a secret.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from idp import outbox
from idp.directory import audit
from idp.services import Services
from idp.store.models import Tenant, User

MESSAGES = {
    "mfa.enabled": ("Two-step sign-in is on", "Two-step sign-in is now set up for your account."),
    "mfa.factor_added": ("A sign-in method was added", "A sign-in method was added: {label}."),
    "mfa.factor_renamed": (
        "A sign-in method was renamed",
        "A sign-in method was renamed from {old} to {label}.",
    ),
    "mfa.factor_removed": (
        "A sign-in method was removed",
        "A sign-in method was removed: {label}.",
    ),
    "mfa.backup_codes_regenerated": (
        "New backup codes",
        "New backup codes were created for your account. The old ones no longer work.",
    ),
    "mfa.backup_code_used": (
        "A backup code was used",
        "A backup code was used to sign in. {remaining} remain.{warning}",
    ),
    "webauthn.clone_suspected": (
        "A security key may have been copied",
        'Your security key or passkey "{label}" answered as if it had been copied. '
        "If you did not expect this, remove it from your account and register it again.",
    ),
    "mfa.disabled": (
        "Two-step sign-in is off",
        "Two-step sign-in was turned off for your account.",
    ),
    "user.other_sessions_ended": (
        "Your other sessions were signed out",
        "Every other session of your account was signed out ({count} in all).",
    ),
    "user.password_changed": (
        "Your password was changed",
        "The password of your account was changed. Your other sessions were signed out.",
    ),
    "user.password_reset": (
        "Your password was reset",
        "The password of your account was reset with a link sent to this address. Every "
        "session was signed out.",
    ),
    "mfa.reset": (
        "Your sign-in methods were reset",
        "An administrator reset your two-step sign-in. You will set it up again at your next "
        "sign-in.",
    ),
}
FOOTER = (
    "\n\nIf this was not you, contact your administrator and change your password at once:\n"
    "{account}/account/password\nIf you cannot sign in any more: {account}/forgot-password\n"
    "-- {tenant}"
)


def security_event(
    s: Session,
    svc: Services,
    tenant: Tenant,
    user: User,
    event: str,
    *,
    actor: int | None = None,
    ip: str | None = None,
    **details: Any,
) -> None:
    """Audit ``event`` for ``user`` and, when it is one they must hear about, queue an email
    to them in the same transaction."""
    audit(s, tenant, event, actor=actor, subject=user.id, ip=ip, **details)
    if event not in MESSAGES:
        return
    subject, body = MESSAGES[event]
    account = f"{svc.settings.base_url.rstrip('/')}/t/{tenant.slug}"
    text = body.format(**details) + FOOTER.format(tenant=tenant.name, account=account)
    outbox.mail(s, svc, tenant, event, user.email, f"{tenant.name}: {subject}", text, user=user)
