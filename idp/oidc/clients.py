"""Client registry: registration, validation and secret checks (RFC 6749 section 2, RFC 8252),
and :class:`OAuthClient`, authlib's view of a registered client.

Redirect URIs are compared exactly at the authorization endpoint, so they are validated
strictly here: absolute, no fragment (RFC 6749 3.1.2), https — or http only on a loopback
host, or a private-use scheme with a dot for native apps (RFC 8252 7.1 and 7.3).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2 import rfc6749
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.config_cache import ConfigCache
from idp.directory import Actor, DirectoryError, audit, now
from idp.oidc import acr
from idp.oidc import claims as scope_claims
from idp.store.models import Client, Grant, Tenant

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
GRANTS_CONFIDENTIAL = ["authorization_code", "refresh_token", "client_credentials"]
GRANTS_PUBLIC = ["authorization_code", "refresh_token"]
MAX_URIS = 20
DAY = 24 * 3600
# A refresh-token family's absolute and idle lifetimes (RFC 9700 4.14.2), per client.
REFRESH_LIFETIME = 30 * DAY
REFRESH_IDLE = 14 * DAY
MAX_REFRESH_LIFETIME = 365 * DAY
# An access token's lifetime, per client: short, since a JWT access token cannot be recalled.
ACCESS_LIFETIME = 600
MIN_ACCESS_LIFETIME, MAX_ACCESS_LIFETIME = 60, DAY
CLIENT_AUTH = ["client_secret_basic", "client_secret_post"]  # a confidential client's (2.3.1)


def check_redirect_uri(uri: str) -> str:
    """Return ``uri`` or raise :class:`DirectoryError` saying why it cannot be registered."""
    if len(uri) > 2000 or not uri.isprintable() or any(c.isspace() for c in uri):
        raise DirectoryError(
            f"redirect URI is too long, or has spaces or control characters: {uri[:80]!r}"
        )
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        raise DirectoryError(f"not a URI: {uri!r}") from None
    if parts.fragment or "#" in uri:
        raise DirectoryError(f"redirect URI must not have a fragment: {uri!r}")
    if parts.scheme == "https" and host:
        return uri
    if parts.scheme == "http" and host in LOOPBACK and not parts.username:
        return uri
    if parts.scheme and "." in parts.scheme and parts.scheme not in ("http", "https"):
        return uri  # private-use URI scheme of a native app (RFC 8252 7.1)
    raise DirectoryError(
        f"redirect URI must be https, http on a loopback host, or a private-use scheme: {uri!r}"
    )


def check_refresh_lifetimes(lifetime: int | None, idle: int | None) -> tuple[int, int]:
    """The (absolute, idle) lifetimes of a client's refresh-token families, defaults filled
    in, or raise :class:`DirectoryError`. The idle lifetime never exceeds the absolute one
    (RFC 9700 section 4.14.2)."""
    absolute = REFRESH_LIFETIME if lifetime is None else lifetime
    if isinstance(absolute, bool) or not isinstance(absolute, int):
        raise DirectoryError("--refresh-lifetime must be a whole number of seconds")
    if not 0 < absolute <= MAX_REFRESH_LIFETIME:
        raise DirectoryError(
            f"--refresh-lifetime must be 1 to {MAX_REFRESH_LIFETIME} seconds (365 days)"
        )
    rest = min(REFRESH_IDLE, absolute) if idle is None else idle
    if isinstance(rest, bool) or not isinstance(rest, int):
        raise DirectoryError("--refresh-idle must be a whole number of seconds")
    if not 0 < rest <= absolute:
        raise DirectoryError(
            f"--refresh-idle must be 1 to {absolute} seconds (at most --refresh-lifetime)"
        )
    return absolute, rest


def new_client_id() -> str:
    """128 random bits in hex: never starts with '-', so it is safe as a CLI argument."""
    return secrets.token_hex(16)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(client: Client, presented: str) -> bool:
    """Constant-time check of a presented client secret against the stored hash."""
    expected = client.secret_hash or ""
    return bool(expected) and hmac.compare_digest(expected, hash_secret(presented))


@dataclass(frozen=True)
class Registered:
    """A new or re-keyed client; ``client_secret`` is shown once and never stored."""

    client: Client
    client_secret: str | None


# The settings of a client an admin may set and change, by their public names (the console's
# fields, the admin API's members); the values are the columns that hold them.
FIELDS = {
    "name": "name",
    "redirect_uris": "redirect_uris",
    "post_logout_redirect_uris": "post_logout_redirect_uris",
    "public": "public",
    "first_party": "first_party",
    "admin_api": "admin_api",
    "grant_types": "grant_types",
    "min_level": "min_level",
    "default_acr_values": "default_acr_values",
    "access_token_lifetime": "access_token_ttl",
    "refresh_lifetime": "refresh_token_ttl",
    "refresh_idle_lifetime": "refresh_idle_ttl",
    "id_token_alg": "id_token_alg",
}


def _flag(settings: dict[str, Any], name: str) -> bool:
    value = settings[name]
    if not isinstance(value, bool):
        raise DirectoryError(f"{name} must be true or false")
    return value


def _uri_list(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        raise DirectoryError(f"{what} must be a list of URIs")
    uris = [check_redirect_uri(u) for u in value]
    if len(uris) > MAX_URIS:
        raise DirectoryError(f"at most {MAX_URIS} redirect URIs of each kind")
    return list(dict.fromkeys(uris))


def _grant_types(value: object, public: bool) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise DirectoryError("grant types must be a list")
    unknown = [g for g in value if g not in GRANTS_CONFIDENTIAL]
    if unknown:
        raise DirectoryError(
            f"unknown grant type(s): {', '.join(g[:40] for g in unknown[:3])}; "
            f"choose among {', '.join(GRANTS_CONFIDENTIAL)}"
        )
    if not value:
        raise DirectoryError("a client needs at least one grant type")
    if public and "client_credentials" in value:
        raise DirectoryError("a public client cannot use client_credentials: it has no secret")
    if "refresh_token" in value and "authorization_code" not in value:
        raise DirectoryError("refresh_token needs authorization_code: refresh tokens come from it")
    return [g for g in GRANTS_CONFIDENTIAL if g in value]  # one order, no repeats


def _lifetime(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DirectoryError(f"{what} must be {low} to {high} seconds")
    return value


def check_settings(tenant: Tenant, settings: dict[str, Any]) -> dict[str, Any]:
    """Every setting of a client (:data:`FIELDS`) validated together, as columns; raise
    :class:`DirectoryError` saying what is wrong. Creating and editing both come here, so a
    client can never be edited into a state it could not be created in."""
    name = settings["name"].strip() if isinstance(settings["name"], str) else ""
    if not 0 < len(name) <= 200 or not name.isprintable():
        raise DirectoryError("client name must be 1-200 characters, without control characters")
    public, admin_api = _flag(settings, "public"), _flag(settings, "admin_api")
    uris = _uri_list(settings["redirect_uris"], "redirect URIs")
    logout_uris = _uri_list(settings["post_logout_redirect_uris"], "post-logout redirect URIs")
    grants = _grant_types(settings["grant_types"], public)
    if not uris and not admin_api and "authorization_code" in grants:
        raise DirectoryError("a client needs at least one --redirect-uri")
    if admin_api and public:
        raise DirectoryError("an --admin-api client needs a secret: it cannot be --public")
    if admin_api and "client_credentials" not in grants:
        raise DirectoryError("an --admin-api client needs the client_credentials grant")
    if settings["id_token_alg"] not in ("RS256", "ES256"):
        raise DirectoryError("--id-token-alg must be RS256 or ES256")
    level = settings["min_level"]
    if isinstance(level, bool) or level not in (0, 1, 2, 3):
        raise DirectoryError("--min-level must be 0, 1, 2 or 3")
    acrs = settings["default_acr_values"]
    if not isinstance(acrs, list) or not all(isinstance(v, str) for v in acrs):
        raise DirectoryError("default acr values must be a list")
    known = acr.table(tenant.acr_levels)
    unknown = [v[:80] for v in acrs if v not in known]
    if unknown:
        raise DirectoryError(f"unknown acr value(s) for --default-acr: {', '.join(unknown[:5])}")
    if len(acrs) > acr.MAX_VALUES:
        raise DirectoryError(f"at most {acr.MAX_VALUES} default acr values")
    access = _lifetime(settings["access_token_lifetime"], "the access-token lifetime",
                       MIN_ACCESS_LIFETIME, MAX_ACCESS_LIFETIME)  # fmt: skip
    refresh_ttl, idle_ttl = check_refresh_lifetimes(
        settings["refresh_lifetime"], settings["refresh_idle_lifetime"]
    )
    return {
        "name": name,
        "redirect_uris": uris,
        "post_logout_redirect_uris": logout_uris,
        "public": public,
        "first_party": _flag(settings, "first_party"),
        "admin_api": admin_api,
        "grant_types": grants,
        "min_level": level,
        "default_acr_values": list(dict.fromkeys(acrs)),
        "access_token_ttl": access,
        "refresh_token_ttl": refresh_ttl,
        "refresh_idle_ttl": idle_ttl,
        "id_token_alg": settings["id_token_alg"],
    }


def settings_of(client: Client) -> dict[str, Any]:
    """A client's settings by their public names (:data:`FIELDS`): never its secret."""
    return {field: getattr(client, column) for field, column in FIELDS.items()}


