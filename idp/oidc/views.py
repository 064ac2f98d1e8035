"""OpenID Provider endpoints under the tenant's issuer ``{base}/t/{tenant}``."""

from __future__ import annotations

import time

from flask import jsonify
from flask.typing import ResponseReturnValue

from idp.oidc import keys
from idp.services import services
from idp.tenancy import current_tenant, tenant_blueprint

bp = tenant_blueprint("oidc", __name__)


@bp.get("/jwks")
def jwks() -> ResponseReturnValue:
    """The tenant's public signing keys (RFC 7517), including retired keys still in grace."""
    with services().db.session() as s:
        document = keys.jwks(s, current_tenant(), int(time.time()))
    resp = jsonify(document)
    resp.headers["Cache-Control"] = "public, max-age=300"
    resp.mimetype = "application/jwk-set+json"
    return resp
