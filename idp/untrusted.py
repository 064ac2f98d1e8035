"""Numbers and JSON from untrusted text, parsed in one place so that bad input is a clear
4xx and never a 500 (issue 13: found by fuzzing)."""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 32


def ascii_int(text: str, max_digits: int = 10) -> int | None:
    """A whole number written in ASCII digits, else None. ``str.isdigit`` alone also accepts
    "²", "①" or "٣", which ``int`` then refuses or reads as another number."""
    if not text or len(text) > max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


SQL_INT_MAX = 2**31 - 1  # the largest id an INTEGER primary key holds (PostgreSQL: int4)


def row_id(text: str) -> int | None:
    """A table row's id from a URL or form: ASCII digits within a SQL INTEGER, else None (a
    larger number reaches PostgreSQL as an out-of-range error, which would be a 500)."""
    number = ascii_int(text, 10)
    return number if number is not None and 0 < number <= SQL_INT_MAX else None


def parse_json(text: str | bytes) -> Any:
    """JSON nested at most ``MAX_JSON_DEPTH`` deep; raise ValueError otherwise. (The
    standard parser recurses: a thousand ``[`` raise RecursionError, not ValueError.)"""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text.decode("utf-8", "replace") if isinstance(text, bytes) else text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise ValueError("JSON nested too deeply")
        elif ch in "]}":
            depth -= 1
    return json.loads(text)
