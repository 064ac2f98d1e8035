"""Reading Stepwise's pages the way the DESIGN.md form conventions promise they can be read."""

from __future__ import annotations

import re

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ALERT = re.compile(r'role="alert"[^>]*>([^<]+)<')
FORM = re.compile(r'<form method="post" action="([^"]+)"')
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')  # the TOTP secret during enrolment


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def alert_of(html: str) -> str | None:
    match = ALERT.search(html)
    return match.group(1).strip() if match else None
