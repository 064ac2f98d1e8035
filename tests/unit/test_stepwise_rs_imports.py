"""The resource-server helper is a package of its own: importing it loads no part of the IdP's
web app (issue 13: ``demo/rp.py`` used to pay for Flask-Login, WTF and SQLAlchemy)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("flask", "flask_login", "flask_wtf", "sqlalchemy", "redis", "werkzeug", "idp.app")


def test_importing_stepwise_rs_loads_no_web_app() -> None:
    code = (
        "import sys, stepwise_rs\n"
        f"heavy = {HEAVY!r}\n"
        "print(' '.join(sorted(m for m in sys.modules"
        " if any(m == h or m.startswith(h + '.') for h in heavy))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_check_sees_a_heavy_import() -> None:
    """The same probe on the app factory does list Flask: the check above can fail."""
    code = "import sys, idp.app\nprint('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
