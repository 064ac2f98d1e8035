"""The machine endpoints clients and resource servers call most, answered before Flask's
request cycle: token (RFC 6749 section 3.2), revocation (RFC 7009), introspection
(RFC 7662) and UserInfo (OpenID Connect Core 1.0 section 5.3).

Flask's request cycle was about a quarter of a client_credentials grant (bench/README.md,
issue 17): the request context, URL matching, the session, CSRF and the hooks that pages
need. These URLs take no cookie, no session and no CSRF token, so this WSGI middleware
answers them in an app context only (the services, ``g`` and the app's clock), with the same
parts the Flask views in idp.oidc.endpoints use:

- the tenant from the configuration cache (idp.tenancy.load_tenant);
- the same checks on the body: size (``MAX_CONTENT_LENGTH`` and ``MAX_FORM_PARTS``, through
  Flask's request class), text (idp.security.text_check) and the form type;
- the views' own functions (``token_answer``, ``revoke_answer``, ``introspect_answer``,
  ``userinfo_answer``);
- errors through the surface's one renderer (idp.oidc.endpoints.render_error);
- the headers every answer carries (idp.security.add_headers, CORS, the node's name), and
  the hourly audit pruning.

tests/web/test_api_routes.py holds its answers against the Flask views'. Any other method on
these URLs (an OPTIONS preflight, a GET's 405) goes to Flask.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from flask import Flask, Request, Response, g

from idp import clock, logs, security
from idp.audit_pruning import prune_after
from idp.document_cache import Environ, StartResponse, WsgiApp
from idp.errors import as_stepwise
from idp.oidc import endpoints
from idp.oidc.context import HttpRequest
from idp.services import services
from idp.store.models import Tenant
from idp.tenancy import SlugConverter, load_tenant


def _with_form(
    answer: Callable[[Tenant, HttpRequest, str], Response],
) -> Callable[[Tenant, Request, str], Response]:
    """An endpoint that reads a form (RFC 6749 3.2), as the provider sees the request."""

    def run(tenant: Tenant, req: Request, client_ip: str) -> Response:
        return answer(tenant, endpoints.http_request(req, tenant), client_ip)

    return run


Answer = Callable[[Tenant, Request, str], Response]
# By the path after the tenant: the methods answered here, the Flask endpoint's name (for
# the logs and the latency series) and the answer.
ROUTES: dict[str, tuple[frozenset[str], str, Answer]] = {
    "token": (frozenset({"POST"}), "oidc_api.token", _with_form(endpoints.token_answer)),
    "revoke": (frozenset({"POST"}), "oidc_api.revoke", _with_form(endpoints.revoke_answer)),
    "introspect": (frozenset({"POST"}), "oidc_api.introspect",
                   _with_form(endpoints.introspect_answer)),
    "userinfo": (frozenset({"GET", "POST"}), "oidc_api.userinfo", endpoints.userinfo_answer),
}  # fmt: skip
PATH = re.compile(rf"/t/({SlugConverter.regex})/({'|'.join(ROUTES)})")


class ApiRoutes:
    """WSGI middleware: the :data:`ROUTES` without a Flask request (module doc)."""

    def __init__(self, app: WsgiApp, flask: Flask) -> None:
        self.app, self.flask = app, flask

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        match = PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            return self.app(environ, start_response)
        methods, name, answer = ROUTES[match[2]]
        method = environ.get("REQUEST_METHOD", "").upper()  # as werkzeug reads it
        multipart = environ.get("CONTENT_TYPE", "").lower().startswith("multipart/")
        if method not in methods or multipart:
            # A multipart body is never one of these requests: Flask refuses it as the views
            # do, after its own check of the parts (idp.security.install_form_check).
            return self.app(environ, start_response)
        facts = logs.CURRENT.get()
        if facts is not None:
            facts.route, facts.tenant = name, match[1]
        with self.flask.app_context():  # services(), g and the app's clock
            scope = clock.open_scope()
            try:
                response = self._answer(Request(environ), match[1], answer)
            finally:
                clock.close_scope(scope)
        return response(environ, start_response)

    def _answer(self, req: Request, slug: str, answer: Answer) -> Response:
        settings = services().settings
        try:
            g.tenant = tenant = load_tenant(slug)
            security.text_check(req)
            response = answer(tenant, req, req.remote_addr or "-")
        except Exception as exc:  # noqa: BLE001  # rendered as the blueprint's handler does
            response = endpoints.render_error(as_stepwise(exc, f"{req.method} {req.path}"))
        security.add_headers(response.headers, settings.https)
        endpoints.allow_any_origin(response.headers)
        if settings.node_name:
            response.headers["X-Stepwise-Node"] = settings.node_name
        return prune_after(response)
