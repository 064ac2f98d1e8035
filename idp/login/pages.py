"""What each second-factor page shows: the user's choices, the QR code, masked targets, codes.

Kept apart from the views so the templates get plain values and nothing secret beyond what
the page must show (the TOTP key while it is being set up, new backup codes once).
"""

from __future__ import annotations

import json
from typing import Any

import segno
from sqlalchemy.orm import Session

from factors import codes, kinds, totp
from factors import webauthn_rp as wa
from flows.plan import choices, chosen
from flows.policy import kind_of
from flows.second_factor import enrolment_kinds
from flows.state import FlowState
from idp.assurance import tenant_policy
from idp.login.flow_store import save
from idp.login.web_env import WebEnv
from idp.mfa import credentials
from idp.store.models import Tenant, User


def qr_data_uri(uri: str) -> str:
    """An inline SVG QR code (segno) as a ``data:`` URI, allowed by the CSP's img-src."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def choice_labels(s: Session, user: User, options: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for option in options:
        if option == "backup":
            out.append((option, kinds.KINDS[option].label))
        else:
            out.append((option, credentials.find(s, user.id, option).label))
    return out


def json_block(text: str) -> str:
    """JSON made safe inside ``<script type="application/json">``: no ``</script>`` can end it
    early (a tenant or user name is echoed in WebAuthn options)."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _nonce(state: FlowState) -> bytes:
    """This flow's WebAuthn challenge, made (and saved with the flow) when first shown."""
    if state.webauthn_challenge is None:
        state.webauthn_challenge = wa.Nonce.new()
        save(state)
    return state.webauthn_challenge.value


def page_data(
    s: Session, tenant: Tenant, state: FlowState, step: str, env: WebEnv
) -> dict[str, Any]:
    """Template values for ``step``."""
    policy = tenant_policy(tenant)
    if step == "identify":  # "Sign in with a passkey": a discoverable credential, UV required
        if "webauthn" not in policy.enrollable:
            return {}
        return {"webauthn": json_block(wa.challenge(env.relying_party(), [], True, _nonce(state)))}
    if state.user_id is None or step == "password":
        return {}
    user = s.get(User, state.user_id)
    assert user is not None
    facts = env.facts(user.id)
    data: dict[str, Any] = {"code_sent": state.sent_code is not None}
    if step in ("enroll", "offer", "enroll_phishing_resistant"):
        enrolment = enrolment_kinds(policy, step == "enroll_phishing_resistant")
        data["kinds"] = [(k, kinds.KINDS[k].label) for k in enrolment]
    elif step == "verify_webauthn":
        keys = [k.credential_id for k in env.webauthn_keys(user.id)]
        data["webauthn"] = json_block(wa.challenge(env.relying_party(), keys, False, _nonce(state)))
        data["options"] = [o for o in choice_labels(s, user, choices(facts))
                           if kind_of(o[0]) != "webauthn"]  # fmt: skip
    elif step == "enroll_webauthn":
        passkey = state.passkey
        keys = [k.credential_id for k in env.webauthn_keys(user.id)]
        data["passkey"] = passkey
        options = wa.enroll_begin(env.relying_party(), env.webauthn_handle(user.id),
                                  user.username, keys, passkey, _nonce(state))  # fmt: skip
        data["webauthn"] = json_block(options)
    elif step == "choose" or step.startswith("verify_"):
        current = chosen(facts, state.choice)
        data["current"] = current
        data["options"] = [o for o in choice_labels(s, user, choices(facts)) if o[0] != current]
        sent = codes.BY_KIND.get(kind_of(current))  # SMS or email: name where the code went
        if sent is not None:
            data["target"] = sent.mask(env.contact(user.id, current))
    elif step == "enroll_totp":
        secret = env.unseal(state.secret)
        uri = totp.provisioning_uri(secret, user.username, tenant.name)
        data.update(secret=secret, uri=uri, qr=qr_data_uri(uri), two_codes=policy.totp_two_codes)
    elif step in ("enroll_sms", "enroll_email") and state.contact:
        data["target"] = codes.BY_KIND[state.enrolling].mask(env.unseal(state.contact))
    elif step == "backup_codes":
        data["codes"] = json.loads(env.unseal(state.codes))
    return data
