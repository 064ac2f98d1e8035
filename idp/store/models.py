"""Persistent models. Times are Unix seconds (UTC), the same unit the flow engine uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from factors.kinds import ALLOWABLE


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    """A tenant: its own issuer, users, applications and MFA policy."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    mfa_mode: Mapped[str] = mapped_column(String(16), default="off")
    mfa_scope: Mapped[str] = mapped_column(String(16), default="all")
    # "next_login": a policy change waits for each user's next login; "immediate": sessions
    # and token families below the new requirement must step up (idp.mfa).
    mfa_apply: Mapped[str] = mapped_column(String(16), default="next_login")
    mfa_factors: Mapped[list[str]] = mapped_column(
        JSON,
        default=lambda: list(ALLOWABLE),  # every second factor allowed
    )
    mfa_reoffer_days: Mapped[int] = mapped_column(default=7)  # Optional mode: offer again after
    totp_two_codes: Mapped[bool] = mapped_column(default=False)  # activate TOTP with two codes
    # A WebAuthn key whose sign count went back is refused (False: flagged and notified only).
    webauthn_block_cloned: Mapped[bool] = mapped_column(default=True)
    admins_phishing_resistant: Mapped[bool] = mapped_column(default=False)  # level 3 for admins
    # acr values this tenant adds to the default table (idp.oidc.acr), value -> level 1-3.
    acr_levels: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    audit_retention_days: Mapped[int] = mapped_column(default=365)  # idp.audit_log.prune
    # Accounts (issue 15). Self-service sign-up, off by default, optionally only for these
    # email domains (empty: any domain).
    signup_enabled: Mapped[bool] = mapped_column(default=False)
    signup_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Users may type their verified email address where the login page asks for a username.
    login_by_email: Mapped[bool] = mapped_column(default=False)
    # Minimum password length for a user whose password is their only factor (NIST SP
    # 800-63B-4 3.1.1.2: 15); users with a second factor need 8.
    password_min_alone: Mapped[int] = mapped_column(default=15)
    # "Don't ask again on this browser": 0 (off) or the days a remembered browser lasts (<= 90).
    remember_days: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)


