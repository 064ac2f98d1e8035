"""``GET /metadata``: the tenant's IdP EntityDescriptor, signed (SAML 2.0 metadata)."""

from __future__ import annotations

from flask import Response

from idp.saml import keys
from idp.saml.metadata import idp_document
from idp.saml.web.blueprint import bp, entity_id, saml_url, signer
from idp.services import services
from idp.store.models import Tenant
from idp.tenancy import current_tenant


@bp.get("/metadata")
def metadata() -> Response:
    tenant = current_tenant()
    with services().db.session() as s:
        ours = signer(s, s.get_one(Tenant, tenant.id))
        certs = [k.cert_pem for k in keys.published(s, s.get_one(Tenant, tenant.id))]
        doc = idp_document(
            entity_id(tenant), saml_url(tenant, "/sso"), saml_url(tenant, "/slo"), ours, certs
        )
    return Response(doc, mimetype="application/samlmetadata+xml")
