"""Prometheus metrics (https://prometheus.io/docs/instrumenting/writing_exporters/).

Every series is declared here, once. Callers import this module and use the objects below;
nothing else creates metrics. Under ``idp serve`` the workers run in prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), so ``/metrics`` adds up every worker.

Labels never carry user input beyond the tenant slug (which the URL converter has validated,
and which names a tenant that exists) and fixed names, so the number of series stays bounded.
docs/operations/observability.md lists them; deploy/grafana/stepwise.json charts them.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

SIGN_INS = Counter(
    "stepwise_sign_ins",
    "Sign-in attempts at the login pages, by result: success (factor: the kinds verified, "
    "e.g. password+totp), failure (a wrong password or code; factor: the step's kind) or "
    "locked (refused by brute-force protection before any check).",
    ["tenant", "result", "factor"],
)
STEP_UPS = Counter(
    "stepwise_step_ups",
    "Step-ups: an application (OIDC or SAML) asked more than the session holds (requested), "
    "and the login flow then raised the session's level (met).",
    ["tenant", "outcome"],
)
TOKENS = Counter(
    "stepwise_tokens_issued",
    "Token responses issued by the token endpoint, by grant type.",
    ["tenant", "grant"],
)
SAML_RESPONSES = Counter(
    "stepwise_saml_responses",
    "SAML responses to service providers' sign-on, by status: Success, or the top-level "
    "status and its second level (Responder/NoPassive, Requester/RequestDenied, ...).",
    ["tenant", "status"],
)
THROTTLE_LOCKS = Counter(
    "stepwise_throttle_locks",
    "Attempts refused by brute-force protection, by scope: account (its back-off gate, its "
    "lock, or a parallel attempt on it) or ip (the per-IP limit).",
    ["tenant", "scope"],
)
NOTIFICATIONS = Counter(
    "stepwise_notifications",
    "Notification deliveries from the outbox, by channel (mail, sms) and result "
    "(sent, retry, failed).",
    ["channel", "result"],
)
STORE_ERRORS = Counter(
    "stepwise_ephemeral_store_errors",
    "Calls to the ephemeral store (Redis) that failed, by operation.",
    ["operation"],
)
DB_ERRORS = Counter(
    "stepwise_database_errors",
    "Requests that failed because the database could not be reached.",
)
REQUEST_SECONDS = Histogram(
    "stepwise_request_duration_seconds",
    "Time to answer a request, by endpoint (the Flask endpoint name, or unmatched) and status "
    "class (2xx ... 5xx).",
    ["endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Every metric above, for the multiprocess switch (idp.metrics_setup) and the tests.
CATALOGUE: tuple[MetricWrapperBase, ...] = (
    SIGN_INS,
    STEP_UPS,
    TOKENS,
    SAML_RESPONSES,
    THROTTLE_LOCKS,
    NOTIFICATIONS,
    STORE_ERRORS,
    DB_ERRORS,
    REQUEST_SECONDS,
)
