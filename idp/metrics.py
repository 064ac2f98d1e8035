"""Prometheus metrics (https://prometheus.io/docs/instrumenting/writing_exporters/).

Every series is declared here, once. Callers import this module and use the objects below;
nothing else creates metrics. Under ``idp serve`` the workers run in prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), so ``/metrics`` adds up every worker.

Labels never carry user input beyond the tenant slug (which the URL converter has validated)
and a fixed endpoint name, so the number of series stays bounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SIGN_INS = Counter(
    "stepwise_sign_ins",
    "Sign-in attempts that ended, by result (success, failure, locked) and factor kind.",
    ["tenant", "result", "factor"],
)
STEP_UPS = Counter(
    "stepwise_step_ups",
    "Step-ups that an application requested, and those that were met.",
    ["tenant", "outcome"],
)
TOKENS = Counter(
    "stepwise_tokens_issued",
    "Token responses issued by the token endpoint, by grant type.",
    ["tenant", "grant"],
)
SAML_RESPONSES = Counter(
    "stepwise_saml_responses",
    "SAML responses sent to service providers, by top-level status (Success, Responder, ...).",
    ["tenant", "status"],
)
THROTTLE_LOCKS = Counter(
    "stepwise_throttle_locks",
    "Attempts refused by brute-force protection, by scope (account or ip).",
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
    "Time to answer a request, by endpoint (the Flask endpoint name) and status class.",
    ["endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