class User(Base):
    """An account of one tenant. ``username_norm`` is the NFKC-casefolded form used to log in."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "username_norm", name="uq_users_tenant_username"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(150))
    username_norm: Mapped[str] = mapped_column(String(150))
    # The OpenID Connect ``sub``: random, never reassigned, stable per user and tenant.
    sub: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16), default="member")
    status: Mapped[str] = mapped_column(String(16), default="active")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    mfa_required: Mapped[bool] = mapped_column(default=False)
    mfa_enabled: Mapped[bool] = mapped_column(default=False)
    mfa_skipped_at: Mapped[int | None] = mapped_column(BigInteger)  # Optional mode's Skip
    # An admin reset: second factors verified before it no longer count ("immediate" policy).
    mfa_reset_at: Mapped[int | None] = mapped_column(BigInteger)
    mfa_last_factor: Mapped[str] = mapped_column(String(32), default="")  # offered first
    # WebAuthn user handle: random, stable, never the username (WebAuthn L3 14.6.1).
    webauthn_handle: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Set by an admin unlock; part of the throttle key, so unlocking needs no access to the
    # ephemeral store of the serving processes (works with the in-process store too).
    unlocked_at: Mapped[int | None] = mapped_column(BigInteger)
    # Disable (or sign out everywhere): factors any session verified before it stop counting,
    # so every existing browser session of the user ends (flows.assurance).
    sessions_revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    last_login_at: Mapped[int | None] = mapped_column(BigInteger)
    # Profile (OpenID Connect Core 1.0 section 5.1 standard claims).
    display_name: Mapped[str] = mapped_column(String(200), default="")
    given_name: Mapped[str] = mapped_column(String(100), default="")
    family_name: Mapped[str] = mapped_column(String(100), default="")
    locale: Mapped[str] = mapped_column(String(35), default="")  # BCP 47 language tag
    # True once the user proved they read mail at ``email`` (a link or code sent there).
    email_verified: Mapped[bool] = mapped_column(default=False)
    # ``email`` casefolded, to sign in by email address (Tenant.login_by_email).
    email_norm: Mapped[str] = mapped_column(String(254), default="", index=True)
    # The user's SMS factor (a Credential id) whose number is released as ``phone_number``.
    contact_phone_id: Mapped[int | None] = mapped_column()
    password_changed_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)

    tenant: Mapped[Tenant] = relationship()
    credentials: Mapped[list[Credential]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class Credential(Base):
    """One enrolled factor of a user: a TOTP secret, a WebAuthn key, a phone, an email..."""

    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id", name="uq_credentials_tenant_external"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # WebAuthn: the credential id (base64url), unique per tenant, to find a passkey's owner.
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(1400))
    type: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(100), default="")
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted at rest
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # TOTP: the last accepted time step (codes are single use); WebAuthn: the sign count.
    counter: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)

    user: Mapped[User] = relationship(back_populates="credentials")


class BackupCode(Base):
    """One single-use backup code, stored as a keyed hash (factors.backup)."""

    __tablename__ = "backup_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger)


class AuditEvent(Base):
    """An append-only record of a security-relevant event.

    ``actor_id`` is the signed-in user who acted (a console admin, or the user themself);
    ``actor_client`` the admin API client; neither: the operator at the CLI or the system.
    ``result`` is "success" or "failure" (a failed sign-in or code).
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_tenant_at", "tenant_id", "at"),
        Index("ix_audit_tenant_subject", "tenant_id", "subject_id"),
        Index("ix_audit_tenant_event", "tenant_id", "event"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_client: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16), default="success")
    subject_id: Mapped[int | None] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[int] = mapped_column(BigInteger)


class Client(Base):
    """An OAuth 2.0 / OpenID Connect client (relying party) of one tenant.

    The secret is stored only as a SHA-256 hash: generated secrets carry 256 bits of entropy,
    so a fast hash is the right tool (a slow one would only cost throughput).
    """

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    public: Mapped[bool] = mapped_column(default=False)
    first_party: Mapped[bool] = mapped_column(default=True)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_level: Mapped[int] = mapped_column(default=0)
    access_token_ttl: Mapped[int] = mapped_column(default=600)
    # A refresh-token family's absolute lifetime, from the sign-in (offline_access too), and
    # its idle lifetime: a family not refreshed for that long ends (RFC 9700 4.14.2).
    refresh_token_ttl: Mapped[int] = mapped_column(default=30 * 24 * 3600)
    refresh_idle_ttl: Mapped[int] = mapped_column(default=14 * 24 * 3600)
    id_token_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    # May obtain ``stepwise:admin`` client-credentials tokens for the JSON admin API.
    admin_api: Mapped[bool] = mapped_column(default=False)
    # Used when a request asks for no acr (OpenID Connect Dynamic Registration 1.0 section 2).
    default_acr_values: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[int] = mapped_column(BigInteger)


class SigningKey(Base):
    """A tenant's JWS signing key. The private key is encrypted at rest (idp.crypto).

    ``active`` keys sign; retired keys stay published in the JWKS until ``publish_until`` so
    every token they signed can still be verified (issue 3: key rotation).
    """

    __tablename__ = "signing_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "kid", name="uq_signing_keys_tenant_kid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kid: Mapped[str] = mapped_column(String(64))
    alg: Mapped[str] = mapped_column(String(16))
    private_key: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    publish_until: Mapped[int | None] = mapped_column(BigInteger)


class SamlKey(Base):
    """A tenant's SAML signing key and self-signed certificate (published in metadata)."""

    __tablename__ = "saml_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    private_key: Mapped[bytes] = mapped_column(LargeBinary)  # encrypted (idp.crypto)
    cert_pem: Mapped[str] = mapped_column(Text)
    # "next" (published in metadata, not signing yet), "active" (signs), "retired"
    state: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[int] = mapped_column(BigInteger)