def _by(actor: Actor | None) -> dict[str, Any]:
    """The audit fields naming who acted (none: the operator at the CLI)."""
    actor = actor or Actor()
    return {"actor": actor.user_id, "ip": actor.ip, **actor.details()}


def create_client(
    s: Session,
    tenant: Tenant,
    name: str,
    redirect_uris: list[str],
    *,
    public: bool = False,
    post_logout_redirect_uris: list[str] | None = None,
    first_party: bool = True,
    min_level: int = 0,
    id_token_alg: str = "RS256",  # noqa: S107 (an algorithm name)
    admin_api: bool = False,
    default_acr_values: list[str] | None = None,
    refresh_lifetime: int | None = None,
    refresh_idle: int | None = None,
    grant_types: Sequence[str] | None = None,
    access_token_lifetime: int | None = None,
    actor: Actor | None = None,
) -> Registered:
    """Register a client; a confidential one gets a secret, returned here once."""
    default_grants = GRANTS_PUBLIC if public else GRANTS_CONFIDENTIAL
    values = check_settings(
        tenant,
        {
            "name": name,
            "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris or []),
            "public": public,
            "first_party": first_party,
            "admin_api": admin_api,
            "grant_types": list(grant_types if grant_types is not None else default_grants),
            "min_level": min_level,
            "default_acr_values": list(default_acr_values or []),
            "access_token_lifetime": (
                ACCESS_LIFETIME if access_token_lifetime is None else access_token_lifetime
            ),
            "refresh_lifetime": refresh_lifetime,
            "refresh_idle_lifetime": refresh_idle,
            "id_token_alg": id_token_alg,
        },
    )
    secret = None if public else secrets.token_urlsafe(32)
    client = Client(
        tenant_id=tenant.id,
        client_id=new_client_id(),
        secret_hash=hash_secret(secret) if secret else None,
        created_at=now(),
        **values,
    )
    s.add(client)
    s.flush()
    audit(s, tenant, "client.created", client_id=client.client_id, name=client.name,
          public=public, admin_api=admin_api, **_by(actor))  # fmt: skip
    return Registered(client, secret)


