"""The notification worker (``idp worker``): delivers the outbox (TODO issue 16)."""

from __future__ import annotations

import subprocess

from idp.services import Services


def run_forever(svc: Services) -> None:
    """Deliver due notifications until SIGTERM."""
    raise NotImplementedError


def spawn() -> subprocess.Popen[bytes] | None:
    """Start ``idp worker`` as a child process of ``idp serve``."""
    return None


def stop(child: subprocess.Popen[bytes]) -> None:
    """Stop the child started by ``spawn``."""
