"""A user's email address changes only once the new address is proved: an emailed link.

- Asking for a change sends a link to the new address (idp.links: single use, a day long,
  stored as an HMAC, the new address kept as its ``target``) and tells the old address.
- "Verify this address" sends the same kind of link to the current address.
- Using the link sets ``email``, ``email_norm`` and ``email_verified`` and tells the old
  address when it changed. A user has one such link at a time: a new one ends the last.
- Under sign-in by email (``Tenant.login_by_email``) an address another user of the tenant
  has verified is refused when the link is used, and only the new mailbox hears why, so
  neither the form nor the link's page tells whose address is whose.
- Links are sent in the request (the user waits for them, and a failure is told); the
  notices are queued in its transaction, for the outbox's worker (idp.outbox).

Addresses are checked by email-validator (syntax only, no DNS). No address or token goes to
the audit log. NIST SP 800-63B-4 section 4.6 (changing a recorded address needs the account's
authentication, and a notice to the address being replaced).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from factors.contact import InvalidContact, email_key, mask_email, normalize_email
from factors.errors import DeliveryFailed
from idp import links, outbox
from idp.directory import audit
from idp.profiles import ProfileInvalid
from idp.store.models import Tenant, User

if TYPE_CHECKING:
    from idp.services import Services

log = logging.getLogger("idp.email_change")

PURPOSE = links.VERIFY_EMAIL
TTL = 24 * 3600  # a day: the link waits for the user to open their new mailbox
PATH = "account/verify-email"


class Outcome(StrEnum):
    """What using a link did (the page shows the same for each, see the module's notes)."""

    CHANGED = "changed"
    VERIFIED = "verified"
    REFUSED = "refused"


class MailUnavailable(ProfileInvalid):
    """The link could not be emailed: nothing is changed."""

    code, status = "mail_unavailable", 503
    message = "We could not send email just now. Try again later."


def new_address(raw: str) -> str:
    """The address typed, normalised by email-validator; :class:`ProfileInvalid` otherwise."""
    if len(raw) > 254:
        raise ProfileInvalid("New email address: at most 254 characters.")
    try:
        address = normalize_email(raw)
    except InvalidContact:
        raise ProfileInvalid("New email address: that is not a valid email address.") from None
    if len(address) > 254:
        raise ProfileInvalid("New email address: at most 254 characters.")
    return address


def _key(svc: Services) -> bytes:
    return svc.cipher.derive("links")


def _send(svc: Services, tenant: Tenant, to: str, subject: str, text: str) -> bool:
    """Email ``to``; False (logged without the address) when it cannot be sent."""
    if svc.mail is None:
        return False
    try:
        svc.mail.send(to, f"{tenant.name}: {subject}", f"{text}\n\n-- {tenant.name}")
    except DeliveryFailed:
        log.warning("an email-change message could not be sent")
        return False
    return True


def _notify(s: Session, svc: Services, tenant: Tenant, user: User, event: str, to: str,
            subject: str, text: str) -> None:  # fmt: skip
    """Queue a notice (it holds no link) in this transaction, for the outbox's worker."""
    text = f"{text}\n\n-- {tenant.name}"
    outbox.mail(s, svc, tenant, event, to, f"{tenant.name}: {subject}", text, user=user)


def _link_to(s: Session, svc: Services, tenant: Tenant, user: User, target: str, now: int) -> str:
    token = links.issue(s, _key(svc), tenant, user, PURPOSE, TTL, now, target=target)
    return f"{svc.settings.base_url.rstrip('/')}/t/{tenant.slug}/{PATH}?token={token}"


def ask_change(
    s: Session, svc: Services, tenant: Tenant, user: User, raw: str, now: int, ip: str | None
) -> str:
    """Email a confirmation link to the new address and a notice to the current one; return
    the new address. Raises :class:`ProfileInvalid` (and then nothing is sent or kept)."""
    address = new_address(raw)
    if email_key(address) == user.email_norm:
        raise ProfileInvalid("New email address: that is already your address.")
    url = _link_to(s, svc, tenant, user, address, now)
    hours = TTL // 3600
    text = (
        f"Someone, probably you, asked to use this address for the account {user.username} "
        f"at {tenant.name}.\n\nConfirm it here (the link works once, for {hours} hours):\n"
        f"{url}\n\nIf this was not you, ignore this email: nothing changes without it."
    )
    if not _send(svc, tenant, address, "confirm your new email address", text):
        raise MailUnavailable()
    notice = (
        f"Someone asked to change the email address of your account {user.username} to "
        f"{mask_email(address)}. It changes only when the new address is confirmed.\n\n"
        "If this was not you, sign in, change your password and contact your administrator."
    )
    audit(s, tenant, "user.email_change_requested", actor=user.id, subject=user.id, ip=ip)
    _notify(s, svc, tenant, user, "user.email_change_requested", user.email,
            "a change of your email address was asked", notice)  # fmt: skip
    return address


def ask_verification(
    s: Session, svc: Services, tenant: Tenant, user: User, now: int, ip: str | None
) -> None:
    """Email a link that proves the current address (it ends a pending change's link)."""
    if user.email_verified:
        raise ProfileInvalid("Your email address is already verified.")
    url = _link_to(s, svc, tenant, user, user.email, now)
    text = (
        f"Confirm that this is the email address of your account {user.username} at "
        f"{tenant.name} (the link works once, for {TTL // 3600} hours):\n{url}\n\n"
        "If you did not ask for this, ignore this email."
    )
    if not _send(svc, tenant, user.email, "verify your email address", text):
        raise MailUnavailable()
    audit(s, tenant, "user.email_verification_sent", actor=user.id, subject=user.id, ip=ip)


def peek(s: Session, svc: Services, tenant: Tenant, token: str, now: int) -> str:
    """The address a live link confirms, masked (to show before it is used); raise
    :class:`links.LinkInvalid` for any link that is not live."""
    link = links.peek_link(s, _key(svc), tenant, token, PURPOSE, now)
    if not link.target:
        raise links.LinkInvalid()
    return mask_email(link.target)


def _taken(s: Session, tenant: Tenant, user: User, address: str) -> bool:
    """Whether another user of the tenant has verified ``address``."""
    other = select(User.id).where(
        User.tenant_id == tenant.id,
        User.id != user.id,
        User.email_norm == email_key(address),
        User.email_verified.is_(True),
    )
    return s.scalar(other.limit(1)) is not None


def confirm(
    s: Session, svc: Services, tenant: Tenant, token: str, now: int, ip: str | None
) -> Outcome:
    """Use the link (once): the address it names becomes the user's verified address."""
    address = links.peek_link(s, _key(svc), tenant, token, PURPOSE, now).target
    user = links.redeem(s, _key(svc), tenant, token, PURPOSE, now)
    if not address:
        raise links.LinkInvalid()
    if tenant.login_by_email and _taken(s, tenant, user, address):
        audit(s, tenant, "user.email_change_refused", actor=user.id, subject=user.id, ip=ip,
              reason="address_in_use")  # fmt: skip
        _notify(s, svc, tenant, user, "user.email_change_refused", address,
                "email address not changed",
                f"This address could not be linked to the account {user.username}: it cannot "
                "be used for signing in there. Keep your current address, or ask your "
                "administrator.")  # fmt: skip
        return Outcome.REFUSED
    old, changed = user.email, email_key(address) != user.email_norm
    user.email, user.email_norm, user.email_verified = address, email_key(address), True
    user.updated_at = now
    if not changed:
        audit(s, tenant, "user.email_verified", actor=user.id, subject=user.id, ip=ip)
        _notify(s, svc, tenant, user, "user.email_verified", address, "email address verified",
                f"This address is now verified for the account {user.username}.")  # fmt: skip
        return Outcome.VERIFIED
    # A reset link mailed to the old address must not outlive the change.
    links.forget(s, user, now, links.RESET_PASSWORD)
    audit(s, tenant, "user.email_changed", actor=user.id, subject=user.id, ip=ip)
    _notify(s, svc, tenant, user, "user.email_changed", address, "email address changed",
            f"This is now the email address of the account {user.username}.")  # fmt: skip
    _notify(s, svc, tenant, user, "user.email_changed", old, "your email address was changed",
            f"The email address of your account {user.username} is now {mask_email(address)}."
            "\n\nIf this was not you, contact your administrator at once.")  # fmt: skip
    return Outcome.CHANGED
