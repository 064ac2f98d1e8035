"""The Flask app factory: settings, services, blueprints and error surfaces (DESIGN.md "Layout").

This is the composition root: the only module that imports every blueprint."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, appcontext_pushed, g, render_template, request_started
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from factors.password import Argon2Params, PasswordFactor
from flows.throttle import ThrottleRules
from idp import clock as clocks
from idp import config_cache, errors, logs, request_telemetry, security
from idp.clock import Clock
from idp.crypto import DataCipher
from idp.document_cache import DocumentCache
from idp.ephemeral import connect
from idp.mfa.delivery import mail_sender, sms_sender
from idp.services import Services
from idp.sessions import ServerSessionInterface, require_available_session
from idp.settings import PACKAGE, Settings, SettingsError, load
from idp.store.db import Database
from idp.tenancy import SlugConverter
from idp.unread_body import CloseAfterUnreadBody

__all__ = ["SettingsError", "build_services", "create_app"]


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    """The long-lived services; ``clock`` is the system clock unless a test passes its own."""
    clock = clock or Clock()
    problems = settings.problems()
    if problems:
        raise SettingsError("; ".join(problems))
    try:
        throttle_rules = ThrottleRules(
            free_attempts=settings.throttle_free_attempts,
            max_delay=settings.throttle_max_delay,
            lock_after=settings.throttle_lock_after,
            ip_limit=settings.throttle_ip_limit,
            ip_window=settings.throttle_ip_window,
        )
    except ValueError as exc:  # e.g. IDP_THROTTLE_LOCK_AFTER above NIST's 100
        raise SettingsError(f"IDP_THROTTLE_*: {exc}") from None
    db = Database.for_settings(settings)
    store = connect(settings, clock.monotonic)
    version = config_cache.version_for(store, settings.shared_store, settings.instance_dir)
    config = config_cache.ConfigCache(version, clock.monotonic)
    config_cache.watch(db.listen, version, config)
    return Services(
        settings=settings,
        db=db,
        store=store,
        config=config,
        passwords=PasswordFactor(
            Argon2Params(
                settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
            )
        ),
        throttle_rules=throttle_rules,
        cipher=DataCipher(settings.data_key),
        sms=sms_sender(settings),
        mail=mail_sender(settings),
        clock=clock,
    )


def _bind_clock(app: Flask, clock: Clock) -> None:
    """The app's clock is the current one in each of its contexts, and each request reads
    the time once (idp.clock)."""

    def pushed(sender: Flask, **_: Any) -> None:
        g._stepwise_clock = clocks.bind(clock)

    def started(sender: Flask, **_: Any) -> None:
        g._stepwise_scope = clocks.open_scope()

    appcontext_pushed.connect(pushed, app, weak=False)
    request_started.connect(started, app, weak=False)

    @app.teardown_request
    def _end_scope(exc: BaseException | None) -> None:
        if "_stepwise_scope" in g:
            clocks.close_scope(g.pop("_stepwise_scope"))

    @app.teardown_appcontext
    def _unbind(exc: BaseException | None) -> None:
        if "_stepwise_clock" in g:
            clocks.unbind(g.pop("_stepwise_clock"))


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``test_config`` keys that name settings override them; others go to Flask."""
    test_config = dict(test_config or {})
    flask_keys = {k: test_config.pop(k) for k in list(test_config) if k.isupper()}
    clock = test_config.pop("clock", None)
    settings = load(test_config)
    svc = build_services(settings, clock)
    logs.configure(settings)  # text or JSON lines with the request id; the access log
    # authlib logs issued tokens and codes at DEBUG: never let them reach a log.
    logging.getLogger("authlib").setLevel(max(logging.INFO, logging.getLogger().level))

    app = Flask(
        "idp",
        template_folder=str(PACKAGE / "templates"),
        static_folder=str(PACKAGE / "static"),
        instance_path=str(settings.instance_dir),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_form_bytes,
        MAX_FORM_PARTS=100,
        PREFERRED_URL_SCHEME="https" if settings.https else "http",
        WTF_CSRF_TIME_LIMIT=settings.flow_ttl * 4,
        WTF_CSRF_SSL_STRICT=False,  # SameSite cookies and the token already bind the form
    )
    app.config.update(flask_keys)
    app.extensions["stepwise"] = svc
    _bind_clock(app, svc.clock)
    app.url_map.converters["slug"] = SlugConverter
    app.session_interface = ServerSessionInterface(
        svc.store, settings.session_idle_timeout, settings.session_absolute_timeout, settings.https
    )
    # Token, revocation, introspection and UserInfo answered before Flask's request cycle
    # (inside the proxy fix: the client's address and scheme are already the forwarded ones).
    from idp.oidc.api_routes import ApiRoutes

    app.wsgi_app = ApiRoutes(app.wsgi_app, app)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    # JWKS and discovery answered from memory (inside the telemetry, outside Flask).
    app.wsgi_app = DocumentCache(app.wsgi_app, svc.config)  # type: ignore[method-assign]
    request_telemetry.install(app)  # request id, latency histogram, access log
    # Outermost: it sees the answer last, after the app has read all the body it will read.
    app.wsgi_app = CloseAfterUnreadBody(app.wsgi_app)  # type: ignore[method-assign]

    app.before_request(require_available_session)
    security.install_form_check(app)
    csrf = CSRFProtect(app)
    manager = LoginManager(app)
    from idp.login.users import install

    install(manager)
    errors.register(app)
    security.install_headers(app, settings.https)
    if settings.node_name:
        node = settings.node_name

        @app.after_request
        def _name_node(response: Response) -> Response:
            """Which node answered: lets operators and the cluster test see where a request went."""
            response.headers["X-Stepwise-Node"] = node
            return response

    from idp import (
        account,
        audit_pruning,
        health,
        login,
        metrics_endpoint,
        password_reset,
        set_password,
        signup,
    )
    from idp.admin import api as admin_api
    from idp.admin import routes as admin_views
    from idp.oidc import browser as oidc_browser
    from idp.oidc import endpoints as oidc_endpoints
    from idp.saml import web as saml_web

    app.register_blueprint(health.bp)
    app.register_blueprint(metrics_endpoint.bp)
    app.register_blueprint(login.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(oidc_browser.bp)
    app.register_blueprint(oidc_endpoints.bp)
    app.register_blueprint(admin_views.bp)
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(saml_web.bp)
    app.register_blueprint(set_password.bp)
    app.register_blueprint(password_reset.bp)
    app.register_blueprint(signup.bp)
    app.after_request(audit_pruning.prune_after)  # expired audit events, once an hour
    # Relying parties post here from their own origin, without this site's CSRF token.
    csrf.exempt(oidc_endpoints.bp)
    csrf.exempt(admin_api.bp)  # bearer tokens only, never cookies
    csrf.exempt(metrics_endpoint.bp)  # a scraper's bearer token, never cookies
    csrf.exempt(saml_web.sso)  # SPs post AuthnRequests and LogoutRequests from their origin
    csrf.exempt(saml_web.slo)
    csrf.exempt(oidc_browser.authorize)
    csrf.exempt(oidc_browser.end_session)

    @app.get("/")
    def home() -> str:
        return render_template("home.html")

    return app
