"""Admin API: assurance (see the console's assurance pages)."""

from __future__ import annotations
