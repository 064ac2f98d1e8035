"""Console: Keys (OIDC JWS signing keys and SAML signing certificates).

Rotation goes through a confirmation page that says what happens to the old key. OIDC: a new
key signs from now, the old one stays in the JWKS for the grace period. SAML: two steps, so
service providers can fetch the new certificate from metadata before it signs anything.
Private keys are never shown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue

from idp import clock
from idp.admin.console import Confirmation, actor, back_to, bp, confirm, done
from idp.directory import DirectoryError
from idp.oidc import keys as oidc_keys
from idp.saml import keys as saml_keys
from idp.saml.web.blueprint import entity_id
from idp.services import services
from idp.store.models import SamlKey, SigningKey
from idp.tenancy import current_tenant, tenant_in
from idp.untrusted import ascii_int

DEFAULT_GRACE_HOURS = oidc_keys.DEFAULT_GRACE // 3600
MAX_GRACE_HOURS = oidc_keys.MAX_GRACE // 3600


def when(seconds: int | None) -> str:
    """A timestamp as admins read it (UTC)."""
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class OidcRow:
    kid: str
    alg: str
    state: str  # "active", "retired (published)", "retired"
    created: str
    published_until: str


@dataclass(frozen=True)
class SamlRow:
    state: str
    created: str
    expires: str
    fingerprint: str  # the first bytes of the SHA-256 fingerprint


def oidc_row(k: SigningKey, at: int) -> OidcRow:
    if k.active:
        state, until = "active (signs)", "—"
    elif k.publish_until is not None and k.publish_until > at:
        state, until = "retired, still published", when(k.publish_until)
    else:
        state, until = "retired, no longer published", when(k.publish_until) or "—"
    return OidcRow(k.kid, k.alg, state, when(k.created_at), until)


SAML_STATES = {
    "next": "next (published, not signing yet)",
    "active": "active (signs)",
    "retired": "retired (not published)",
}


def saml_row(k: SamlKey) -> SamlRow:
    facts = saml_keys.cert_facts(k.cert_pem)
    return SamlRow(
        SAML_STATES.get(k.state, k.state),
        when(k.created_at),
        when(facts.not_after),
        facts.sha256[:23],
    )


@bp.get("/keys")
def keys() -> ResponseReturnValue:
    at = clock.now()
    with services().db.session() as s:
        tenant = tenant_in(s)
        oidc = [oidc_row(k, at) for k in oidc_keys.recent(s, tenant)]
        saml = [saml_row(k) for k in saml_keys.recent(s, tenant)]
        upcoming = saml_keys.upcoming(s, tenant) is not None
    return render_template(
        "admin/keys.html",
        oidc=oidc,
        saml=saml,
        upcoming=upcoming,
        algorithms=oidc_keys.ALGORITHMS,
        default_grace=DEFAULT_GRACE_HOURS,
        max_grace=MAX_GRACE_HOURS,
        metadata_url=entity_id(current_tenant()),
    )


def _rotation() -> tuple[str, int]:
    """The algorithm and grace (seconds) asked for, from the query string or the form."""
    values = request.form if request.method == "POST" else request.args
    alg = values.get("alg", "RS256")
    if alg not in oidc_keys.ALGORITHMS:
        raise DirectoryError(f"the algorithm must be one of {', '.join(oidc_keys.ALGORITHMS)}")
    hours = ascii_int(values.get("grace_hours", str(DEFAULT_GRACE_HOURS)).strip(), 4)
    if hours is None or hours > MAX_GRACE_HOURS:
        raise DirectoryError(
            f"the grace period must be a whole number of hours, 0 to {MAX_GRACE_HOURS}"
        )
    return alg, hours * 3600


@bp.get("/keys/oidc/rotate")
def keys_oidc_rotate_page() -> ResponseReturnValue:
    back_to(url_for(".keys"))
    alg, grace = _rotation()
    with services().db.session() as s:
        old = oidc_keys.active_key(s, tenant_in(s), alg)
        old_kid = old.kid if old else None
    until = when(clock.now() + grace)
    consequences = [f"A new {alg} key is made; it signs every {alg} token from now."]
    if old_kid:
        consequences.append(
            f"The current {alg} key {old_kid} stops signing. It stays published in the JWKS "
            f"until {until}, so tokens it signed still verify until then."
        )
        if grace == 0:
            consequences.append(
                "With no grace period, tokens it signed stop verifying now: relying parties "
                "will reject them."
            )
    consequences.append("Keys of the other algorithm are not changed.")
    return confirm(
        Confirmation(
            title=f"Rotate the {alg} signing key?",
            consequences=consequences,
            button=f"Rotate the {alg} key",
            action=url_for(".keys_oidc_rotate"),
            cancel=url_for(".keys"),
            fields=[("alg", alg), ("grace_hours", str(grace // 3600))],
        )
    )


@bp.post("/keys/oidc/rotate")
def keys_oidc_rotate() -> ResponseReturnValue:
    back_to(url_for(".keys"))
    alg, grace = _rotation()
    svc = services()
    with svc.db.session() as s:
        new = oidc_keys.rotate(s, svc.cipher, tenant_in(s), alg, grace, actor())
        kid = new.kid
    return done(f"The new {alg} key {kid} signs from now.", url_for(".keys"))


@bp.get("/keys/saml/publish")
def keys_saml_publish_page() -> ResponseReturnValue:
    return confirm(
        Confirmation(
            title="Publish a next SAML certificate?",
            consequences=[
                "A new key and certificate are made and listed in the SAML metadata next to "
                "the current one. The current key keeps signing.",
                "Service providers must fetch the new metadata (or be given the new "
                "certificate) before you activate it, or they will reject its signatures.",
                f"Metadata: {entity_id(current_tenant())}",
            ],
            button="Publish the next certificate",
            action=url_for(".keys_saml_publish"),
            cancel=url_for(".keys"),
            danger=False,
        )
    )


@bp.post("/keys/saml/publish")
def keys_saml_publish() -> ResponseReturnValue:
    back_to(url_for(".keys"))
    svc = services()
    with svc.db.session() as s:
        saml_keys.publish_next(s, svc.cipher, tenant_in(s), actor())
    return done(
        "The next SAML certificate is published in metadata. Activate it once service "
        "providers have fetched it.",
        url_for(".keys"),
    )


@bp.get("/keys/saml/activate")
def keys_saml_activate_page() -> ResponseReturnValue:
    return confirm(
        Confirmation(
            title="Activate the next SAML certificate?",
            consequences=[
                "The next key signs every SAML response, assertion and metadata from now.",
                "The current key is retired and removed from metadata.",
                "Service providers that have not fetched the new metadata since the next "
                "certificate was published will reject sign-ins until they do.",
            ],
            button="Activate the next certificate",
            action=url_for(".keys_saml_activate"),
            cancel=url_for(".keys"),
        )
    )


@bp.post("/keys/saml/activate")
def keys_saml_activate() -> ResponseReturnValue:
    back_to(url_for(".keys"))
    svc = services()
    with svc.db.session() as s:
        saml_keys.activate_next(s, svc.cipher, tenant_in(s), actor())
    return done(
        "The next SAML certificate signs from now; the old one is retired.", url_for(".keys")
    )
