"""Console: Audit log."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from idp.admin.console import bp


@bp.get("/audit")
def audit_log() -> ResponseReturnValue:
    return render_template("admin/audit.html")
