"""Admin API: the tenant's acr table (the console's Assurance page).

``GET /acr`` lists the built-in rows of both protocols and the tenant's own OIDC values;
``POST /acr`` adds a value (or changes the level of one the tenant added) and
``DELETE /acr?value=...`` removes one. The value travels in a body or a query parameter, not
in the path, since acr values are usually URIs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from idp.admin.api.core import Body, Call, Reply, not_found, operation
from idp.directory import Conflict
from idp.oidc import acr, acr_table
from idp.saml import contexts


class AcrEntry(BaseModel):
    """One row: a wire value and the level it stands for. Built-in rows cannot change; the
    tenant's own rows are OIDC ``acr`` values."""

    value: str
    level: int = Field(ge=1, le=3)
    protocol: Literal["oidc", "saml"]
    built_in: bool


class AcrTable(BaseModel):
    """The whole table (it is small: the built-in rows and at most 50 of the tenant's)."""

    items: list[AcrEntry]


class AcrAddition(Body):
    """An OIDC acr value to add, or one the tenant added whose level changes."""

    value: str = Field(min_length=1, max_length=acr.VALUE_MAX, pattern=acr.VALUE_RE.pattern)
    level: int = Field(ge=1, le=3)


class AcrRemoval(BaseModel):
    """Which of the tenant's own values to remove."""

    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, max_length=acr.VALUE_MAX, pattern=acr.VALUE_RE.pattern)


def entries(own: dict[str, int]) -> list[AcrEntry]:
    built = [AcrEntry(value=v, level=n, protocol="oidc", built_in=True)
             for v, n in acr.LEVELS.items()]  # fmt: skip
    saml = [AcrEntry(value=v, level=n, protocol="saml", built_in=True)
            for v, n in contexts.LEVELS.items()]  # fmt: skip
    added = [AcrEntry(value=v, level=n, protocol="oidc", built_in=False)
             for v, n in sorted(own.items()) if v not in acr.LEVELS]  # fmt: skip
    return built + saml + added


@operation("GET", "/acr", summary="Read the acr table", tag="assurance", response=AcrTable)
def get_acr(call: Call) -> AcrTable:
    return AcrTable(items=entries(dict(call.tenant.acr_levels or {})))


@operation("POST", "/acr", summary="Add an OIDC acr value (or change its level)",
           tag="assurance", body=AcrAddition, response=AcrEntry, errors=(409,))  # fmt: skip
def add_acr(call: Call, body: AcrAddition) -> AcrEntry:
    acr_table.change_table(call.s, call.tenant, call.actor, add={body.value: body.level})
    return AcrEntry(value=body.value, level=body.level, protocol="oidc", built_in=False)


@operation("DELETE", "/acr", summary="Remove an OIDC acr value the tenant added",
           tag="assurance", query=AcrRemoval, status=204, errors=(404, 409))  # fmt: skip
def remove_acr(call: Call, query: AcrRemoval) -> Reply:
    if query.value in acr.LEVELS:
        raise Conflict(f"{query.value!r} is a default value with a fixed level")
    if query.value not in (call.tenant.acr_levels or {}):
        raise not_found("such acr value in this tenant's table")
    acr_table.change_table(call.s, call.tenant, call.actor, remove=[query.value])
    return Reply(None, 204)
