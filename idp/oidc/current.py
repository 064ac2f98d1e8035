"""The current Flask request, for the OpenID Provider's two web modules (idp.oidc.browser and
idp.oidc.endpoints) and the admin API: its :class:`~idp.oidc.context.Context` (the time read
once from ``idp.clock``), the tenant's issuer, and the request's parameters.

Besides those two, this is the one module of ``idp.oidc`` that imports Flask.
"""

from __future__ import annotations

from flask import request
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from idp import clock
from idp.crosssite import bounced
from idp.errors import HttpError
from idp.oidc.context import Context
from idp.oidc.tokens import KeyCache
from idp.services import services
from idp.store.models import Tenant
from idp.tenancy import current_tenant

MAX_PARAMS = 50


def context(s: Session) -> Context:
    """This request of the current tenant, with ``now`` read once."""
    return context_for(s, current_tenant(), request.remote_addr or "-")


def context_for(s: Session, tenant: Tenant, client_ip: str) -> Context:
    """A request of ``tenant`` from ``client_ip`` in the current app context (a Flask request,
    or a route answered before Flask: idp.oidc.api_routes)."""
    svc = services()
    return Context(
        s=s,
        tenant=tenant,
        issuer=issuer_of(tenant),
        cipher=svc.cipher,
        store=svc.store,
        now=clock.now(),
        keys=svc.cached("oidc.keys", lambda: KeyCache(svc.config)),
        client_ip=client_ip,
        monotonic=clock.current().monotonic(),
    )


def issuer_of(tenant: Tenant) -> str:
    """``{base}/t/{tenant}`` (DESIGN.md "URLs")."""
    return f"{services().settings.base_url.rstrip('/')}/t/{tenant.slug}"


def request_params() -> dict[str, list[str]]:
    """Parameters of a GET (query), a POST (form body only) or a bounced POST, as lists."""
    parked = bounced()
    if parked is not None:
        if not parked:
            raise HttpError("This request has expired. Go back to the application and retry.")
        return parked
    return params_of(request.args if request.method == "GET" else request.form)


def params_of(source: MultiDict[str, str]) -> dict[str, list[str]]:
    """A query's or a form's parameters as lists, refusing more than :data:`MAX_PARAMS`."""
    if len(source) > MAX_PARAMS:
        raise HttpError("The request has too many parameters.")
    return {k: source.getlist(k) for k in source}
