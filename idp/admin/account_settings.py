"""Console: the tenant's account settings (sign-up, sign-in by email, password length,
remembered browsers); idp.account_settings validates and audits them."""

from __future__ import annotations

from typing import Any

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue

from idp import account_settings
from idp.admin.console import actor, back_to, bp, done
from idp.directory import DirectoryError
from idp.security import form_fields
from idp.services import services
from idp.tenancy import current_tenant, tenant_in
from idp.untrusted import ascii_int

FIELDS = ("signup_domains", "password_min_alone", "remember_days")
LIMITS = {"signup_domains": account_settings.MAX_DOMAINS * (account_settings.DOMAIN_MAX + 2)}


def _page(values: dict[str, Any], message: str | None = None, status: int = 200) -> tuple[str, int]:
    return render_template(
        "admin/account_settings.html",
        values=values,
        message=message,
        mail=services().mail is not None,
        min_alone=account_settings.PASSWORD_MIN_ALONE,
        remember_max=account_settings.REMEMBER_DAYS_MAX,
        max_domains=account_settings.MAX_DOMAINS,
    ), status


@bp.get("/accounts")
def accounts_page() -> ResponseReturnValue:
    settings = account_settings.settings_json(current_tenant())
    return _page({**settings, "signup_domains": "\n".join(settings["signup_domains"])})


def _number(name: str, text: str, low: int, high: int) -> int:
    number = ascii_int(text.strip(), 3)
    if number is None or not low <= number <= high:
        raise DirectoryError(f"{name.replace('_', ' ')}: a whole number from {low} to {high}")
    return number


@bp.post("/accounts")
def accounts() -> ResponseReturnValue:
    back_to(url_for(".accounts_page"))
    typed = form_fields(FIELDS, LIMITS)
    flags = {f: request.form.get(f) == "on" for f in ("signup_enabled", "login_by_email")}
    low, high = account_settings.PASSWORD_MIN_ALONE
    try:
        changes: dict[str, Any] = {
            **flags,
            "signup_domains": account_settings.parse_domains(typed["signup_domains"]),
            "password_min_alone": _number("password_min_alone", typed["password_min_alone"],
                                          low, high),
            "remember_days": _number("remember_days", typed["remember_days"], 0,
                                     account_settings.REMEMBER_DAYS_MAX),
        }  # fmt: skip
        with services().db.session() as s:
            account_settings.set_settings(s, tenant_in(s), changes, actor())
    except DirectoryError as exc:  # shown with what was typed, so nothing typed is lost
        return _page({**typed, **flags}, exc.message, 400)
    return done("The account settings were saved.", url_for(".accounts_page"))
