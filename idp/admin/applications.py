"""Console: applications (OpenID Connect clients and SAML service providers)."""

from __future__ import annotations

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue

from idp.admin.console import back_to, bp, done
from idp.directory import DirectoryError
from idp.saml import keys as saml_keys
from idp.saml.sps import add_sp, list_sps
from idp.services import services
from idp.tenancy import current_tenant


@bp.get("/applications")
def applications() -> ResponseReturnValue:
    with services().db.session() as s:
        return render_template(
            "admin/applications.html",
            service_providers=list_sps(s, current_tenant()),
            metadata_url=url_for("saml.metadata"),
        )


@bp.post("/sps")
def add_service_provider() -> ResponseReturnValue:
    """Register a SAML service provider from pasted metadata (like ``idp sp add``)."""
    back_to(url_for(".applications"))
    metadata = request.form.get("metadata", "").strip()
    svc = services()
    with svc.db.session() as s:
        tenant = s.merge(current_tenant())
        if not metadata:
            raise DirectoryError("Paste the service provider's SAML metadata.")
        saml_keys.ensure_key(s, svc.cipher, tenant)
        sp = add_sp(
            s,
            tenant,
            metadata.encode(),
            nameid=request.form.get("nameid", "persistent"),
            sign_response=request.form.get("sign_response") == "on",
            encrypt=request.form.get("encrypt") == "on",
            min_level=_level(request.form.get("min_level", "0")),
        )
        message = f"Service provider {sp.entity_id} added."
    return done(message, url_for(".applications"))


def _level(raw: str) -> int:
    if raw not in ("0", "1", "2", "3"):
        raise DirectoryError("The minimum level must be 0, 1, 2 or 3.")
    return int(raw)
