"""``GET /metrics``: the Prometheus text format, for a scraper holding ``IDP_METRICS_TOKEN``.

- No token set: a 404, as for any unknown address (metrics are off).
- No or a wrong ``Authorization: Bearer`` token: a 401 with a ``WWW-Authenticate`` challenge
  (RFC 6750 3); the token is compared in constant time.
- The right one: every worker's samples (idp.metrics_setup.registry).

It reads no session, tenant or form (no CSRF token either), so a scrape costs one header
comparison and the exposition itself.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, request
from prometheus_client.exposition import choose_encoder

from idp import metrics_setup
from idp.services import services

bp = Blueprint("metrics", __name__)
CHALLENGE = 'Bearer realm="stepwise-metrics"'


def _bearer() -> bytes:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip().encode() if scheme.lower() == "bearer" else b""


@bp.get("/metrics")
def metrics() -> Response:
    expected = services().settings.metrics_token
    if not expected:
        abort(404)
    if not hmac.compare_digest(_bearer(), expected.encode()):
        return Response(
            "A bearer token is required (IDP_METRICS_TOKEN).\n",
            401,
            {"WWW-Authenticate": CHALLENGE, "Cache-Control": "no-store"},
            mimetype="text/plain",
        )
    # The format the scraper asks for (Prometheus text 0.0.4 unless it accepts OpenMetrics).
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encode(metrics_setup.registry())
    return Response(body, 200, {"Cache-Control": "no-store"}, content_type=content_type)
