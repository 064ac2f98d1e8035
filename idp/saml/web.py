"""SAML endpoints of a tenant: metadata, and SP-initiated single sign-on over HTTP-Redirect
and HTTP-POST (SAML 2.0 bindings 3.4 and 3.5; Web Browser SSO profile, profiles 4.1).

Until the SP and its ACS URL are known, errors are shown as a page (never sent anywhere);
after that, a refusal is a signed Response with a SAML status, never an assertion.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Response, make_response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from flows.assurance import Reason
from flows.policy import Request
from idp import assurance
from idp import pending as waiting
from idp.crosssite import bounce, bounced
from idp.directory import DirectoryError
from idp.errors import HttpError
from idp.login import flow_store
from idp.saml import keys, logout, response
from idp.saml.authn import AuthnRequest, SamlError, decode, parse_authn_request
from idp.saml.contexts import Unsatisfiable
from idp.saml.metadata import POST, REDIRECT, idp_document
from idp.saml.query import RedirectQuery, parse_query
from idp.saml.signatures import Signer, verify_post, verify_redirect
from idp.saml.sps import acs_for, find_sp
from idp.security import CSP, allow_form_target, form_target_source
from idp.services import services
from idp.signout import sign_out
from idp.store.models import ServiceProvider, Tenant
from idp.tenancy import current_tenant, tenant_blueprint

bp = tenant_blueprint("saml", __name__, "/saml")
UNMET_CONTEXT = "The requested authentication context cannot be met."
# The assurance authority's reasons as SAML statuses (core 3.2.2.2), for a request that
# may not interact (IsPassive) or cannot be met; one table.
SAML_STATUS: dict[Reason, tuple[str, str, str]] = {
    Reason.NO_SESSION: ("Responder", "NoPassive", "The user would have to sign in."),
    Reason.USER_INACTIVE: ("Requester", "RequestDenied", "This account cannot sign in."),
    Reason.FRESH_LOGIN: ("Responder", "NoPassive", "The user would have to sign in."),
    Reason.LEVEL_MISSING: ("Responder", "NoPassive", "The user would have to sign in."),
    Reason.CONSENT_NEEDED: ("Responder", "NoPassive", "The user would have to consent."),
    Reason.UNMET: ("Responder", "NoAuthnContext", UNMET_CONTEXT),
}
REPLAY_TTL = 3600
MAX_PENDING = 5


def _skew() -> int:
    return services().settings.saml_clock_skew


def entity_id(tenant: Tenant) -> str:
    return f"{services().settings.base_url.rstrip('/')}/t/{tenant.slug}/saml/metadata"


def _signer(s: Session, tenant: Tenant) -> Signer:
    row = keys.ensure_key(s, services().cipher, tenant)
    return Signer(keys.private_pem(services().cipher, tenant, row), row.cert_pem)


@bp.get("/metadata")
def metadata() -> ResponseReturnValue:
    tenant = current_tenant()
    base = services().settings.base_url.rstrip("/") + f"/t/{tenant.slug}/saml"
    with services().db.session() as s:
        signer = _signer(s, s.merge(tenant))
        certs = [k.cert_pem for k in keys.published(s, s.merge(tenant))]
        doc = idp_document(entity_id(tenant), base + "/sso", base + "/slo", signer, certs)
    return Response(doc, mimetype="application/samlmetadata+xml")


def _error_page(message: str) -> ResponseReturnValue:
    page = render_template(
        "errors/error.html", tenant=current_tenant(), title="Cannot sign in", message=message
    )
    return page, 400


@dataclass(frozen=True)
class Incoming:
    """A SAML message's fields and, when it came by HTTP-Redirect, the query they were read
    from: its signature, if any, is checked over exactly these fields (bindings 3.4.4.1)."""

    source: Mapping[str, str]
    query: RedirectQuery | None = None

    @property
    def redirected(self) -> bool:
        return self.query is not None


def _incoming(endpoint: str) -> Incoming | ResponseReturnValue:
    """The SAML message of this request and whether it came by HTTP-Redirect. An HTTP-POST
    message is first bounced to a same-site GET (idp.crosssite): then the answer is that.
    A parameter sent twice is refused, never read one way and verified another."""
    if request.method == "POST":
        fields = ("SAMLRequest", "SAMLResponse", "RelayState")
        if any(len(request.form.getlist(k)) > 1 for k in fields):
            return _error_page("The request carries a SAML parameter more than once.")
        return bounce(
            endpoint, {k: request.form.getlist(k)[:1] for k in fields if k in request.form}
        )
    parked = bounced()
    if parked is None:
        try:
            query = parse_query(request.query_string)
        except SamlError as exc:
            return _error_page(exc.message)
        return Incoming(query.values(), query)
    if not parked:
        return _error_page("This request has expired. Go back to the application and retry.")
    return Incoming({k: v[0] for k, v in parked.items() if v})


@bp.route("/sso", methods=["GET", "POST"])
def sso() -> ResponseReturnValue:
    message = _incoming(".sso")
    if not isinstance(message, Incoming):
        return message
    source, redirected = message.source, message.redirected
    raw = source.get("SAMLRequest", "")
    if not raw:
        return _error_page("The request has no SAMLRequest.")
    tenant = current_tenant()
    with services().db.session() as s:
        try:
            xml = decode(raw, deflated=redirected)
            req = parse_authn_request(
                xml, int(time.time()), _skew(), "redirect" if redirected else "post"
            )
        except SamlError as exc:
            return _error_page(exc.message)
        sp = find_sp(s, tenant, req.issuer)
        if sp is None:
            return _error_page("This service provider is not registered here.")
        try:
            acs = acs_for(sp, req.acs_url, req.acs_index)
        except DirectoryError as exc:
            return _error_page(str(exc))
        req.relay_state = source.get("RelayState")
        if req.relay_state is not None and len(req.relay_state) > 80:
            return _error_page("RelayState is longer than 80 bytes (SAML bindings 3.4.3).")
        try:
            req = _verified(sp, req, xml, message.query)
        except SamlError as exc:
            return _refuse(s, sp, req, acs, exc.status, exc.sub, exc.message)
        if not services().store.add(f"saml:req:{sp.id}:{req.id}", b"1", REPLAY_TTL):
            return _refuse(
                s, sp, req, acs, "Requester", "RequestDenied", "This request was already used."
            )
        req.key = secrets.token_urlsafe(18)
        _save(req)
        return _proceed(s, tenant, sp, req, acs, after_login=False)


@bp.get("/idp-init")
def idp_initiated() -> ResponseReturnValue:
    """IdP-initiated SSO (SAML 2.0 profiles 4.1.5): an unsolicited Response to the SP's
    default ACS, after whatever sign-in the SP's minimum level needs."""
    tenant = current_tenant()
    relay = request.args.get("RelayState")
    if relay is not None and len(relay) > 80:
        return _error_page("RelayState is longer than 80 bytes (SAML bindings 3.4.3).")
    with services().db.session() as s:
        sp = find_sp(s, tenant, request.args.get("sp", ""))
        if sp is None:
            return _error_page("This service provider is not registered here.")
        now = int(time.time())
        req = AuthnRequest(
            id="",
            issuer=sp.entity_id,
            issue_instant=now,
            relay_state=relay,
            binding="idp",
            key=secrets.token_urlsafe(18),
        )
        _save(req)
        return _proceed(s, tenant, sp, req, acs_for(sp, None, None), after_login=False)


