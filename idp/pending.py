"""Requests from applications that wait while the user signs in: OIDC authorization requests
and SAML AuthnRequests, one bookkeeping for both.

Each is kept in the ephemeral store for the flow's lifetime and listed in the browser session
that made it, so a request id that leaks is useless in another browser. A session holds at
most ``MAX_PENDING`` of each kind; the oldest is forgotten first.
"""

from __future__ import annotations

from flask import session

from idp.services import services

MAX_PENDING = 5
SESSION_KEY = "pending"


def _entry(kind: str, key: str) -> str:
    return f"{kind}:{key}"


def park(kind: str, key: str, payload: bytes) -> None:
    """Keep ``payload`` under ``key`` for this browser session."""
    svc = services()
    svc.store.set(f"pending:{kind}:{key}", payload, svc.settings.flow_ttl)
    mine = _entry(kind, key)
    entries = [e for e in session.get(SESSION_KEY, []) if e != mine]
    same_kind = [e for e in entries if e.startswith(kind + ":")]
    dropped = set(same_kind[: max(0, len(same_kind) - (MAX_PENDING - 1))])
    session[SESSION_KEY] = [*(e for e in entries if e not in dropped), mine]


def find(kind: str, key: str) -> bytes | None:
    """The payload parked under ``key`` by this browser session, or None."""
    if _entry(kind, key) not in session.get(SESSION_KEY, []):
        return None
    return services().store.get(f"pending:{kind}:{key}")


def drop(kind: str, key: str) -> None:
    """Forget a request once answered."""
    services().store.delete(f"pending:{kind}:{key}")
    mine = _entry(kind, key)
    session[SESSION_KEY] = [e for e in session.get(SESSION_KEY, []) if e != mine]
