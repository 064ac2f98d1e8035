"""The web layer's errors, and the one place where an error becomes a response.

Every error raised on purpose derives from :class:`factors.errors.StepwiseError` and carries
its protocol code, HTTP status and whether it may be redirected to the client. Each surface
has one renderer, installed once per blueprint with :func:`install`:

- pages (the default for the whole app): an HTML error page, or JSON for clients asking for it;
- OAuth endpoints: ``{"error", "error_description"}`` (RFC 6749 5.2), in ``idp.oidc``;
- SAML endpoints: a SAML status to the SP when redirectable, else a page, in ``idp.saml``;
- the admin API: an RFC 9457 problem document (:func:`problem`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Flask, Response, g, jsonify, render_template, request
from flask.globals import request_ctx
from flask.typing import ResponseReturnValue
from flask_login import AnonymousUserMixin
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from factors.errors import StepwiseError
from idp import metrics
from idp.ephemeral import EphemeralUnavailable

__all__ = ["HttpError", "NotFound", "StepwiseError", "Unavailable", "install", "problem"]

log = logging.getLogger("idp.errors")

Renderer = Callable[[StepwiseError], ResponseReturnValue]


class HttpError(StepwiseError):
    """An error with an HTTP status and a message safe to show."""

    def __init__(self, message: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFound(HttpError):
    code, status, title = "not_found", 404, "Not found"


class Unavailable(HttpError):
    code, status, title = "temporarily_unavailable", 503, "Service unavailable"


class FormExpired(HttpError):
    """A form without a valid CSRF token (Flask-WTF's :class:`CSRFError`)."""

    title = "Form expired"
    message = (
        "This form has expired or came from another site. Go back, reload the page and try again."
    )


class StorageDown(Unavailable):
    """The database or the ephemeral store cannot be reached."""

    message = "Stepwise cannot reach its storage right now. Please try again shortly."


class Unexpected(StepwiseError):
    """A bug: logged with its traceback, shown without details."""

    code, status, title = "server_error", 500, "Something went wrong"
    message = "An unexpected error occurred."


HTTP_MESSAGES = {
    404: "There is nothing at this address.",
    405: "This address does not accept that kind of request.",
    413: "The request is too large.",
}


def page(exc: StepwiseError) -> tuple[Response | str, int]:
    """The page surface: HTML, or JSON for a client that asks for it."""
    if request.accept_mimetypes.best == "application/json":
        title = exc.title.lower().replace(" ", "_")
        return jsonify(error=title, error_description=exc.message), exc.status
    if request_ctx.url_adapter is None:  # a Host that cannot be routed: no url_for, plain text
        return Response(f"{exc.title}: {exc.message}\n", exc.status, mimetype="text/plain"), (
            exc.status
        )
    if isinstance(exc, StorageDown) and "_login_user" not in g:
        # The base template asks flask-login for the user, whom it would read from the
        # database that may be down: the outage page is shown to nobody in particular.
        g._login_user = AnonymousUserMixin()
    return render_template("errors/error.html", title=exc.title, message=exc.message), exc.status


def problem(exc: StepwiseError) -> Response:
    """The admin API surface: an RFC 9457 problem document.

    ``error`` and ``error_description`` are kept as extension members (RFC 9457 3.2), so an
    OAuth-style client reads the same answer.
    """
    resp = jsonify(
        type=f"urn:stepwise:error:{exc.code}",
        title=exc.title,
        status=exc.status,
        detail=exc.message,
        error=exc.code,
        error_description=exc.message,
    )
    resp.status_code = exc.status
    resp.mimetype = "application/problem+json"
    if exc.status == 401:
        resp.headers["WWW-Authenticate"] = f'Bearer error="{exc.code}"'
    return resp


def database_down(exc: Exception) -> bool:
    """The database could not answer: unreachable, restarting, a connection lost mid-request,
    no free connection in the pool, or a statement cancelled by the statement timeout."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def as_stepwise(exc: Exception, where: str | None = None) -> StepwiseError:
    """Any exception that reaches a handler, as a member of the tree. ``where`` names the
    request (method and path) outside a Flask request."""
    if isinstance(exc, InternalServerError) and isinstance(exc.original_exception, Exception):
        exc = exc.original_exception  # raised while finishing a response (saving the session)
    if isinstance(exc, StepwiseError):
        return exc
    if isinstance(exc, CSRFError):
        return FormExpired()
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        err = HttpError(HTTP_MESSAGES.get(code, "The request could not be handled."), code)
        err.title = exc.name
        return err
    if database_down(exc):
        # The class name only: a driver's message can carry the statement and its values.
        log.error("database unavailable: %s", exc.__class__.__name__)
        metrics.DB_ERRORS.inc()
        return StorageDown()
    if isinstance(exc, EphemeralUnavailable):
        log.error("backend unavailable: %s", exc.__class__.__name__)
        return StorageDown()
    log.exception("unhandled error on %s", where or f"{request.method} {request.path}")
    return Unexpected()


def install(target: Flask | Blueprint, render: Renderer) -> None:
    """Render every error raised under ``target`` with ``render`` (one handler per surface)."""

    def handle(exc: Exception) -> ResponseReturnValue:
        try:
            return render(as_stepwise(exc))
        except Exception as failed:  # the answer itself needed storage that is down (a page
            if not (database_down(failed) or isinstance(failed, EphemeralUnavailable)):
                raise  # showing the signed-in user, say): the outage page, which needs none
            return page(as_stepwise(failed))

    target.register_error_handler(Exception, handle)


def register(app: Flask) -> None:
    """Install the page surface for the whole app; blueprints install their own on top."""
    install(app, page)
