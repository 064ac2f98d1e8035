"""Admin API: keys (see the console's keys pages)."""

from __future__ import annotations