class ServiceProvider(Base):
    """A SAML 2.0 service provider of one tenant, from its metadata and per-SP settings."""

    __tablename__ = "saml_sps"
    __table_args__ = (UniqueConstraint("tenant_id", "entity_id", name="uq_saml_sps_entity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    entity_id: Mapped[str] = mapped_column(String(1024))
    name: Mapped[str] = mapped_column(String(200))
    acs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    slo: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    signing_certs: Mapped[list[str]] = mapped_column(JSON, default=list)
    encryption_cert: Mapped[str | None] = mapped_column(Text)
    authn_requests_signed: Mapped[bool] = mapped_column(default=False)
    want_assertions_signed: Mapped[bool] = mapped_column(default=True)
    sign_response: Mapped[bool] = mapped_column(default=False)
    encrypt_assertion: Mapped[bool] = mapped_column(default=False)
    nameid_format: Mapped[str] = mapped_column(String(200))
    attributes: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_level: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Grant(Base):
    """What one authorization code produced: a token family (RFC 6749 10.5, RFC 9700 4.14).

    Access and refresh tokens name their grant, so revoking it (code reuse, refresh token
    reuse, RFC 7009 revocation, logout) ends every token of the family at once. The
    authentication context the tokens carry is frozen here: a refresh never raises it.
    """

    __tablename__ = "oauth_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    gid: Mapped[str] = mapped_column(String(43), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(1000))
    acr: Mapped[str] = mapped_column(String(200))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    sid: Mapped[str] = mapped_column(String(64), index=True)
    # The sign-in met the tenant policy's "second factor at every login" through a
    # remembered browser (never a factor: ``acr``/``amr`` say what was verified).
    remembered: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class RefreshToken(Base):
    """One refresh token of a grant, stored as a SHA-256 hash; ``used_at`` marks rotation."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_grants.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger)

    grant: Mapped[Grant] = relationship(lazy="joined")  # always needed with the token


class Consent(Base):
    """Scopes a user granted to a third-party client, remembered per user and client."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id", name="uq_consents_user_client"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[int] = mapped_column(BigInteger)


class UserSession(Base):
    """A browser sign-in, recorded for the console and the account page.

    The session itself lives in the ephemeral store (idp.sessions); this row keys on its
    OpenID Connect ``sid`` and says when, from where and at what level the user signed in.
    A session counts as live while ``ended_at`` is unset, it began after the user's
    ``sessions_revoked_at``, and its absolute lifetime has not passed.
    """

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    level: Mapped[int] = mapped_column(default=0)
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)


class UserLink(Base):
    """A one-time emailed link (set or reset a password, verify an email address); only an
    HMAC of its token is stored. ``target``: the new email address a verification is for."""

    __tablename__ = "user_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(254))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger)


class RememberedBrowser(Base):
    """A browser where the user ticked "Don't ask again on this browser" after a second factor.

    It satisfies the tenant policy's "second factor at every login" for this user on this
    browser until ``expires_at``, and nothing else: it is never a factor. The cookie holds a
    random token; only its HMAC is stored. ``verified_at`` is the last real second factor
    verified on this browser (a ``max_age`` older than that still asks for one).
    """

    __tablename__ = "remembered_browsers"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    verified_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class OutboxMessage(Base):
    """A security notification waiting for the worker (idp.outbox, idp.outbox_worker).

    Written in the transaction of the change it reports, so a rolled-back change sends
    nothing and a committed one is never lost. ``recipient`` is encrypted at rest (an email
    address or a phone number); ``subject`` and ``body`` hold no code, link or secret.
    ``claimed_until`` is a worker's lease on the row while it delivers it.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))  # mail | sms
    event: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger)
    claimed_until: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)
    sent_at: Mapped[int | None] = mapped_column(BigInteger)
