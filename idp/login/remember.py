"""The remembered browser at sign-in (DESIGN.md "Remembered browser"): the checkbox on the
second-factor pages, the ``stepwise_remember`` cookie, and the record behind it
(idp.remembered).

The cookie is read only once the password has passed in the flow, and its record counts only
for the user being signed in, so it reveals nothing about an account. It is never a factor:
it lowers the tenant policy's "second factor at every login" and nothing else
(flows.policy.required_level).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request, session
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from flows.state import FlowState
from idp import remembered
from idp.assurance import REMEMBERED
from idp.services import services
from idp.store.models import RememberedBrowser, Tenant, User


def offered_days(tenant: Tenant, state: FlowState) -> int:
    """The days the checkbox offers on this flow's second-factor pages; 0: no checkbox. Not
    offered when the tenant does not remember browsers, for a re-authentication (never
    waived), nor while binding a new factor."""
    if state.request.reauth or state.enrolling:
        return 0
    return remembered.days_of(tenant)


def _key() -> bytes:
    return services().cipher.derive(remembered.KEY_PURPOSE)


def _token() -> str:
    return request.cookies.get(remembered.COOKIE, "")


def from_cookie(s: Session, tenant: Tenant, user: User, now: int) -> RememberedBrowser | None:
    """This browser's record, when its cookie names one that still counts for ``user``."""
    token = _token()
    if not token or not remembered.days_of(tenant):
        return None
    return remembered.find(s, tenant, user, _key(), token, now)


@dataclass(frozen=True)
class AfterLogin:
    """What :func:`after_login` did: ``token`` for the cookie when it must be set (a new
    record, or the box ticked again); ``used``: the record stood in for the policy's second
    factor at this sign-in (audited with it)."""

    token: str | None = None
    used: bool = False


def after_login(
    s: Session, tenant: Tenant, state: FlowState, user: User, level: int, policy_needs: int,
    now: int,
) -> AfterLogin:  # fmt: skip
    """Keep this browser's record up to date once ``state`` has signed ``user`` in (the
    session at ``level``, the policy asking ``policy_needs``).

    - A second factor verified in this flow: this browser's record (if any) takes it as its
      last real one; with the box ticked, a browser not yet remembered gets a record.
    - Else, a record that stood in for the policy's second factor is marked used.
    The session remembers which record it signed in with (idp.assurance.decide).
    """
    record = from_cookie(s, tenant, user, now)
    second = [f.at for f in state.verified if f.kind != "password"]
    ticked = state.remember and bool(offered_days(tenant, state))
    token: str | None = None
    used = False
    if second and record is not None:
        remembered.renew(record, tenant, verified_at=max(second), now=now, extend=ticked)
        token = _token() if ticked else None
    elif second and ticked:
        token, record = remembered.issue(
            s, tenant, user, _key(), verified_at=max(second), now=now,
            user_agent=request.user_agent.string, ip=request.remote_addr,
        )  # fmt: skip
    elif record is not None and level < policy_needs:
        remembered.used(record, now)
        used = True
    else:
        return AfterLogin()
    session[REMEMBERED] = record.id
    return AfterLogin(token, used)


def set_cookie(response: Response, tenant: Tenant, token: str) -> None:
    """The cookie: HttpOnly, SameSite=Lax, Secure behind https, this tenant's path only,
    for the tenant's days (like the session cookie, idp.sessions)."""
    response.set_cookie(
        remembered.COOKIE,
        token,
        max_age=remembered.days_of(tenant) * remembered.DAY,
        path=f"/t/{tenant.slug}/",
        secure=services().settings.https,
        httponly=True,
        samesite="Lax",
    )
