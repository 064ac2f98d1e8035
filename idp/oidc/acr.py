"""OIDC ``acr`` values and assurance levels (DESIGN.md "Assurance levels" table).

Each tenant's table is the defaults below plus the entries its admins add
(``idp tenant acr``, the console's Assurance page, the admin API's ``/acr``: all through
:func:`idp.oidc.acr_table.change_table`). Tenant additions apply to OpenID Connect only;
SAML uses its own built-in class references (idp.saml.contexts).

``acr_values`` is voluntary (OpenID Connect Core 1.0 section 3.1.2.1): the login aims for
the requested level and the id_token states what was achieved. An *essential* ``acr`` claim
(Core 5.5.1.1) must be met, or the request fails with ``unmet_authentication_requirements``
(OpenID Connect Core Unmet Authentication Requirements 1.0). The first requested value (in the
client's order) that the achieved level satisfies is returned; otherwise the default value of
the achieved level.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

DEFAULT_ACR = {1: "urn:stepwise:loa:1", 2: "urn:stepwise:loa:2", 3: "urn:stepwise:loa:3"}
LEVELS = {
    "urn:stepwise:loa:1": 1,
    "urn:stepwise:loa:2": 2,
    "http://schemas.openid.net/pape/policies/2007/06/multi-factor": 2,
    "urn:stepwise:loa:3": 3,
    "phr": 3,
}
MAX_VALUES = 10
VALUE_RE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,200}$")  # printable, no space, " or \
VALUE_MAX = 200


def table(extra: Mapping[str, int] | None) -> dict[str, int]:
    """A tenant's table: the defaults and the entries it added."""
    return {**LEVELS, **(extra or {})}


def parse(levels: Mapping[str, int], acr_values: str | list[str] | None) -> list[str]:
    """The known values of ``acr_values`` (a space-separated string or a list); unknown ones
    are ignored (voluntary claims may be, Core 5.5.1.1)."""
    values = acr_values.split() if isinstance(acr_values, str) else list(acr_values or [])
    return [v for v in values[:MAX_VALUES] if isinstance(v, str) and v in levels]


def requested_level(levels: Mapping[str, int], values: list[str]) -> int:
    """The level that satisfies the request: any listed value will do, so the lowest one."""
    return min((levels[v] for v in values if v in levels), default=0)


def acr_for(levels: Mapping[str, int], achieved: int, requested: list[str]) -> str:
    for value in requested:
        if levels.get(value, 99) <= achieved:
            return value
    return DEFAULT_ACR[max(1, min(achieved, 3))]
