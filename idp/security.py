"""Security headers on every response, and checks on untrusted form input."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from flask import Flask, Response, g, request

from idp.errors import HttpError

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MAX_FIELD = 1024


def install_headers(app: Flask, https: bool) -> None:
    @app.after_request
    def _headers(resp: Response) -> Response:
        h = resp.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if https:
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.endpoint != "static":
            h.setdefault("Cache-Control", "no-store")
        return resp


def install_form_check(app: Flask) -> None:
    """Note urlencoded bodies that are not UTF-8 text before anything parses them.

    Werkzeug keeps undecodable bytes percent-quoted, which would make them look like text the
    user typed; only the raw body tells the two apart. Register before CSRF protection.
    """

    @app.before_request
    def _check_text() -> None:
        if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
            raw = request.get_data(cache=True)  # bounded by MAX_CONTENT_LENGTH
            try:
                for pair in raw.split(b"&"):
                    unquote_to_bytes(pair.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                g.form_not_text = True


def form_fields(names: tuple[str, ...]) -> dict[str, str]:
    """Read ``names`` from the posted form, refusing overlong values and text that is not text."""
    if g.get("form_not_text"):
        raise HttpError("The input contains characters that are not allowed.")
    out: dict[str, str] = {}
    for name in names:
        value = request.form.get(name, "")
        if len(value) > MAX_FIELD:
            raise HttpError("That input is too long.")
        if "\x00" in value:
            raise HttpError("The input contains characters that are not allowed.")
        out[name] = value
    return out
