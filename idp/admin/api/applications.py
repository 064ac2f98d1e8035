"""Admin API: applications (see the console's applications pages)."""

from __future__ import annotations
