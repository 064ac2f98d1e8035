"""Security headers on every response, and checks on untrusted form input."""

from __future__ import annotations

from flask import Flask, Response, request

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


def form_fields(names: tuple[str, ...]) -> dict[str, str]:
    """Read ``names`` from the posted form, refusing overlong values and broken text.

    Werkzeug decodes invalid UTF-8 as U+FFFD, so its presence means the bytes were not text.
    """
    out: dict[str, str] = {}
    for name in names:
        value = request.form.get(name, "")
        if len(value) > MAX_FIELD:
            raise HttpError("That input is too long.")
        if "\ufffd" in value or "\x00" in value:
            raise HttpError("The input contains characters that are not allowed.")
        out[name] = value
    return out
