"""Tenant routing: every tenant surface lives under ``/t/<tenant>/``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g
from werkzeug.routing import BaseConverter

from idp.directory import get_tenant
from idp.errors import NotFound
from idp.services import services
from idp.store.models import Tenant


class SlugConverter(BaseConverter):
    regex = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"


def tenant_blueprint(name: str, import_name: str, suffix: str = "") -> Blueprint:
    """A blueprint mounted at ``/t/<tenant><suffix>`` that loads the tenant into ``g.tenant``."""
    bp = Blueprint(name, import_name, url_prefix=f"/t/<slug:tenant>{suffix}")

    @bp.url_value_preprocessor
    def _load(_endpoint: str | None, values: dict[str, Any] | None) -> None:
        slug = (values or {}).pop("tenant", "")
        with services().db.session() as s:
            tenant = get_tenant(s, slug)
        if tenant is None:
            raise NotFound("There is no such tenant.")
        g.tenant = tenant

    @bp.url_defaults
    def _defaults(_endpoint: str, values: dict[str, Any]) -> None:
        if "tenant" not in values and "tenant" in g:
            values["tenant"] = g.tenant.slug

    return bp


def current_tenant() -> Tenant:
    tenant: Tenant = g.tenant
    return tenant