def update_client(
    s: Session, tenant: Tenant, client: Client, changes: dict[str, Any], actor: Actor | None = None
) -> Registered:
    """Change some of a client's settings (:data:`FIELDS`), validated exactly as at creation.

    A public client made confidential gets a new secret, returned here once; a confidential
    one made public loses its secret. The audit event names the changed fields."""
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise DirectoryError(f"unknown client setting(s): {', '.join(unknown)[:200]}")
    before = settings_of(client)
    values = check_settings(tenant, {**before, **changes})
    changed = sorted(f for f, column in FIELDS.items() if values[column] != before[f])
    for column, value in values.items():
        setattr(client, column, value)
    secret = None
    if "public" in changed:
        secret = None if client.public else secrets.token_urlsafe(32)
        client.secret_hash = hash_secret(secret) if secret else None
    if changed:
        audit(s, tenant, "client.updated", client_id=client.client_id, changed=changed,
              **_by(actor))  # fmt: skip
    return Registered(client, secret)


def find_client(s: Session, tenant: Tenant, client_id: str) -> Client | None:
    return s.scalar(
        select(Client).where(Client.tenant_id == tenant.id, Client.client_id == client_id)
    )


def cached_client(s: Session, config: ConfigCache, tenant: Tenant, client_id: str) -> Client | None:
    """The client as :func:`find_client` finds it, from the configuration cache: a detached
    copy of its own for this request, to read (idp.config_cache)."""
    return config.row(("client", tenant.id, client_id), Client,
                      lambda: find_client(s, tenant, client_id))  # fmt: skip


