"""SP-initiated single sign-on (SAML 2.0 profiles 4.1; bindings 3.4 and 3.5): ``/sso`` takes an
AuthnRequest, ``/resume`` comes back to it after the login, and :func:`proceed` answers it with
an assertion once the session is ready.

Until the SP and its ACS are known, an error is a page (never sent anywhere); after that, a
refusal is a signed Response with a SAML status, never an assertion (``.errors``).
"""

from __future__ import annotations

import secrets

from flask import redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from flows.assurance import Reason
from flows.policy import Request
from idp import assurance, clock
from idp import pending as waiting
from idp.errors import HttpError
from idp.login import flow_store, outcomes
from idp.metrics import SAML_RESPONSES
from idp.saml import response
from idp.saml.authn import AuthnRequest, decode, parse_authn_request
from idp.saml.errors import SamlError
from idp.saml.query import RedirectQuery
from idp.saml.signatures import verify_post, verify_redirect
from idp.saml.sps import acs_for, find_sp
from idp.saml.web.bindings import Incoming, incoming, post_form
from idp.saml.web.blueprint import bp, entity_id, signer, skew
from idp.saml.web.errors import ToAcs, reply_to
from idp.services import services
from idp.store.models import ServiceProvider, Tenant
from idp.tenancy import current_tenant

REPLAY_TTL = 3600
MAX_RELAY_STATE = 80  # bytes (SAML bindings 3.4.3, 3.5.3)


@bp.route("/sso", methods=["GET", "POST"])
def sso() -> ResponseReturnValue:
    """An AuthnRequest over HTTP-Redirect or HTTP-POST (SAML 2.0 core 3.4)."""
    message = incoming(".sso")
    if not isinstance(message, Incoming):
        return message
    raw = message.source.get("SAMLRequest", "")
    if not raw:
        raise SamlError("The request has no SAMLRequest.")
    tenant, now = current_tenant(), clock.now()
    with services().db.session() as s:
        xml = decode(raw, deflated=message.redirected)
        binding = "redirect" if message.redirected else "post"
        req = parse_authn_request(xml, now, skew(), binding)
        sp = find_sp(s, tenant, req.issuer)
        if sp is None:
            raise SamlError("This service provider is not registered here.")
        acs = acs_for(sp, req.acs_url, req.acs_index)
        req.relay_state = relay_state(message.source.get("RelayState"))
        reply_to(ToAcs(sp.name, acs, req.id, req.relay_state))
        req = _verified(sp, req, xml, message.query, now)
        if not services().store.add(f"saml:req:{sp.id}:{req.id}", b"1", REPLAY_TTL):
            raise SamlError("This request was already used.", "request_denied")
        req.key = secrets.token_urlsafe(18)
        save(req)
        return proceed(s, tenant, sp, req, acs, after_login=False)


def relay_state(value: str | None) -> str | None:
    """RelayState, at most 80 bytes (SAML bindings 3.4.3); else SamlError."""
    if value is not None and len(value) > MAX_RELAY_STATE:
        raise SamlError("RelayState is longer than 80 bytes (SAML bindings 3.4.3).")
    return value


@bp.get("/resume")
def resume() -> ResponseReturnValue:
    """Back from the login flow: answer the parked request (``unmet``: the login could not
    reach what it asked)."""
    req = _load(request.args.get("req", ""))
    tenant = current_tenant()
    with services().db.session() as s:
        sp = find_sp(s, tenant, req.issuer)
        if sp is None:
            raise SamlError("This service provider is no longer registered.")
        acs = acs_for(sp, req.acs_url, req.acs_index)
        if request.args.get("unmet"):
            reply_to(ToAcs(sp.name, acs, req.id or None, req.relay_state, req.key))
            raise SamlError(code=Reason.UNMET)
        return proceed(s, tenant, sp, req, acs, after_login=True)


