"""What a fuzz test must never see from the app: an error it did not handle.

Under ``idp serve`` an exception that reaches :mod:`idp.errors` is logged there ("unhandled
error on METHOD PATH", with its traceback) and answered with a 500. :func:`as_in_production`
makes an app under the Flask test client do the same (its test mode would re-raise instead),
and :func:`logged_errors` picks those log records out of pytest's ``caplog.records``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from flask import Flask

#: The logger that :mod:`idp.errors` reports unhandled errors (and unreachable storage) on.
LOGGER = "idp.errors"


def as_in_production(app: Flask) -> Flask:
    """Errors answered by the app's handlers and logged, as under ``idp serve``."""
    app.testing = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def logged_errors(records: Iterable[logging.LogRecord]) -> list[logging.LogRecord]:
    """The records of ``records`` that report an error the app did not handle."""
    return [r for r in records if r.name == LOGGER and r.levelno >= logging.ERROR]
