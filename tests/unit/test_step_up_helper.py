"""The RFC 9470 helper's challenge header, and its refusals of requests without a token."""

from __future__ import annotations

from typing import Any

import pytest

from stepwise_rs import (
    InsufficientUserAuthentication,
    InvalidToken,
    Requirement,
    TokenChecker,
    bearer_token,
    parse_challenge,
    protect,
)


def test_challenge_header_round_trips() -> None:
    need = Requirement(["urn:stepwise:loa:2", "phr"], max_age=300)
    header = InsufficientUserAuthentication(need, "A stronger authentication is required").header()
    assert header == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="A stronger authentication is required", '
        'acr_values="urn:stepwise:loa:2 phr", max_age=300'
    )
    assert parse_challenge(header) == {
        "error": "insufficient_user_authentication",
        "error_description": "A stronger authentication is required",
        "acr_values": "urn:stepwise:loa:2 phr",
        "max_age": "300",
    }
    assert parse_challenge('Basic realm="x"') == {}


@pytest.mark.parametrize("value", [None, "", "Bearer", "Bearer  ", "Basic abc", "bearer"])
def test_missing_bearer_tokens_are_invalid(value: str | None) -> None:
    with pytest.raises(InvalidToken):
        bearer_token(value)


def test_wsgi_guard_answers_401_with_invalid_token_before_fetching_anything() -> None:
    checker = TokenChecker("http://127.0.0.1:9/t/none")  # never contacted: no token given
    seen: list[Any] = []

    def app(environ: dict[str, Any], start: Any) -> list[bytes]:
        raise AssertionError("reached the protected app")

    guarded = protect(app, checker, Requirement(["urn:stepwise:loa:2"]))
    body = guarded({}, lambda status, headers: seen.append((status, dict(headers))))
    status, headers = seen[0]
    assert status == "401 Unauthorized"
    assert headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert b'"invalid_token"' in b"".join(body)