@bp.get("/resume")
def resume() -> ResponseReturnValue:
    req = _load(request.args.get("req", ""))
    tenant = current_tenant()
    with services().db.session() as s:
        sp = find_sp(s, tenant, req.issuer)
        if sp is None:
            return _error_page("This service provider is no longer registered.")
        acs = acs_for(sp, req.acs_url, req.acs_index)
        if request.args.get("unmet"):
            return _refuse(s, sp, req, acs, "Responder", "NoAuthnContext", UNMET_CONTEXT)
        return _proceed(s, tenant, sp, req, acs, after_login=True)


def _verified(
    sp: ServiceProvider, req: AuthnRequest, xml: bytes, query: RedirectQuery | None
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
        again = parse_authn_request(signed, int(time.time()), _skew(), "post")
        again.relay_state = req.relay_state
        return again
    return req


def _save(req: AuthnRequest) -> None:
    waiting.park("saml", req.key, req.to_json())


def _load(key: str) -> AuthnRequest:
    raw = waiting.find("saml", key)
    if raw is None:
        raise HttpError(
            "This sign-in request has expired or belongs to another browser. "
            "Go back to the application and start again."
        )
    return AuthnRequest.from_json(raw)


def _drop(req: AuthnRequest) -> None:
    waiting.drop("saml", req.key)


def _proceed(
    s: Session, tenant: Tenant, sp: ServiceProvider, req: AuthnRequest, acs: str, after_login: bool
) -> ResponseReturnValue:
    try:
        needed = req.requested.needed_level()
    except Unsatisfiable:
        return _refuse(
            s,
            sp,
            req,
            acs,
            "Responder",
            "NoAuthnContext",
            "The requested authentication context is not supported.",
        )
    wanted = Request(
        requested_level=min(needed, 3),
        essential=True,
        app_min_level=sp.min_level,
        force_fresh=req.force_authn,
        # The SP's clock may run ahead (within the skew): never let its IssueInstant make a
        # fresh login look older than the request.
        started_at=min(req.issue_instant, int(time.time())),
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
            return _refuse(s, sp, req, acs, *SAML_STATUS[reason])
        state = flow_store.start(tenant, wanted, url_for(".resume", req=req.key), continue_to=acs)
        return redirect(url_for("login.login", flow=state.id))
    ctx = found.context
    assert ctx is not None and user is not None
    not_before = wanted.not_before()
    try:
        class_ref = req.requested.class_ref(ctx.level(not_before))
    except Unsatisfiable:
        return _refuse(s, sp, req, acs, *SAML_STATUS[Reason.UNMET])
    grant = response.Grant(
        issuer=entity_id(tenant),
        audience=sp.entity_id,
        recipient=acs,
        in_response_to=req.id or None,  # None: unsolicited (IdP-initiated)
        name_id=response.name_id(sp.nameid_format, user, sp.entity_id, _pairwise_key()),
        name_id_format=sp.nameid_format,
        session_index=session.setdefault("saml_index", "_" + secrets.token_hex(16)),
        authn_instant=ctx.auth_time(not_before) or int(time.time()),
        class_ref=class_ref,
        attributes=response.attributes(sp.attributes, user),
    )
    body = response.success(
        grant,
        _signer(s, tenant),
        int(time.time()),
        _skew(),
        sp.sign_response,
        sp.encryption_cert if sp.encrypt_assertion else None,
    )
    _drop(req)
    # Remember who got an assertion in this session, for Single Logout.
    known = [e for e in session.get("saml_sps", []) if e["sp"] != sp.entity_id]
    session["saml_sps"] = [
        *known,
        {"sp": sp.entity_id, "name_id": grant.name_id, "format": grant.name_id_format},
    ]
    return _post(acs, body, req.relay_state, sp.name)


def _pairwise_key() -> bytes:
    """The key of persistent NameIDs (``response.name_id``)."""
    return services().cipher.derive("saml persistent nameid")


def _refuse(
    s: Session,
    sp: ServiceProvider,
    req: AuthnRequest,
    acs: str,
    status: str,
    sub: str | None,
    message: str,
) -> ResponseReturnValue:
    tenant = current_tenant()
    body = response.failure(
        entity_id(tenant),
        acs,
        req.id or None,
        _signer(s, s.merge(tenant)),
        int(time.time()),
        status,
        sub,
        message,
    )
    if req.key:
        _drop(req)
    return _post(acs, body, req.relay_state, sp.name)


def _post(
    acs: str, body: bytes, relay_state: str | None, sp_name: str, param: str = "SAMLResponse"
) -> ResponseReturnValue:
    """HTTP-POST binding: an auto-submitting form to ``acs`` (SAML bindings 3.5.4)."""
    params = [(param, base64.b64encode(body).decode())]
    if relay_state is not None:
        params.append(("RelayState", relay_state))
    page = render_template(
        "oidc/form_post.html",
        tenant=current_tenant(),
        redirect_uri=acs,
        params=params,
        client_name=sp_name,
    )
    return allow_form_target(make_response(page), acs)


# --- Single Logout (SAML 2.0 profiles 4.4) ------------------------------------------------
def _slo_endpoint(sp: ServiceProvider, response: bool) -> tuple[str, str] | None:
    """The SP's SingleLogoutService (binding, location), HTTP-Redirect preferred; for a
    response its ResponseLocation when it has one."""
    endpoints = sorted(sp.slo, key=lambda e: e.get("binding") != REDIRECT)
    for endpoint in endpoints:
        if endpoint.get("binding") in (REDIRECT, POST):
            location = endpoint.get("response_location") if response else None
            return str(endpoint["binding"]), str(location or endpoint["location"])
    return None


def _send_logout(
    endpoint: tuple[str, str],
    param: str,
    xml: bytes,
    relay: str | None,
    signer: Signer,
    sp_name: str,
) -> ResponseReturnValue:
    binding, location = endpoint
    if binding == REDIRECT:
        return redirect(logout.redirect_url(location, param, xml, relay, signer.key_pem))
    body = logout.signed(xml, signer.key_pem, signer.cert_pem)
    return _post(location, body, relay, sp_name, param)


@bp.route("/slo", methods=["GET", "POST"])
def slo() -> ResponseReturnValue:
    """A LogoutRequest from an SP (start), or a LogoutResponse from one we asked (continue)."""
    message = _incoming(".slo")
    if not isinstance(message, Incoming):
        return message
    source, redirected = message.source, message.redirected
    tenant = current_tenant()
    with services().db.session() as s:
        try:
            if "SAMLRequest" in source:
                return _logout_request(s, tenant, message)
            if "SAMLResponse" in source:
                answer = logout.parse_response(decode(source["SAMLResponse"], deflated=redirected))
                state = session.get("slo")
                if state is None or answer.in_response_to != state.get("waiting"):
                    return _error_page("This logout response does not belong to a logout.")
                return _continue_logout(s, tenant)
        except SamlError as exc:
            return _error_page(exc.message)
    return _error_page("The request has no SAMLRequest or SAMLResponse.")


def _logout_request(s: Session, tenant: Tenant, message: Incoming) -> ResponseReturnValue:
    """An SP's LogoutRequest (SAML 2.0 profiles 4.4.3). Signed, it starts Single Logout; an
    unsigned one (only from an SP without signing certificates) first asks the user."""
    xml = decode(message.source["SAMLRequest"], deflated=message.redirected)
    req = logout.parse_request(xml)
    sp = find_sp(s, tenant, req.issuer)
    if sp is None:
        return _error_page("This service provider is not registered here.")
    relay = message.source.get("RelayState")
    try:
        req, signed = _verified_logout(sp, req, xml, message.query)
        _fresh_logout(tenant, sp, req, signed)
    except SamlError:
        return _decline_logout(s, tenant, sp, req.id, relay, "Requester")
    mine = next((e for e in session.get("saml_sps", []) if e["sp"] == sp.entity_id), None)
    if mine is None:
        # This SP has no assertion in this browser's session: nothing of ours to end for it
        # (and no way for any SP to sign out a session it is not in).
        return _decline_logout(s, tenant, sp, req.id, relay, "Requester")
    if req.name_id not in (None, mine["name_id"]):
        return _error_page("This logout request is for someone else.")
    initiator = {"sp": sp.entity_id, "id": req.id, "relay": relay}
    if not signed:
        return _confirm_logout(s, tenant, sp, initiator)
    return _start_logout(s, tenant, initiator)


def _fresh_logout(
    tenant: Tenant, sp: ServiceProvider, req: logout.LogoutRequest, signed: bool
) -> None:
    """A LogoutRequest is for this endpoint (its Destination, which a signed one must carry:
    bindings 3.4.5.2 and 3.5.5.2), recent (IssueInstant within the clock skew and five
    minutes) and used once; else SamlError. A captured signed request cannot be replayed."""
    here = f"{services().settings.base_url.rstrip('/')}/t/{tenant.slug}/saml/slo"
    if req.destination != here and (signed or req.destination is not None):
        raise SamlError("The logout request is not addressed to this endpoint.")
    if abs(req.issue_instant - int(time.time())) > _skew() + 300:
        raise SamlError("The logout request is too old or from the future.")
    if not services().store.add(f"saml:logout:{sp.id}:{req.id}", b"1", REPLAY_TTL):
        raise SamlError("This logout request was already used.")


def _verified_logout(
    sp: ServiceProvider, req: logout.LogoutRequest, xml: bytes, query: RedirectQuery | None
) -> tuple[logout.LogoutRequest, bool]:
    """The LogoutRequest as signed, and whether it was. A signature is required when the SP's
    metadata has a signing certificate (or says it signs), and checked whenever one is sent:
    over HTTP-Redirect on the query it was read from, over HTTP-POST by reading the request
    again from the signed element (SAML bindings 3.4.4.1, 3.5.4; profiles 4.4.3.1)."""
    required = bool(sp.signing_certs) or sp.authn_requests_signed
    if query is not None:
        if not required and query.get("Signature") is None:
            return req, False
        verify_redirect(query, sp.signing_certs)
        return req, True
    if not required and b"SignatureValue" not in xml:
        return req, False
    signed = logout.parse_request(verify_post(xml, sp.signing_certs))
    if signed.issuer != sp.entity_id:
        raise SamlError("The signed logout request names another issuer.")
    return signed, True


def _decline_logout(
    s: Session, tenant: Tenant, sp: ServiceProvider, request_id: str, relay: str | None, status: str
) -> ResponseReturnValue:
    """A non-success LogoutResponse to the SP; a page saying so if it has no SLO endpoint."""
    if _slo_endpoint(sp, response=True) is None:
        page = render_template(
            "errors/error.html",
            tenant=tenant,
            title="Still signed in",
            message=f"{sp.name} could not sign you out here. You are still signed in.",
        )
        return page, 400
    return _answer_logout(s, tenant, sp, request_id, relay, status)


def _start_logout(s: Session, tenant: Tenant, initiator: Mapping[str, Any]) -> ResponseReturnValue:
    """Single Logout for ``initiator`` (sp, id, relay): the session's other SPs, then the
    session itself, then the LogoutResponse (SAML 2.0 profiles 4.4.3.3)."""
    session["slo"] = {
        "initiator": {"sp": initiator["sp"], "id": initiator["id"], "relay": initiator["relay"]},
        "pending": [e["sp"] for e in session.get("saml_sps", []) if e["sp"] != initiator["sp"]],
    }
    return _continue_logout(s, tenant)


def _confirm_logout(
    s: Session, tenant: Tenant, sp: ServiceProvider, initiator: dict[str, Any]
) -> ResponseReturnValue:
    """An unsigned LogoutRequest could come from any site: ask before ending the session, as
    OpenID Connect RP-Initiated Logout does without an id_token_hint (section 2)."""
    pending = {**initiator, "key": secrets.token_urlsafe(12)}
    session["slo_confirm"] = pending
    page = render_template(
        "login/confirm_sign_out.html",
        tenant=tenant,
        asker=sp.name,
        action=url_for(".slo_confirm", req=pending["key"]),
    )
    return _allow_logout_targets(s, tenant, make_response(page))


def _allow_logout_targets(s: Session, tenant: Tenant, resp: Response) -> Response:
    """Let the confirmation's form lead to every SLO endpoint the logout may go to next:
    ``form-action`` applies to the redirects after a form submission too."""
    sources = set()
    for entry in session.get("saml_sps", []):
        sp = find_sp(s, tenant, entry["sp"])
        for response_leg in (False, True):
            endpoint = _slo_endpoint(sp, response_leg) if sp is not None else None
            source = form_target_source(endpoint[1]) if endpoint is not None else None
            if source is not None:
                sources.add(source)
    if sources:
        resp.headers["Content-Security-Policy"] = CSP.replace(
            "form-action 'self'", "form-action 'self' " + " ".join(sorted(sources))
        )
    return resp


@bp.post("/slo/confirm")
def slo_confirm() -> ResponseReturnValue:
    """The user's answer to an unsigned LogoutRequest: sign out (Single Logout goes on as
    for a signed one), or stay signed in (the SP gets a non-success LogoutResponse)."""
    pending = session.get("slo_confirm")
    given = request.args.get("req", "").encode()
    if not pending or not hmac.compare_digest(pending["key"].encode(), given):
        raise HttpError("This sign-out request has expired. Go back and try again.")
    session.pop("slo_confirm", None)
    tenant = current_tenant()
    with services().db.session() as s:
        sp = find_sp(s, tenant, pending["sp"])
        if sp is None:
            return _error_page("This service provider is no longer registered.")
        still_in = any(e["sp"] == sp.entity_id for e in session.get("saml_sps", []))
        if not still_in:
            return _decline_logout(s, tenant, sp, pending["id"], pending["relay"], "Requester")
        if request.form.get("action") != "logout":
            return _decline_logout(s, tenant, sp, pending["id"], pending["relay"], "Responder")
        return _start_logout(s, tenant, pending)


@bp.post("/logout")
def idp_logout() -> ResponseReturnValue:
    """IdP-initiated Single Logout from the account page: every SP of the session, then us."""
    session["slo"] = {"initiator": None, "pending": [e["sp"] for e in session.get("saml_sps", [])]}
    with services().db.session() as s:
        return _continue_logout(s, current_tenant())


def _continue_logout(s: Session, tenant: Tenant) -> ResponseReturnValue:
    """Ask the next SP of the session to log out, or finish: end the session and answer."""
    state = dict(session.get("slo") or {})
    pending = list(state.get("pending", []))
    signer = _signer(s, s.merge(tenant))
    entries = {e["sp"]: e for e in session.get("saml_sps", [])}
    while pending:
        sp = find_sp(s, tenant, pending.pop(0))
        endpoint = _slo_endpoint(sp, response=False) if sp is not None else None
        if sp is None or endpoint is None or sp.entity_id not in entries:
            continue  # no front-channel logout endpoint: nothing to ask
        entry = entries[sp.entity_id]
        request_id, xml = logout.build_request(
            entity_id(tenant),
            endpoint[1],
            entry["name_id"],
            entry["format"],
            sp.entity_id,
            session.get("saml_index", ""),
            int(time.time()),
        )
        session["slo"] = {**state, "pending": pending, "waiting": request_id}
        return _send_logout(endpoint, "SAMLRequest", xml, None, signer, sp.name)
    initiator = state.get("initiator")
    sign_out(s, tenant, "saml_slo")
    if initiator is None:
        return render_template("login/signed_out.html", tenant=tenant)
    sp = find_sp(s, tenant, initiator["sp"])
    if sp is None:
        return render_template("login/signed_out.html", tenant=tenant)
    return _answer_logout(s, tenant, sp, initiator["id"], initiator.get("relay"))


def _answer_logout(
    s: Session,
    tenant: Tenant,
    sp: ServiceProvider,
    request_id: str,
    relay: str | None,
    status: str = "Success",
) -> ResponseReturnValue:
    """The LogoutResponse to the SP that asked (its SingleLogoutService)."""
    endpoint = _slo_endpoint(sp, response=True)
    if endpoint is None:
        return render_template("login/signed_out.html", tenant=tenant)
    xml = logout.build_response(
        entity_id(tenant), endpoint[1], request_id, int(time.time()), status
    )
    return _send_logout(endpoint, "SAMLResponse", xml, relay, _signer(s, s.merge(tenant)), sp.name)
