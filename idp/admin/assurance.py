"""Console: Assurance levels (the tenant's acr table).

The built-in rows (DESIGN.md "Assurance levels") are shown read-only; the tenant's own OIDC
``acr`` values can be added and removed through :func:`idp.oidc.acr_table.change_table`, the same
operation the CLI and the admin API use. SAML uses its built-in class references only.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from idp.admin.console import Confirmation, actor, back_to, bp, confirm, done
from idp.directory import DirectoryError
from idp.oidc import acr, acr_table
from idp.saml import contexts
from idp.services import services
from idp.store.models import Client
from idp.tenancy import current_tenant, tenant_in
from idp.untrusted import ascii_int

LEVEL_NAMES = {
    1: "1: one factor",
    2: "2: two factors of different kinds",
    3: "3: phishing-resistant",
}


@dataclass(frozen=True)
class Row:
    value: str
    level: int
    built_in: bool


def rows(own: dict[str, int]) -> list[Row]:
    """The tenant's OIDC table: built-in rows first, then its own, each by level."""
    built = [Row(v, n, True) for v, n in acr.LEVELS.items()]
    added = [Row(v, n, False) for v, n in own.items() if v not in acr.LEVELS]
    key = lambda r: (r.level, r.value)  # noqa: E731
    return sorted(built, key=key) + sorted(added, key=key)


@bp.get("/assurance")
def assurance() -> ResponseReturnValue:
    own = dict(current_tenant().acr_levels or {})
    saml = sorted(contexts.LEVELS.items(), key=lambda kv: (kv[1], kv[0]))
    return render_template(
        "admin/assurance.html",
        rows=rows(own),
        saml=saml,
        levels=LEVEL_NAMES,
        room=acr_table.MAX_TENANT_VALUES - len(own),
        max_values=acr_table.MAX_TENANT_VALUES,
        value_max=acr.VALUE_MAX,
    )


@bp.post("/assurance")
def assurance_add() -> ResponseReturnValue:
    back_to(url_for(".assurance"))
    value = request.form.get("value", "").strip()
    level = ascii_int(request.form.get("level", "").strip(), 1)
    if level is None:
        raise DirectoryError("the level must be 1, 2 or 3")
    with services().db.session() as s:
        tenant = tenant_in(s)
        acr_table.change_table(s, tenant, actor(), add={value: level})
    return done(f"{value} now means level {level}.", url_for(".assurance"))


def _clients_defaulting_to(value: str) -> list[str]:
    with services().db.session() as s:
        found = s.scalars(select(Client).where(Client.tenant_id == current_tenant().id))
        return sorted(c.client_id for c in found if value in (c.default_acr_values or []))


@bp.get("/assurance/remove")
def assurance_remove_page() -> ResponseReturnValue:
    value = request.args.get("value", "")
    own = current_tenant().acr_levels or {}
    if value not in own:
        back_to(url_for(".assurance"))
        raise DirectoryError(f"{value[: acr.VALUE_MAX]!r} is not one of this tenant's acr values")
    consequences = [
        f"Requests for acr {value} are no longer recognised: "
        "they are treated as if they had not asked for it (acr values are voluntary).",
        "Discovery stops listing it in acr_values_supported.",
        f"Tokens already issued with acr {value} count as level 1 at refresh, "
        "introspection and UserInfo.",
    ]
    users = _clients_defaulting_to(value)
    if users:
        consequences.append(
            "These clients list it as a default acr value, which will be ignored: "
            + ", ".join(users)
            + "."
        )
    return confirm(
        Confirmation(
            title=f"Remove acr value {value}?",
            consequences=consequences,
            button="Remove the acr value",
            action=url_for(".assurance_remove"),
            cancel=url_for(".assurance"),
            fields=[("value", value)],
        )
    )


@bp.post("/assurance/remove")
def assurance_remove() -> ResponseReturnValue:
    back_to(url_for(".assurance"))
    value = request.form.get("value", "")
    with services().db.session() as s:
        tenant = tenant_in(s)
        acr_table.change_table(s, tenant, actor(), remove=[value[: acr.VALUE_MAX + 1]])
    return done(f"{value} was removed.", url_for(".assurance"))
