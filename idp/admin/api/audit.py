"""Admin API: audit (see the console's audit pages)."""

from __future__ import annotations
