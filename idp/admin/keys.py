"""Console: Keys."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from idp.admin.console import bp


@bp.get("/keys")
def keys() -> ResponseReturnValue:
    return render_template("admin/keys.html")
