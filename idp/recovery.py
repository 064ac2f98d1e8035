"""Forgotten passwords, below the pages (idp.password_reset): asking for a link, the reset
flow bound to one browser session, and the engine that runs its second-factor steps.

- Asking gives nothing away: the same answer, and the same work in the request, whether the
  name matches an active account or not. The mail is sent after the response's transaction, by
  a mail thread, so its delivery time does not show either. Requests are counted per
  account (or per name typed, when none matches) and per IP address in the ephemeral store
  (atomic increments).
- The link does not go through the notifications outbox (idp.outbox), by decision (issue 16):
  the user is waiting for it, as for a one-time code, and the worker polls and retries for
  up to an hour, well past the link's 30 minutes. Nor may a live link rest in a table: only
  its HMAC is stored (idp.links), and the outbox keeps its texts in clear. The mail thread
  already keeps delivery out of the request, which is what hides whether the name matched;
  what it gives up is a retry: a link lost to a mail server that was down, or to a process
  that died, has to be asked for again.
- The link (idp.links, purpose ``reset_password``) lasts 30 minutes and works once; using it
  starts a flow kept in the ephemeral store and found only through this browser's session.
- The flow's plan is flows.recovery's: a second factor at the highest level held, with the
  login's own steps, before the new password is taken.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import queue
import secrets
import threading
from dataclasses import dataclass, replace

from flask import session
from sqlalchemy import select
from sqlalchemy.orm import Session

from factors.contact import email_key
from factors.errors import DeliveryFailed
from flows import recovery
from flows.engine import Engine
from flows.errors import FlowNotFound
from flows.policy import Request, UserFacts, kind_of
from flows.registry import registry
from flows.state import FlowState
from flows.steps import normalize_username
from idp import links
from idp.assurance import tenant_policy
from idp.directory import audit, find_user
from idp.login import flow_store
from idp.login.web_env import WebEnv
from idp.services import MailSender, Services, services
from idp.store.models import Tenant, User

log = logging.getLogger("idp.recovery")

ACCOUNT_LIMIT = 5  # links per account (or per name typed) an hour
IP_LIMIT = 20  # requests per IP address an hour
WINDOW = 3600
ENTRY_MAX = 254  # a username (150) or an email address (254)
SESSION_KEY = "reset_flow"  # this browser's reset flow: {"id": ..., "mailbox": bool}


class TooManyRequests(Exception):
    """This IP address asked for too many links (said the same way for every name)."""


@dataclass(frozen=True)
class Mail:
    """A reset link to send once the transaction that stored it has committed."""

    to: str
    subject: str
    text: str

    def send_later(self, svc: Services) -> None:
        """Hand the message to the mail thread: the request does not wait for the server."""
        if svc.mail is not None:
            _outbox().put((svc.mail, self))


_queue: queue.Queue[tuple[MailSender, Mail]] | None = None
_queue_pid = 0  # the process whose thread serves _queue
_queue_lock = threading.Lock()


def _outbox() -> queue.Queue[tuple[MailSender, Mail]]:
    """The queue of the process's mail thread, started on first use (after a fork too: a
    daemon thread, so that a server stopping never waits for a mail server)."""
    global _queue, _queue_pid
    with _queue_lock:
        if _queue is None or _queue_pid != os.getpid():
            _queue, _queue_pid = queue.Queue(), os.getpid()
            threading.Thread(target=_deliver, args=(_queue,), name="reset-mail",
                             daemon=True).start()  # fmt: skip
        return _queue


def _deliver(q: queue.Queue[tuple[MailSender, Mail]]) -> None:
    while True:
        sender, mail = q.get()
        try:
            sender.send(mail.to, mail.subject, mail.text)
        except DeliveryFailed:
            log.warning("password reset link not sent")  # no address, no link in the log


def _by_address(s: Session, tenant: Tenant, typed: str, verified: bool) -> list[User]:
    where = [User.tenant_id == tenant.id, User.email_norm == email_key(typed)]
    if verified:
        where.append(User.email_verified.is_(True))
    return list(s.scalars(select(User).where(*where).limit(2)))


def _lookup(s: Session, tenant: Tenant, typed: str) -> User | None:
    """The account a typed username, or email address, names. An address is first the one
    account that verified it, so a username spelt like someone's address cannot catch their
    reset (as at sign-in, idp.directory.find_login); then a username; then the one account
    whose unverified address it is. An address that several accounts share names none."""
    if "@" in typed:
        verified = _by_address(s, tenant, typed, True)
        if verified:
            return verified[0] if len(verified) == 1 else None
    user = find_user(s, tenant, typed)
    if user is not None or "@" not in typed:
        return user
    found = _by_address(s, tenant, typed, False)
    return found[0] if len(found) == 1 else None


def request_link(
    s: Session, svc: Services, tenant: Tenant, entry: str, ip: str, now: int
) -> Mail | None:
    """Handle "I forgot my password" for ``entry`` (a username or an email address).

    Returns the mail to send, or None: no active account, or too many links asked for it.
    Raises :class:`TooManyRequests` when this IP asked too often, whatever the name.
    """
    if svc.store.incr(f"reset-requests:ip:{ip}", WINDOW) > IP_LIMIT:
        raise TooManyRequests()
    key = svc.cipher.derive("links")
    typed = normalize_username(entry)[:ENTRY_MAX]
    user = _lookup(s, tenant, typed) if typed else None
    # Counted by account when one matches, else by the name: the same work either way.
    name_digest = hmac.new(key, typed.encode(), hashlib.sha256).hexdigest()[:16]
    counted = f"user:{user.id}" if user is not None else f"name:{name_digest}"
    over = svc.store.incr(f"reset-requests:{counted}", WINDOW) > ACCOUNT_LIMIT
    if user is None or user.status != "active" or over:
        links.digest(key, secrets.token_urlsafe(32))  # the cost of making a link
        details = {"name_digest": name_digest} if user is None else {"sent": False}
        audit(s, tenant, "user.password_reset_requested", subject=user.id if user else None,
              ip=ip, **details)  # fmt: skip
        return None
    token = links.issue(s, key, tenant, user, links.RESET_PASSWORD, links.RESET_TTL, now,
                        target=user.email)  # fmt: skip
    audit(s, tenant, "user.password_reset_requested", subject=user.id, ip=ip, sent=True)
    url = f"{svc.settings.base_url.rstrip('/')}/t/{tenant.slug}/reset-password?token={token}"
    minutes = links.RESET_TTL // 60
    text = (
        f"Someone asked to reset the password of your account {user.username} at {tenant.name}."
        f"\n\nChoose a new password here (the link works once, for {minutes} minutes):\n{url}\n\n"
        "If you have a second sign-in step, you will be asked for it too.\n"
        f"If this was not you, ignore this email: your password stays as it is.\n-- {tenant.name}"
    )
    return Mail(user.email, f"{tenant.name}: reset your password", text)


# --- the reset flow, bound to this browser session ---------------------------------------


def start(tenant: Tenant, user: User, mailbox: str, now: int) -> FlowState:
    """A reset flow for ``user`` in this browser session (one at a time); ``mailbox``: the
    address the link went to (:func:`factors.contact.email_key`), which the reset verifies."""
    state = FlowState(
        id=secrets.token_urlsafe(24),
        tenant=tenant.slug,
        request=Request(started_at=now),
        created_at=now,
        return_to="",
        identified=True,
        username=user.username_norm,
        user_id=user.id,
    )
    flow_store.save(state)  # the ephemeral store, under the flow TTL (at most 30 minutes)
    previous = session.get(SESSION_KEY)
    if isinstance(previous, dict):
        services().store.delete(f"flow:{previous.get('id')}")
    session[SESSION_KEY] = {"id": state.id, "mailbox": mailbox}
    return state


def load(tenant: Tenant, now: int) -> tuple[FlowState, str]:
    """This browser's reset flow in ``tenant`` and the mailbox its link went to;
    :class:`FlowNotFound` when there is none, or it is older than a link lives."""
    bound = session.get(SESSION_KEY)
    if not isinstance(bound, dict) or not isinstance(bound.get("id"), str):
        raise FlowNotFound()
    raw = services().store.get(f"flow:{bound['id']}")
    if raw is None:
        raise FlowNotFound()
    state = FlowState.from_json(raw)
    if state.tenant != tenant.slug:  # the session cookie is per tenant path; be sure
        raise FlowNotFound()
    if now >= state.created_at + links.RESET_TTL:
        finish(state)
        raise FlowNotFound()
    return state, str(bound.get("mailbox") or "")


def finish(state: FlowState) -> None:
    services().store.delete(f"flow:{state.id}")
    session.pop(SESSION_KEY, None)


@dataclass
class RecoveryEnv(WebEnv):
    """The login's step environment, but for a reset: an email factor at the very mailbox
    the link went to (``mailbox``, compared as :func:`factors.contact.email_key`, so no
    other spelling of it slips through) proves nothing more than the link did, so it is held
    but not usable here (a user with no other factor goes to their admin)."""

    mailbox: str = ""

    def facts(self, user_id: int) -> UserFacts:
        facts = super().facts(user_id)
        mailbox = self.mailbox or self._user(user_id).email_norm
        same = {
            c
            for c in facts.enrolled
            if kind_of(c) == "email" and email_key(self.contact(user_id, c)) == mailbox
        }
        if not same:
            return facts
        return replace(
            facts,
            enrolled=tuple(c for c in facts.enrolled if c not in same),
            unverifiable=(*facts.unverifiable, "email"),
        )


def engine(tenant: Tenant, env: RecoveryEnv) -> Engine:
    """The login's steps, planned by flows.recovery for the flow's user."""
    policy = tenant_policy(tenant)

    def planner(state: FlowState) -> list[str]:
        assert state.user_id is not None
        return recovery.plan(env.facts(state.user_id), state.verified, state.choice)

    return Engine(registry(lambda _state: policy), planner)
