"""The server's pruning of expired audit events (the tenant's retention, idp.audit_log).

After a response under ``/t/<tenant>/`` has been sent (``Response.call_on_close``, so the
request never waits for it), the server deletes that tenant's expired events, at most
:data:`SERVER_PRUNE_LIMIT` rows in bounded batches. It runs at most once per tenant per hour
in the whole deployment: each process remembers the hour it last tried (no store call on other
requests), and the ephemeral store's atomic ``add`` of a key naming the tenant and the hour
lets only one process of several (Redis) take that hour. Errors are logged, never raised. A
tenant writing more than the limit per hour also needs ``idp audit prune`` from cron. A thread
was not chosen: it would need its own schedule, app context and shutdown in every worker
process, for no gain over this. Registered by the app factory (``app.after_request``).
"""

from __future__ import annotations

import logging
from functools import partial

from flask import Response, g

from idp import audit_log, clock
from idp.ephemeral import EphemeralUnavailable
from idp.services import Services, services
from idp.store.models import Tenant

log = logging.getLogger("idp.audit")
SERVER_PRUNE_LIMIT = 10_000
HOUR = 3600


def prune_after(resp: Response) -> Response:
    """Prune the request's tenant after the response is sent, once an hour (module doc)."""
    tenant = g.get("tenant")
    if not isinstance(tenant, Tenant):
        return resp
    svc = services()
    now = clock.now()
    hour = now // HOUR
    tried: dict[int, int] = svc.cached("audit_prune_hours", dict)
    if tried.get(tenant.id) == hour:
        return resp
    tried[tenant.id] = hour
    try:
        mine = svc.store.add(f"audit-prune:{tenant.id}:{hour}", b"1", 2 * HOUR)
    except EphemeralUnavailable:
        log.warning("audit prune skipped: the ephemeral store is unavailable")
        return resp
    if mine:
        resp.call_on_close(partial(prune_now, svc, tenant.id, now))
    return resp


def prune_now(svc: Services, tenant_id: int, now: int) -> int:
    """The server's bounded prune of one tenant; errors are logged, never raised."""
    token = clock.bind(svc.clock)  # after the response: no app context any more
    try:
        with svc.db.session() as s:
            tenant = s.get(Tenant, tenant_id)
            if tenant is None:
                return 0
            count = audit_log.prune(s, tenant, now, limit=SERVER_PRUNE_LIMIT, by="server")
        if count:
            log.info("audit: pruned %d events of tenant %s", count, tenant_id)
        return count
    except Exception:
        log.exception("audit prune of tenant %s failed", tenant_id)
        return 0
    finally:
        clock.unbind(token)
