"""Liveness (``/healthz``) and readiness (``/readyz``: database and ephemeral store reachable)."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from idp.ephemeral import EphemeralUnavailable
from idp.services import services

bp = Blueprint("health", __name__)
log = logging.getLogger("idp.health")


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    svc, failed = services(), []
    try:
        svc.db.ping()
    except SQLAlchemyError as exc:
        log.warning("readyz: database: %s", exc.__class__.__name__)
        failed.append("database")
    try:
        svc.store.ping()
    except EphemeralUnavailable:
        failed.append("ephemeral")
    if failed:
        return jsonify(status="unavailable", failed=failed), 503
    return jsonify(status="ready")
