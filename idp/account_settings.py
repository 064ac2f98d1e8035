"""A tenant's account settings, shared by the CLI, the console and the admin API: self-service
sign-up and its email domains, signing in by email, the password length when the password is
the only factor (NIST SP 800-63B-4 3.1.1.2), and how long a browser may be remembered.

Each change is validated here (raising :class:`idp.directory.DirectoryError` with a message fit
for the user) and audited with its old and new values in the caller's transaction. What the
settings do lives elsewhere: idp.signup, idp.passwords, the login pages, idp.remembered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from factors.password_rules import MIN_LENGTH
from idp.directory import Actor, DirectoryError, audit
from idp.store.models import Tenant

MAX_DOMAINS = 100
DOMAIN_MAX = 253  # RFC 1035 2.3.4, written out with dots
PASSWORD_MIN_ALONE = (MIN_LENGTH, 64)  # 8..64; 15 by default
REMEMBER_DAYS_MAX = 90
FIELDS = ("signup_enabled", "signup_domains", "login_by_email", "password_min_alone",
          "remember_days")  # fmt: skip


def settings_json(tenant: Tenant) -> dict[str, Any]:
    """The settings as the admin API shows and accepts them."""
    return {
        "signup_enabled": tenant.signup_enabled,
        "signup_domains": list(tenant.signup_domains or []),
        "login_by_email": tenant.login_by_email,
        "password_min_alone": tenant.password_min_alone,
        "remember_days": tenant.remember_days,
    }


def normalize_domain(typed: str) -> str:
    """An email domain in its IDNA (ASCII, lower-case) form, as email-validator reads the part
    after the @ of an address; raise :class:`DirectoryError` if no address could end in it."""
    text = typed.strip().removeprefix("@")
    if not text or len(text) > DOMAIN_MAX:
        raise DirectoryError(f"not an email domain: {typed[:60]!r}")
    from email_validator import EmailNotValidError, validate_email  # not at every `idp` start

    try:
        return validate_email(f"x@{text}", check_deliverability=False).ascii_domain
    except EmailNotValidError:
        raise DirectoryError(f"not an email domain: {typed[:60]!r}") from None


def normalize_domains(domains: Any) -> list[str]:
    """Each domain normalised, duplicates dropped, order kept; at most :data:`MAX_DOMAINS`."""
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise DirectoryError("signup_domains must be a list of domains")
    if len(domains) > MAX_DOMAINS:
        raise DirectoryError(f"at most {MAX_DOMAINS} sign-up domains")
    out: list[str] = []
    for typed in domains:
        domain = normalize_domain(typed)
        if domain not in out:
            out.append(domain)
    return out


def parse_domains(text: str) -> list[str]:
    """Domains typed in one text (a form's text area, a CLI option): separated by commas,
    spaces or new lines."""
    return [d for d in text.replace(",", " ").split() if d]


def _whole(name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DirectoryError(f"{name} must be a whole number from {low} to {high}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise DirectoryError(f"{name} must be true or false")
    return value


def set_settings(
    s: Session, tenant: Tenant, changes: dict[str, Any], actor: Actor
) -> dict[str, Any]:
    """Apply ``changes`` (keys of :func:`settings_json`); return the new settings. Nothing is
    changed unless every value is valid (the caller's transaction rolls back on the error)."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise DirectoryError(f"unknown account setting(s): {', '.join(sorted(unknown))}")
    before = settings_json(tenant)
    new = dict(before)
    for name in ("signup_enabled", "login_by_email"):
        if name in changes:
            new[name] = _flag(name, changes[name])
    if "signup_domains" in changes:
        new["signup_domains"] = normalize_domains(changes["signup_domains"])
    if "password_min_alone" in changes:
        new["password_min_alone"] = _whole("password_min_alone", changes["password_min_alone"],
                                           *PASSWORD_MIN_ALONE)  # fmt: skip
    if "remember_days" in changes:
        new["remember_days"] = _whole("remember_days", changes["remember_days"], 0,
                                      REMEMBER_DAYS_MAX)  # fmt: skip
    diff = {k: [before[k], new[k]] for k in FIELDS if before[k] != new[k]}
    for name in diff:
        setattr(tenant, name, new[name])
    if diff:
        audit(s, tenant, "tenant.account_settings_changed", actor=actor.user_id, ip=actor.ip,
              changes=diff, **actor.details())  # fmt: skip
    return settings_json(tenant)
