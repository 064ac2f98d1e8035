"""The tenant console's frame: its blueprint, who may open it, how its errors are shown, and
the confirmation page every destructive action goes through.

Open to the tenant's admins and owners only (members get 403). Reads need only the signed-in
session; every write needs re-authentication at the admin's own level within the window
(DESIGN.md "Sensitive actions") and a CSRF token (Flask-WTF, app-wide). Every change is
audited with the acting admin by the operation it calls (idp.directory, idp.mfa.admin, ...).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from flask import flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.wrappers import Response

from idp.directory import Actor, DirectoryError, Forbidden
from idp.errors import StepwiseError, install, page
from idp.login.guard import reauthenticate, reauthenticated, require_signed_in
from idp.tenancy import tenant_blueprint

bp = tenant_blueprint("admin", __name__, "/admin")
ADMIN_ROLES = ("admin", "owner")
RESEND_FIELD_MAX, RESEND_QUERY_MAX = 200, 1500
SECRET_FIELD = re.compile(r"csrf|password|secret|token|code|key", re.IGNORECASE)
NAV = (
    ("admin.console", "Overview"),
    ("admin.users", "Users"),
    ("admin.applications", "Applications"),
    ("admin.policy_page", "MFA policy"),
    ("admin.accounts_page", "Accounts"),
    ("admin.assurance", "Assurance levels"),
    ("admin.keys", "Keys"),
    ("admin.audit_log", "Audit log"),
)


def _render(exc: StepwiseError) -> ResponseReturnValue:
    """The console surface.

    - Forbidden (an admin acting on an owner, the last owner): a 403 page, nothing changed.
    - Any other refused change (DirectoryError): rolled back with the transaction, and shown
      as a message on the page the admin came from (:func:`back_to`).
    - Anything else: the app's error page.
    """
    if isinstance(exc, DirectoryError) and not isinstance(exc, Forbidden):
        flash(exc.message, "error")
        return redirect(g.get("admin_back") or url_for("admin.console"), 303)
    return page(exc)


install(bp, _render)


@bp.before_request
def _guard() -> Response | None:
    """Admins and owners only; every write needs re-authentication at the admin's own level
    within the window (DESIGN.md "Sensitive actions"), then the form is sent again.

    Every URL the console posts to also answers GET with its form or confirmation page, so
    re-authentication returns the admin to the very form they sent, with its short fields
    (:func:`_resend_url`)."""
    refused = require_signed_in(ADMIN_ROLES)
    if refused is None and request.method == "POST" and not reauthenticated():
        flash("Sign in again to confirm it's you, then repeat the change.", "error")
        return reauthenticate(_resend_url())
    return refused


def _resend_url() -> str:
    """The GET of the posted URL, carrying the form's choices so that the confirmation page
    shows what the admin chose: never a CSRF token, a password or other secret (a URL ends up
    in logs and history), a file or a long text."""
    fields = [
        (k, v)
        for k, v in request.form.items(multi=True)
        if k != "confirm" and not SECRET_FIELD.search(k) and len(v) <= RESEND_FIELD_MAX
    ]
    path, query = quote(request.path), urlencode(fields)  # a username may hold "?" or "#"
    return f"{path}?{query}" if fields and len(query) <= RESEND_QUERY_MAX else path


@bp.context_processor
def _frame() -> dict[str, object]:
    return {"nav": NAV, "tenant": g.get("tenant")}  # none on an unknown tenant's 404 page


def actor() -> Actor:
    """The signed-in admin, as audit events name them."""
    return Actor(user_id=int(current_user.get_id()), ip=request.remote_addr)


def back_to(url: str) -> None:
    """Where a refused change of this request sends the admin back to, with its message."""
    g.admin_back = url


def done(message: str, url: str) -> Response:
    """After a change: the message, then a GET of ``url`` (303, POST/redirect/GET)."""
    flash(message, "ok")
    return redirect(url, 303)


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation page says: what will happen, and the button that does it."""

    title: str
    consequences: Sequence[str]
    button: str
    action: str  # the URL the confirming form posts to
    cancel: str
    fields: Sequence[tuple[str, str]] = ()  # hidden fields posted with it
    danger: bool = True


def confirm(c: Confirmation) -> ResponseReturnValue:
    """The page a destructive action shows first (GET); its form posts the action."""
    return render_template("admin/confirm.html", c=c)
