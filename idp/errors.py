"""HTTP errors, and the one place where every error becomes a response.

Protocol blueprints (OIDC, SAML) register renderers for their own error types; everything
else is shown as an HTML error page, or JSON for clients that ask for JSON.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from flows.errors import FlowError, UnmetAuthenticationRequirements
from idp.ephemeral import EphemeralUnavailable

log = logging.getLogger("idp.errors")


class HttpError(Exception):
    """An error with an HTTP status and a message safe to show."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(HttpError):
    status, title = 404, "Not found"


class Unavailable(HttpError):
    status, title = 503, "Service unavailable"


def _render(status: int, title: str, message: str) -> tuple[Response | str, int]:
    if request.accept_mimetypes.best == "application/json":
        return jsonify(error=title.lower().replace(" ", "_"), error_description=message), status
    if request_ctx.url_adapter is None:  # a Host that cannot be routed: no url_for, plain text
        return Response(f"{title}: {message}\n", status, mimetype="text/plain"), status
    return render_template("errors/error.html", title=title, message=message), status


def register(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(HttpError)
    def _http_error(exc: HttpError) -> tuple[Response | str, int]:
        return _render(exc.status, exc.title, exc.message)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple[Response | str, int]:
        return _render(
            400,
            "Form expired",
            "This form has expired or came from another site. Go back, reload the page "
            "and try again.",
        )

    @app.errorhandler(UnmetAuthenticationRequirements)
    def _unmet(exc: UnmetAuthenticationRequirements) -> tuple[Response | str, int]:
        return _render(403, "Cannot sign in", exc.message)

    @app.errorhandler(FlowError)
    def _flow(exc: FlowError) -> tuple[Response | str, int]:
        return _render(400, "Cannot sign in", exc.message)

    @app.errorhandler(HTTPException)
    def _werkzeug(exc: HTTPException) -> tuple[Response | str, int]:
        code = exc.code or 500
        messages = {
            404: "There is nothing at this address.",
            405: "This address does not accept that kind of request.",
            413: "The request is too large.",
        }
        return _render(code, exc.name, messages.get(code, "The request could not be handled."))

    @app.errorhandler(EphemeralUnavailable)
    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def _down(exc: Exception) -> tuple[Response | str, int]:
        log.error("backend unavailable: %s", exc.__class__.__name__)
        return _render(
            503,
            "Service unavailable",
            "Stepwise cannot reach its storage right now. Please try again shortly.",
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response | str, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _render(500, "Something went wrong", "An unexpected error occurred.")
