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
from dataclasses import dataclass
from urllib.parse import urlsplit

from authlib.oauth2 import rfc6749
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.directory import DirectoryError, audit, now
from idp.oidc import acr
from idp.oidc import claims as scope_claims
from idp.store.models import Client, Tenant

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
GRANTS_CONFIDENTIAL = ["authorization_code", "refresh_token", "client_credentials"]
GRANTS_PUBLIC = ["authorization_code", "refresh_token"]
MAX_URIS = 20
DAY = 24 * 3600
# A refresh-token family's absolute and idle lifetimes (RFC 9700 4.14.2), per client.
REFRESH_LIFETIME = 30 * DAY
REFRESH_IDLE = 14 * DAY
MAX_REFRESH_LIFETIME = 365 * DAY
CLIENT_AUTH = ["client_secret_basic", "client_secret_post"]  # a confidential client's (2.3.1)


def check_redirect_uri(uri: str) -> str:
    """Return ``uri`` or raise :class:`DirectoryError` saying why it cannot be registered."""
    if len(uri) > 2000 or any(c.isspace() or ord(c) < 32 for c in uri):
        raise DirectoryError(f"redirect URI is too long or has spaces: {uri[:80]!r}")
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
) -> Registered:
    name = name.strip()
    if not 0 < len(name) <= 200:
        raise DirectoryError("client name must be 1-200 characters")
    if not redirect_uris and not admin_api:
        raise DirectoryError("a client needs at least one --redirect-uri")
    if admin_api and public:
        raise DirectoryError("an --admin-api client needs a secret: it cannot be --public")
    uris = [check_redirect_uri(u) for u in redirect_uris]
    logout_uris = [check_redirect_uri(u) for u in post_logout_redirect_uris or []]
    if len(uris) > MAX_URIS or len(logout_uris) > MAX_URIS:
        raise DirectoryError(f"at most {MAX_URIS} redirect URIs of each kind")
    if id_token_alg not in ("RS256", "ES256"):
        raise DirectoryError("--id-token-alg must be RS256 or ES256")
    if not 0 <= min_level <= 3:
        raise DirectoryError("--min-level must be 0, 1, 2 or 3")
    known = acr.table(tenant.acr_levels)
    unknown = [v for v in default_acr_values or [] if v not in known]
    if unknown:
        raise DirectoryError(f"unknown acr value(s) for --default-acr: {', '.join(unknown)}")
    refresh_ttl, idle_ttl = check_refresh_lifetimes(refresh_lifetime, refresh_idle)
    secret = None if public else secrets.token_urlsafe(32)
    client = Client(
        tenant_id=tenant.id,
        client_id=new_client_id(),
        name=name,
        secret_hash=hash_secret(secret) if secret else None,
        public=public,
        first_party=first_party,
        redirect_uris=list(dict.fromkeys(uris)),
        post_logout_redirect_uris=list(dict.fromkeys(logout_uris)),
        grant_types=GRANTS_PUBLIC if public else GRANTS_CONFIDENTIAL,
        min_level=min_level,
        id_token_alg=id_token_alg,
        admin_api=admin_api,
        default_acr_values=list(default_acr_values or []),
        refresh_token_ttl=refresh_ttl,
        refresh_idle_ttl=idle_ttl,
        created_at=now(),
    )
    s.add(client)
    s.flush()
    audit(s, tenant, "client.created", client_id=client.client_id, public=public,
          admin_api=admin_api)  # fmt: skip
    return Registered(client, secret)


def find_client(s: Session, tenant: Tenant, client_id: str) -> Client | None:
    return s.scalar(
        select(Client).where(Client.tenant_id == tenant.id, Client.client_id == client_id)
    )


def require_client(s: Session, tenant: Tenant, client_id: str) -> Client:
    client = find_client(s, tenant, client_id)
    if client is None:
        raise DirectoryError(f"no client {client_id!r} in tenant {tenant.slug!r}")
    return client


def rotate_secret(s: Session, tenant: Tenant, client: Client) -> Registered:
    if client.public:
        raise DirectoryError(f"client {client.client_id!r} is public: it has no secret")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_secret(secret)
    audit(s, tenant, "client.secret_rotated", client_id=client.client_id)
    return Registered(client, secret)


def delete_client(s: Session, tenant: Tenant, client: Client) -> None:
    audit(s, tenant, "client.deleted", client_id=client.client_id)
    s.delete(client)


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
