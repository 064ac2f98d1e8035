"""TOTP codes from ``oathtool``, an implementation independent of ours."""

from __future__ import annotations

import subprocess
import time


def oathtool(secret: str, at: float | None = None) -> str:
    """The TOTP code for ``secret`` at ``at`` (default now), computed by oathtool."""
    when = int(time.time() if at is None else at)
    out = subprocess.run(
        ["oathtool", "--totp", "-b", "-N", f"@{when}", secret],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()
