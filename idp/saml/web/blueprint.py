"""The SAML blueprint, and what its endpoints need of the tenant's IdP: its URLs and entity ID,
its signing key and the clock skew it allows."""

from __future__ import annotations

from sqlalchemy.orm import Session

from idp.saml import keys
from idp.saml.signatures import Signer
from idp.services import services
from idp.store.models import Tenant
from idp.tenancy import tenant_blueprint

bp = tenant_blueprint("saml", __name__, "/saml")


def skew() -> int:
    """Seconds an SP's clock may differ from ours (``saml_clock_skew``)."""
    return services().settings.saml_clock_skew


def saml_url(tenant: Tenant, path: str = "") -> str:
    """The absolute URL of this tenant's SAML endpoint ``path`` (``/sso``, ``/slo``...)."""
    return f"{services().settings.base_url.rstrip('/')}/t/{tenant.slug}/saml{path}"


def entity_id(tenant: Tenant) -> str:
    """The IdP's entityID: its metadata URL (SAML 2.0 metadata 2.3.2)."""
    return saml_url(tenant, "/metadata")


def signer(s: Session, tenant: Tenant) -> Signer:
    """The tenant's active SAML signing key, made on first use (``idp.saml.keys``)."""
    row = keys.ensure_key(s, services().cipher, tenant)
    return Signer(keys.private_pem(services().cipher, tenant, row), row.cert_pem)
