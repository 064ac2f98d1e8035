"""The notifications outbox: security emails and SMS written to the database in the
transaction of the change they report, and delivered later by the worker
(idp.outbox_worker, docs/operations/notifications.md).

A rolled-back change therefore sends nothing, and a committed one is never lost to a mail
server that was down or a process that died. Only notifications go this way: one-time codes
and links that a user is waiting for are still sent in the request (idp.mfa.delivery).

The recipient, an email address or a phone number, is encrypted at rest under the data key
(idp.crypto), bound to the row's tenant and channel. The subject and text are stored as
they are, so they must never hold a code, a link or a secret.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from idp.clock import now
from idp.crypto import DataCipher
from idp.services import Services
from idp.store.models import OutboxMessage, Tenant, User

MAIL, SMS = "mail", "sms"
CHANNELS = (MAIL, SMS)


def recipient_purpose(tenant_id: int, channel: str) -> str:
    """The associated data a row's recipient is encrypted under (idp.crypto)."""
    return f"outbox recipient:{tenant_id}:{channel}"


def recipient(cipher: DataCipher, row: OutboxMessage) -> str:
    """The row's recipient in clear, for the worker that delivers it."""
    return cipher.decrypt(row.recipient, recipient_purpose(row.tenant_id, row.channel)).decode()


def enqueue(
    s: Session,
    svc: Services,
    tenant: Tenant,
    event: str,
    channel: str,
    to: str,
    text: str,
    *,
    subject: str = "",
    user: User | None = None,
) -> bool:
    """Queue a notification in the caller's transaction; False (nothing queued) when this
    deployment has no sender for ``channel``, as the synchronous senders did then."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown notification channel {channel!r}")
    if (svc.mail if channel == MAIL else svc.sms) is None:
        return False
    t = now()
    s.add(
        OutboxMessage(
            tenant_id=tenant.id,
            user_id=user.id if user is not None else None,
            channel=channel,
            event=event,
            recipient=svc.cipher.encrypt(to.encode(), recipient_purpose(tenant.id, channel)),
            subject=subject,
            body=text,
            status="pending",
            attempts=0,
            next_attempt_at=t,
            created_at=t,
        )
    )
    return True


def mail(
    s: Session,
    svc: Services,
    tenant: Tenant,
    event: str,
    to: str,
    subject: str,
    text: str,
    *,
    user: User | None = None,
) -> bool:
    """Queue an email notification (see :func:`enqueue`)."""
    return enqueue(s, svc, tenant, event, MAIL, to, text, subject=subject, user=user)
