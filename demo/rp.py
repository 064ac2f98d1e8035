"""A demo application that signs in with OpenID Connect (authlib's Flask client) and shows
step-up: its "sensitive action" API wants level 2 within 5 minutes and answers otherwise with
an RFC 9470 challenge, which the app follows by asking Stepwise again with ``acr_values`` and
``max_age``. The page shows ``acr``, ``amr`` and ``auth_time`` before and after.

Run: ``python -m demo.rp [--port 8001]`` (``scripts/run`` starts it). Settings come from
``DEMO_ISSUER``, ``DEMO_CLIENT_ID``, ``DEMO_CLIENT_SECRET``, else from ``IDP_BASE_URL`` and
``instance/demo-client.json`` (written by ``idp demo``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.serving import run_simple

from stepwise_rs import Requirement, TokenChecker, parse_challenge, requires

ROOT = Path(__file__).resolve().parent.parent
SENSITIVE = Requirement(["urn:stepwise:loa:2"], max_age=300)
CLAIMS_SHOWN = ("acr", "amr", "auth_time")


def settings(port: int) -> dict[str, str]:
    base = os.environ.get("IDP_BASE_URL", "http://localhost:8000").rstrip("/")
    out = {"issuer": os.environ.get("DEMO_ISSUER", f"{base}/t/demo"),
           "client_id": os.environ.get("DEMO_CLIENT_ID", ""),
           "client_secret": os.environ.get("DEMO_CLIENT_SECRET", ""),
           "base": f"http://127.0.0.1:{port}"}  # fmt: skip
    if not out["client_id"]:
        instance = Path(os.environ.get("IDP_INSTANCE_PATH", ROOT / "instance"))
        creds = json.loads((instance / "demo-client.json").read_text())
        out.update(client_id=creds["client_id"], client_secret=creds["client_secret"])
    return out


def when(value: Any) -> str:
    if not isinstance(value, int):
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%H:%M:%S UTC")


def create_app(port: int = 8001) -> Flask:
    conf = settings(port)
    app = Flask(__name__)
    app.secret_key = secrets.token_hex(32)
    app.config.update(SESSION_COOKIE_NAME="demo_rp", SESSION_COOKIE_SAMESITE="Lax")
    app.jinja_env.filters["when"] = when
    oauth = OAuth(app)
    oauth.register(
        "stepwise",
        client_id=conf["client_id"],
        client_secret=conf["client_secret"],
        server_metadata_url=conf["issuer"] + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
    )
    checker = TokenChecker(conf["issuer"])

    @app.get("/")
    def home() -> ResponseReturnValue:
        return render_template("page.html", claims=session.get("claims"),
                               before=session.get("before"), shown=CLAIMS_SHOWN,
                               message=request.args.get("message"))  # fmt: skip

    @app.get("/login")
    def login() -> ResponseReturnValue:
        session["next"] = request.args.get("next", "/")
        extra = {k: request.args[k] for k in ("acr_values", "max_age") if request.args.get(k)}
        return oauth.stepwise.authorize_redirect(conf["base"] + "/callback", **extra)  # type: ignore[no-any-return]

    @app.get("/callback")
    def callback() -> ResponseReturnValue:
        if request.args.get("error"):
            description = request.args.get("error_description", "")
            return redirect(url_for("home", message=f"{request.args['error']}: {description}"))
        token = oauth.stepwise.authorize_access_token()
        session["claims"] = {k: v for k, v in token["userinfo"].items() if k != "nonce"}
        session["access_token"] = token["access_token"]
        nxt = session.pop("next", "/")
        return redirect(nxt if nxt in ("/", "/sensitive") else "/")

    @app.get("/sensitive")
    def sensitive() -> ResponseReturnValue:
        if "access_token" not in session:
            return redirect(url_for("login", next="/sensitive"))
        bearer = {"Authorization": f"Bearer {session['access_token']}"}
        answer = requests.get(conf["base"] + "/api/sensitive", headers=bearer, timeout=10)
        if answer.status_code == 401:
            challenge = parse_challenge(answer.headers.get("WWW-Authenticate", ""))
            if challenge.get("error") == "insufficient_user_authentication" and not session.get(
                "stepping_up"
            ):
                session["before"], session["stepping_up"] = session.get("claims"), True
                return redirect(url_for("login", next="/sensitive",
                                        acr_values=challenge.get("acr_values", ""),
                                        max_age=challenge.get("max_age", "")))  # fmt: skip
            session.pop("stepping_up", None)
            return redirect(url_for("home", message="The sensitive action was refused."))
        session.pop("stepping_up", None)
        return render_template("page.html", claims=session.get("claims"), shown=CLAIMS_SHOWN,
                               before=session.get("before"), done=answer.json())  # fmt: skip

    @app.get("/api/sensitive")
    @requires(checker, SENSITIVE)
    def api_sensitive() -> ResponseReturnValue:
        from flask import g

        return {"done": True, "acr": g.token_claims.get("acr"),
                "auth_time": g.token_claims.get("auth_time")}  # fmt: skip

    @app.post("/logout")
    def logout() -> ResponseReturnValue:
        session.clear()
        return redirect(url_for("home"))

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8001")))
    args = parser.parse_args()
    app = create_app(args.port)
    print(f"  demo application     http://127.0.0.1:{args.port}/", flush=True)
    run_simple("127.0.0.1", args.port, app, threaded=True)


if __name__ == "__main__":
    main()