def _verified(
    sp: ServiceProvider, req: AuthnRequest, xml: bytes, query: RedirectQuery | None, now: int
) -> AuthnRequest:
    """Check the request's signature when the SP signs (or this request is signed). Over
    HTTP-Redirect it covers the very query the request was read from; a POST request is read
    again from the signed element alone (no signature wrapping)."""
    if query is not None:
        if sp.authn_requests_signed or query.get("Signature") is not None:
            verify_redirect(query, sp.signing_certs)
        return req
    if sp.authn_requests_signed or b"SignatureValue" in xml:
        signed = verify_post(xml, sp.signing_certs)
        again = parse_authn_request(signed, now, skew(), "post")
        again.relay_state = req.relay_state
        return again
    return req


def save(req: AuthnRequest) -> None:
    """Park the request while the user signs in (``idp.pending``), under ``req.key``."""
    waiting.park("saml", req.key, req.to_json())


def _load(key: str) -> AuthnRequest:
    raw = waiting.find("saml", key)
    if raw is None:
        raise HttpError(
            "This sign-in request has expired or belongs to another browser. "
            "Go back to the application and start again."
        )
    return AuthnRequest.from_json(raw)


def proceed(
    s: Session, tenant: Tenant, sp: ServiceProvider, req: AuthnRequest, acs: str, after_login: bool
) -> ResponseReturnValue:
    """Ask the assurance authority whether the session is ready for ``req``: then post the
    assertion to ``acs``; else send the user to the login flow, or (IsPassive, or a level
    this user cannot reach) refuse with the reason's SAML status."""
    reply_to(ToAcs(sp.name, acs, req.id or None, req.relay_state, req.key))
    now = clock.now()
    needed = req.requested.needed_level()
    wanted = Request(
        requested_level=min(needed, 3),
        essential=True,
        app_min_level=sp.min_level,
        force_fresh=req.force_authn,
        # The SP's clock may run ahead (within the skew): never let its IssueInstant make a
        # fresh login look older than the request.
        started_at=min(req.issue_instant, now),
    )
    # ForceAuthn asks again whatever the session holds (core 3.4.1); after that login its
    # factors are newer than the request and satisfy the check.
    forced = req.force_authn and not after_login
    decision = assurance.decide(s, tenant, wanted, forced=forced)
    found, user = decision.verdict, decision.user
    if not found.ready:
        reason = found.reason
        assert reason is not None
        if reason is Reason.UNMET or req.is_passive:
            raise SamlError(code=reason)
        if Reason.LEVEL_MISSING in found.reasons:
            outcomes.step_up_requested(tenant.slug)
        state = flow_store.start(tenant, wanted, url_for(".resume", req=req.key), continue_to=acs)
        return redirect(url_for("login.login", flow=state.id))
    ctx = found.context
    assert ctx is not None and user is not None
    not_before = wanted.not_before()
    class_ref = req.requested.class_ref(ctx.level(not_before))  # Unsatisfiable: refused
    grant = response.Grant(
        issuer=entity_id(tenant),
        audience=sp.entity_id,
        recipient=acs,
        in_response_to=req.id or None,  # None: unsolicited (IdP-initiated)
        name_id=response.name_id(sp.nameid_format, user, sp.entity_id, _pairwise_key()),
        name_id_format=sp.nameid_format,
        session_index=session.setdefault("saml_index", "_" + secrets.token_hex(16)),
        authn_instant=ctx.auth_time(not_before) or now,
        class_ref=class_ref,
        attributes=response.attributes(sp.attributes, user),
    )
    body = response.success(
        grant,
        signer(s, tenant),
        now,
        skew(),
        sp.sign_response,
        sp.encryption_cert if sp.encrypt_assertion else None,
    )
    waiting.drop("saml", req.key)
    _remember(sp, grant)
    SAML_RESPONSES.labels(tenant.slug, "Success").inc()
    return post_form(acs, body, req.relay_state, sp.name)


def _remember(sp: ServiceProvider, grant: response.Grant) -> None:
    """Who got an assertion in this session, and as whom, for Single Logout."""
    known = [e for e in session.get("saml_sps", []) if e["sp"] != sp.entity_id]
    session["saml_sps"] = [
        *known,
        {"sp": sp.entity_id, "name_id": grant.name_id, "format": grant.name_id_format},
    ]


def _pairwise_key() -> bytes:
    """The key of persistent NameIDs (``response.name_id``)."""
    return services().cipher.derive("saml persistent nameid")
