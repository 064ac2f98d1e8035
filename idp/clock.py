"""The one place ``idp/`` reads the wall clock (DESIGN.md "Time").

A request reads the time once, when it first asks (:func:`now`), and that value is passed
down to the planner, flows, sessions, SAML and tokens. The app's clock is a :class:`Clock`;
tests install a :class:`SettableClock` and move it forward instead of sleeping.

No Flask here, so the protocol code that asks for the time stays free of it: the app factory
binds the app's clock to each app context and opens a request's scope (:func:`bind`,
:func:`open_scope`), through context variables.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token


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

_clock: ContextVar[Clock] = ContextVar("stepwise_clock", default=SYSTEM)
_scope: ContextVar[list[int] | None] = ContextVar("stepwise_now", default=None)


def bind(clock: Clock) -> Token[Clock]:
    """Make ``clock`` the current one (for an app context); reset with the token."""
    return _clock.set(clock)


def open_scope() -> Token[list[int] | None]:
    """Start a request: its first :func:`now` is kept for the rest of it."""
    return _scope.set([])


def close_scope(token: Token[list[int] | None]) -> None:
    """End the request opened with :func:`open_scope`."""
    _scope.reset(token)


def unbind(token: Token[Clock]) -> None:
    """Undo :func:`bind`."""
    _clock.reset(token)


def current() -> Clock:
    """The clock of the app in context (the system clock outside one)."""
    return _clock.get()


def now() -> int:
    """The time in whole seconds: read once per request, then the same for all of it."""
    scope = _scope.get()
    if scope is None:
        return int(current().time())
    if not scope:
        scope.append(int(current().time()))
    return scope[0]
