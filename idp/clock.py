"""The one place ``idp/`` reads the wall clock (DESIGN.md "Time").

A request reads the time once, when it first asks (:func:`now`), and that value is passed
down to the planner, flows, sessions, SAML and tokens. The app's clock is a :class:`Clock`;
tests install a :class:`SettableClock` and move it forward instead of sleeping.
"""

from __future__ import annotations

import time

from flask import Flask, current_app, g, has_app_context, has_request_context

EXTENSION = "stepwise.clock"


class Clock:
    """The system clock."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for in-process TTLs and caches)."""
        return time.monotonic()


class SettableClock(Clock):
    """The system clock plus an offset that tests move with :meth:`advance`; after
    :meth:`freeze`, time moves only when the test moves it."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.frozen: tuple[float, float] | None = None  # (time, monotonic) when frozen

    def freeze(self) -> None:
        self.frozen = (time.time(), time.monotonic())

    def time(self) -> float:
        return (self.frozen[0] if self.frozen else time.time()) + self.offset

    def monotonic(self) -> float:
        return (self.frozen[1] if self.frozen else time.monotonic()) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


SYSTEM = Clock()


def install(app: Flask, clock: Clock) -> None:
    app.extensions[EXTENSION] = clock


def current() -> Clock:
    """The clock of the app in context (the system clock outside one)."""
    if has_app_context():
        clock: Clock = current_app.extensions.get(EXTENSION, SYSTEM)
        return clock
    return SYSTEM


def now() -> int:
    """The time in whole seconds: read once per request, then the same for all of it."""
    if has_request_context():
        cached: int | None = g.get("_stepwise_now")
        if cached is None:
            cached = g._stepwise_now = int(current().time())
        return cached
    return int(current().time())
