"""Console: Overview."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from idp.admin.console import bp


@bp.get("/")
def console() -> ResponseReturnValue:
    return render_template("admin/overview.html")
