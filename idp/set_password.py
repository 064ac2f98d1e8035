"""The page an emailed set-password link opens: a new account's user chooses a password.

The link (idp.links: single use, a week, stored as an HMAC) serves only an account that has
neither a password nor a second factor yet; for any other account, and for an unknown, used
or expired token, the page says the same thing (:class:`idp.links.LinkInvalid`). The password
follows the rules of idp.passwords for an account whose only factor it is; a link that reached
the user's mailbox verifies the address. Resetting the password of an account that has one is
another flow (idp.password_reset). After it the user signs in as at any
first login, and the tenant's MFA policy applies then.
"""

from __future__ import annotations

from flask import g, render_template, request
from flask.typing import ResponseReturnValue

from factors.errors import StepwiseError, WeakSecret
from idp import directory
from idp.errors import install, page
from idp.links import LinkInvalid
from idp.passwords import min_length
from idp.security import form_fields
from idp.services import services
from idp.tenancy import tenant_blueprint, tenant_in

bp = tenant_blueprint("set_password", __name__)
INVALID = "This link is not valid any more. Ask your administrator for a new one."


def _render(exc: StepwiseError) -> ResponseReturnValue:
    """An unknown, used or expired link, or one for an account that no longer waits for it:
    one message for every reason, so the page tells nothing about the account."""
    if isinstance(exc, LinkInvalid):
        return render_template("login/set_password.html", invalid=INVALID), 400
    return page(exc)


install(bp, _render)


@bp.context_processor
def _frame() -> dict[str, object]:
    return {"tenant": g.get("tenant")}  # none on the 404 of an unknown tenant


TOKEN_MAX = 64
LIMITS = {"password": 1024, "confirmation": 1024}


@bp.get("/set-password")
def form() -> ResponseReturnValue:
    token = request.args.get("token", "")[: TOKEN_MAX + 1]
    svc = services()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        user = directory.link_user(s, svc, tenant, token)
        return render_template("login/set_password.html", token=token, username=user.username,
                               min_length=min_length(tenant, False))  # fmt: skip


@bp.post("/set-password")
def submit() -> ResponseReturnValue:
    fields = form_fields(("token", "password", "confirmation"), LIMITS)
    token, password = fields["token"], fields["password"]
    svc = services()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        user = directory.link_user(s, svc, tenant, token)
        message = None
        if password != fields["confirmation"]:
            message = "The two passwords differ. Type the same password twice."
        else:
            try:
                directory.set_password_from_link(s, svc, tenant, token, password,
                                                 request.remote_addr)  # fmt: skip
            except WeakSecret as exc:
                message = str(exc)
        if message:
            return render_template(
                "login/set_password.html",
                token=token,
                username=user.username,
                message=message,
                min_length=min_length(tenant, False),
            ), 400
        return render_template("login/set_password.html", done=True, username=user.username)
