"""Requests that relying parties POST from their own site (OIDC authorize and end-session,
SAML HTTP-POST binding) arrive without the SameSite=Lax session cookie. Answering them
directly would not see the user's session, and would start a second one over it. So their
parameters are parked (single use, 2 minutes) and read back by a same-site GET (303)."""

from __future__ import annotations

import json
import secrets

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from idp.services import services

TTL = 120


def bounce(endpoint: str, fields: dict[str, list[str]]) -> Response:
    """Park ``fields`` and send the browser to ``endpoint`` with ``?bounce=KEY``."""
    key = secrets.token_urlsafe(18)
    services().store.set(f"bounce:{key}", json.dumps(fields).encode(), TTL)
    return redirect(url_for(endpoint, bounce=key), code=303)


def bounced() -> dict[str, list[str]] | None:
    """The parked fields of this GET (removed: used once), or None when it has none."""
    key = request.args.get("bounce")
    if key is None:
        return None
    store = services().store
    raw = store.get(f"bounce:{key}")
    store.delete(f"bounce:{key}")
    if raw is None:
        return {}
    data: dict[str, list[str]] = json.loads(raw)
    return data
