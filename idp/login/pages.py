"""What each second-factor page shows: the user's choices, the QR code, masked targets, codes.

Kept apart from the views so the templates get plain values and nothing secret beyond what
the page must show (the TOTP key while it is being set up, new backup codes once).
"""

from __future__ import annotations

import json
from typing import Any

import segno
from sqlalchemy.orm import Session

from factors import codes, totp
from flows.plan import choices, chosen
from flows.policy import kind_of
from flows.state import FlowState
from idp.login.flows import WebEnv, tenant_policy
from idp.mfa import credentials
from idp.store.models import Tenant, User

KIND_LABELS = {
    "totp": "Authenticator app",
    "sms": "Text message (SMS)",
    "email": "Email to another address",
    "webauthn": "Security key or passkey",
}


def qr_data_uri(uri: str) -> str:
    """An inline SVG QR code (segno) as a ``data:`` URI, allowed by the CSP's img-src."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def choice_labels(s: Session, user: User, options: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for option in options:
        if option == "backup":
            out.append((option, "A backup code"))
        else:
            out.append((option, credentials.find(s, user.id, option).label))
    return out


def page_data(
    s: Session, tenant: Tenant, state: FlowState, step: str, env: WebEnv
) -> dict[str, Any]:
    """Template values for ``step`` (first-factor steps need none)."""
    if state.user_id is None or step in ("identify", "password"):
        return {}
    user = s.get(User, state.user_id)
    assert user is not None
    policy = tenant_policy(tenant)
    facts = env.facts(user.id)
    data: dict[str, Any] = {"code_sent": state.challenge is not None}
    if step in ("enroll", "offer"):
        data["kinds"] = [(k, KIND_LABELS[k]) for k in policy.enrollable]
    elif step == "choose" or step.startswith("verify_"):
        current = chosen(facts, state.choice)
        data["current"] = current
        data["options"] = [o for o in choice_labels(s, user, choices(facts)) if o[0] != current]
        if kind_of(current) in ("sms", "email"):
            data["target"] = codes.BY_KIND[kind_of(current)].mask(env.contact(user.id, current))
    elif step == "enroll_totp":
        secret = env.unseal(state.secret)
        uri = totp.provisioning_uri(secret, user.username, tenant.name)
        data.update(secret=secret, uri=uri, qr=qr_data_uri(uri), two_codes=policy.totp_two_codes)
    elif step in ("enroll_sms", "enroll_email") and state.contact:
        data["target"] = codes.BY_KIND[state.enrolling].mask(env.unseal(state.contact))
    elif step == "backup_codes":
        data["codes"] = json.loads(env.unseal(state.codes))
    return data
