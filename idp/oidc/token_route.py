"""The token endpoint (RFC 6749 section 3.2) answered before Flask's request cycle.

Token grants are what clients call most, and Flask's request cycle was about a quarter of
a client_credentials grant (bench/README.md, issue 17): the request context, URL matching,
the session, CSRF and the hooks that pages need. ``POST /t/<tenant>/token`` takes no
cookie, no session and no CSRF token, so this WSGI middleware answers it in an app context
only (the services, ``g`` and the app's clock), with the same parts the Flask view uses:

- the tenant from the configuration cache (idp.tenancy.load_tenant);
- the same checks on the body: size (``MAX_CONTENT_LENGTH`` and ``MAX_FORM_PARTS``, through
  Flask's request class), text (idp.security.text_check) and the form type;
- the provider, through idp.oidc.endpoints.token_answer;
- errors through the surface's one renderer (idp.oidc.endpoints.render_error);
- the headers every answer carries (idp.security.add_headers, CORS, the node's name), and
  the hourly audit pruning.

tests/web/test_token_route.py holds its answers against the Flask view's. Any other method
on the URL (an OPTIONS preflight, a GET's 405) goes to Flask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from flask import Flask, Request, Response, g

from idp import clock, logs, security
from idp.audit_pruning import prune_after
from idp.document_cache import Environ, StartResponse, WsgiApp
from idp.errors import as_stepwise
from idp.oidc import endpoints
from idp.oidc.current import params_of
from idp.services import services
from idp.tenancy import SlugConverter, load_tenant

TOKEN = re.compile(rf"/t/({SlugConverter.regex})/token")
ROUTE = "oidc_api.token"  # the Flask endpoint's name, for the logs and the latency series


class TokenRoute:
    """WSGI middleware: ``POST /t/<tenant>/token`` without a Flask request (module doc)."""

    def __init__(self, app: WsgiApp, flask: Flask) -> None:
        self.app, self.flask = app, flask

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "").upper()  # as werkzeug reads it
        match = TOKEN.fullmatch(path) if method == "POST" else None
        if match is None:
            return self.app(environ, start_response)
        facts = logs.CURRENT.get()
        if facts is not None:
            facts.route, facts.tenant = ROUTE, match[1]
        with self.flask.app_context():  # services(), g and the app's clock
            scope = clock.open_scope()
            try:
                answer = self._answer(Request(environ), match[1])
            finally:
                clock.close_scope(scope)
        return answer(environ, start_response)

    def _answer(self, req: Request, slug: str) -> Response:
        settings = services().settings
        try:
            g.tenant = tenant = load_tenant(slug)
            security.text_check(req)
            http = endpoints.http_request(req, tenant, lambda: params_of(req.form))
            answer = endpoints.token_answer(tenant, http, req.remote_addr or "-")
        except Exception as exc:  # noqa: BLE001  # rendered as the blueprint's handler does
            answer = endpoints.render_error(as_stepwise(exc, f"{req.method} {req.path}"))
        security.add_headers(answer.headers, settings.https)
        endpoints.allow_any_origin(answer.headers)
        if settings.node_name:
            answer.headers["X-Stepwise-Node"] = settings.node_name
        return prune_after(answer)
