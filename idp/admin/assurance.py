"""Console: Assurance levels."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from idp.admin.console import bp


@bp.get("/assurance")
def assurance() -> ResponseReturnValue:
    return render_template("admin/assurance.html")
