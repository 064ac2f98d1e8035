"""OIDC ``acr`` values and assurance levels (DESIGN.md "Assurance levels" table).

``acr_values`` is voluntary (OpenID Connect Core 1.0 section 3.1.2.1): the login aims for the
requested level and the id_token states what was achieved. The first requested value (in the
client's order of preference) that the achieved level satisfies is returned; otherwise the
default value of the achieved level.
"""

from __future__ import annotations

DEFAULT_ACR = {1: "urn:stepwise:loa:1", 2: "urn:stepwise:loa:2", 3: "urn:stepwise:loa:3"}
LEVELS = {
    "urn:stepwise:loa:1": 1,
    "urn:stepwise:loa:2": 2,
    "http://schemas.openid.net/pape/policies/2007/06/multi-factor": 2,
    "urn:stepwise:loa:3": 3,
    "phr": 3,
}
SUPPORTED = list(LEVELS)
MAX_VALUES = 10


def parse(acr_values: str | None) -> list[str]:
    """The known values of a space-separated ``acr_values`` parameter; unknown ones are ignored."""
    return [v for v in (acr_values or "").split()[:MAX_VALUES] if v in LEVELS]


def requested_level(values: list[str]) -> int:
    """The level that satisfies the request: any listed value will do, so the lowest one."""
    return min((LEVELS[v] for v in values), default=0)


def acr_for(achieved: int, requested: list[str]) -> str:
    for value in requested:
        if LEVELS[value] <= achieved:
            return value
    return DEFAULT_ACR[max(1, min(achieved, 3))]