def require_client(s: Session, tenant: Tenant, client_id: str) -> Client:
    client = find_client(s, tenant, client_id)
    if client is None:
        raise DirectoryError(f"no client {client_id!r} in tenant {tenant.slug!r}")
    return client


def rotate_secret(
    s: Session, tenant: Tenant, client: Client, actor: Actor | None = None
) -> Registered:
    """A new secret, returned here once; the old one stops working at once."""
    if client.public:
        raise DirectoryError(f"client {client.client_id!r} is public: it has no secret")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_secret(secret)
    audit(s, tenant, "client.secret_rotated", client_id=client.client_id, **_by(actor))
    return Registered(client, secret)


def delete_client(s: Session, tenant: Tenant, client: Client, actor: Actor | None = None) -> int:
    """Remove the client and end its token families (its refresh tokens stop working; the
    users' sessions at this IdP stay). Returns how many families ended."""
    live = list(
        s.scalars(
            select(Grant.gid).where(
                Grant.tenant_id == tenant.id,
                Grant.client_id == client.client_id,
                Grant.revoked_at.is_(None),
            )
        )
    )
    if live:
        s.execute(update(Grant).where(Grant.gid.in_(live)).values(revoked_at=now()))
    audit(s, tenant, "client.deleted", client_id=client.client_id, name=client.name,
          grants_revoked=len(live), **_by(actor))  # fmt: skip
    s.delete(client)
    return len(live)


def list_clients(s: Session, tenant: Tenant) -> list[Client]:
    return list(s.scalars(select(Client).where(Client.tenant_id == tenant.id).order_by(Client.id)))


class OAuthClient(rfc6749.ClientMixin):  # authlib ships no type hints
    """authlib's view of a registered :class:`Client`."""

    def __init__(self, row: Client) -> None:
        self.row = row
        self.client_id = row.client_id

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # redirect_uri is required (OpenID Connect Core 1.0 3.1.2.1)

    def get_allowed_scope(self, scope: str | None) -> str:
        admin = (
            [scope_claims.ADMIN_SCOPE, scope_claims.ADMIN_READ_SCOPE] if self.row.admin_api else []
        )
        allowed = [*scope_claims.SCOPES, *admin]
        return " ".join(s for s in scope_claims.split(scope) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris  # exact match, RFC 9700 4.1.3

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none" if self.row.public else method in CLIENT_AUTH

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types
