"""Tenant routing: every tenant surface lives under ``/t/<tenant>/``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g
from sqlalchemy.orm import Session
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
        g.tenant = load_tenant(slug)

    @bp.url_defaults
    def _defaults(_endpoint: str, values: dict[str, Any]) -> None:
        if "tenant" not in values and "tenant" in g:
            values["tenant"] = g.tenant.slug

    return bp


def load_tenant(slug: str) -> Tenant:
    """The tenant called ``slug`` (this request's own copy), or NotFound. The configuration
    cache is checked against the shared version here, once per request (idp.config_cache)."""
    svc = services()
    svc.config.begin()

    def find() -> Tenant | None:
        with svc.db.session() as s:
            return get_tenant(s, slug)

    tenant = svc.config.row(("tenant", slug), Tenant, find)
    if tenant is None:
        raise NotFound("There is no such tenant.")
    return tenant


def tenant_in(s: Session) -> Tenant:
    """The current tenant's row in session ``s``, read afresh (to change it)."""
    return s.get_one(Tenant, current_tenant().id)


def current_tenant() -> Tenant:
    tenant: Tenant = g.tenant
    return tenant
