"""Brute-force refusals counted in ``stepwise_throttle_locks`` (idp.metrics.THROTTLE_LOCKS).

flows.throttle decides and stays free of metrics; the web layer hands the flows this wrapper,
which counts each refusal by tenant and by the limit that refused (``account`` or ``ip``).
"""

from __future__ import annotations

from collections.abc import Callable

from flows.errors import AccountLocked, Throttled
from flows.throttle import Attempt, Throttle
from idp.metrics import THROTTLE_LOCKS


class CountedThrottle(Throttle):
    """A :class:`Throttle` whose refusals are counted, and reported to ``refused`` (the login
    view counts the attempt as ``locked``)."""

    def __init__(
        self, inner: Throttle, tenant: str, refused: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(inner.store, inner.scope, inner.rules)
        self.tenant, self.refused = tenant, refused

    def begin(self, account: str, ip: str, now: int) -> Attempt:
        try:
            return super().begin(account, ip, now)
        except (Throttled, AccountLocked) as exc:
            scope = exc.scope if isinstance(exc, Throttled) else "account"
            THROTTLE_LOCKS.labels(self.tenant, scope).inc()
            if self.refused is not None:
                self.refused(scope)
            raise
