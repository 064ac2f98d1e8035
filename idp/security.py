"""Security headers on every response, and checks on untrusted form input."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes, urlsplit

from flask import Flask, Response, g, request
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request

from idp.errors import HttpError

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MAX_FIELD = 1024


EVERY_ANSWER = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
NOT_STORED = ("Cache-Control", "no-store")  # all but static files


def add_headers(h: Headers, https: bool, static: bool = False) -> None:
    """The security headers every answer carries, where the view has not set its own (one
    pass over the answer's headers: each ``setdefault`` scanned them all)."""
    present = {name.lower() for name, _ in h.items()}
    wanted = EVERY_ANSWER + ((HSTS,) if https else ()) + (() if static else (NOT_STORED,))
    for name, value in wanted:
        if name.lower() not in present:
            h.add(name, value)


def install_headers(app: Flask, https: bool) -> None:
    @app.after_request
    def _headers(resp: Response) -> Response:
        add_headers(resp.headers, https, static=request.endpoint == "static")
        return resp


def form_target_source(uri: str) -> str | None:
    """The CSP source expression for ``uri``'s origin (``https://host:port`` or ``scheme:``)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    if parts.scheme and all(c.isalnum() or c in "+.-" for c in parts.scheme):
        return f"{parts.scheme}:"
    return None


def allow_form_target(resp: Response, uri: str | None) -> Response:
    """Let this page's forms lead to ``uri``'s origin.

    Browsers apply ``form-action`` to every redirect that follows a form submission, so a
    login or consent page whose POST ends in a redirect to the relying party must name it.
    """
    source = form_target_source(uri) if uri else None
    if source:
        resp.headers["Content-Security-Policy"] = CSP.replace(
            "form-action 'self'", f"form-action 'self' {source}"
        )
    return resp


NUL = "\x00"


def text_check(req: Request) -> bool:
    """Refuse a NUL in ``req``'s address or urlencoded body (:class:`HttpError`, 400); return
    whether that body is UTF-8 text (True when there is none). Works on a plain werkzeug
    request too, for the routes answered before Flask (idp.oidc.api_routes)."""
    query = req.args.items(multi=True)
    if NUL in req.path or any(NUL in k or NUL in v for k, v in query):
        raise HttpError("The address holds a character no text may hold.", 400)
    if req.method != "POST" or req.mimetype != "application/x-www-form-urlencoded":
        return True
    raw = req.get_data(cache=True)  # bounded by MAX_CONTENT_LENGTH
    try:
        for pair in raw.split(b"&"):
            value = unquote_to_bytes(pair.replace(b"+", b" "))
            if b"\x00" in value:
                raise HttpError("The form holds a character no text may hold.", 400)
            value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def install_form_check(app: Flask) -> None:
    """Note urlencoded bodies that are not UTF-8 text before anything parses them, and refuse
    a NUL anywhere in the address or a form (never text anyone typed; PostgreSQL refuses it
    in a text column, which would be a 500).

    Werkzeug keeps undecodable bytes percent-quoted, which would make them look like text the
    user typed; only the raw body tells the two apart. Register before CSRF protection.
    """

    @app.before_request
    def _check_text() -> None:
        if not text_check(request):
            g.form_not_text = True
        if request.method == "POST" and request.mimetype == "multipart/form-data":
            if any(NUL in k or NUL in v for k, v in request.form.items(multi=True)):
                raise HttpError("The form holds a character no text may hold.", 400)


def form_fields(names: tuple[str, ...], limits: dict[str, int] | None = None) -> dict[str, str]:
    """Read ``names`` from the posted form, refusing overlong values and text that is not text.

    Fields are at most ``MAX_FIELD`` characters unless ``limits`` allows a field more.
    """
    if g.get("form_not_text"):
        raise HttpError("The input contains characters that are not allowed.")
    out: dict[str, str] = {}
    for name in names:
        value = request.form.get(name, "")
        if len(value) > (limits or {}).get(name, MAX_FIELD):
            raise HttpError("That input is too long.")
        if "\x00" in value:
            raise HttpError("The input contains characters that are not allowed.")
        out[name] = value
    return out
