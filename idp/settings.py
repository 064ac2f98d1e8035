"""Settings: idp/config/defaults.toml, then ``IDP_*`` environment variables, then test overrides."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Everything the app reads at run time lives inside the package, so a wheel works anywhere.
PACKAGE = Path(__file__).resolve().parent
DEFAULTS_FILE = PACKAGE / "config" / "defaults.toml"


class SettingsError(Exception):
    """A setting is missing, malformed or unsafe; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    """Every setting. The defaults are in idp/config/defaults.toml, the one place they are written
    (``load`` refuses a file that lacks one or names an unknown one)."""

    env: str
    base_url: str
    database_url: str
    redis_url: str
    secret_key: str
    data_key: str
    instance_path: str
    log_level: str
    session_idle_timeout: int
    session_absolute_timeout: int
    flow_ttl: int
    reauth_window: int
    argon2_memory_kib: int
    argon2_time_cost: int
    argon2_parallelism: int
    throttle_free_attempts: int
    throttle_max_delay: int
    throttle_lock_after: int
    throttle_ip_limit: int
    throttle_ip_window: int
    max_form_bytes: int
    trusted_proxies: int
    sms_sender: str
    sms_webhook_url: str
    sms_webhook_token: str
    twilio_account_sid: str
    twilio_auth_token: str
    twilio_from: str
    mail_sender: str
    mail_from: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    smtp_username: str
    smtp_password: str
    saml_clock_skew: int
    node_name: str
    redis_sentinels: str
    redis_master_name: str
    redis_sentinel_password: str
    redis_tls_ca: str
    redis_timeout: int
    db_pool_size: int
    db_max_overflow: int
    db_pool_timeout: int
    db_pool_recycle: int
    db_connect_timeout: int
    db_statement_timeout_ms: int
    metrics_token: str
    log_format: str
    access_log: str
    outbox_worker: str
    outbox_poll_interval: int
    outbox_max_attempts: int

    @property
    def dev(self) -> bool:
        return self.env == "development"

    @property
    def shared_store(self) -> bool:
        """Redis (one URL, or Sentinel) rather than the in-process store."""
        return bool(self.redis_url or self.redis_sentinels)

    @property
    def https(self) -> bool:
        return urlsplit(self.base_url).scheme == "https"

    @property
    def instance_dir(self) -> Path:
        path = Path(self.instance_path)
        # Relative to the working directory, as for any installed command.
        return path.resolve()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.instance_dir / 'stepwise.db'}"

    def problems(self) -> list[str]:
        """Reasons these settings are unsafe or invalid; empty when they are fine."""
        out = []
        if self.env not in ("production", "development"):
            out.append("IDP_ENV must be 'production' or 'development'")
        parts = urlsplit(self.base_url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            out.append("IDP_BASE_URL must be an absolute http(s) URL without query or fragment")
        if (
            self.session_idle_timeout < 60
            or self.session_absolute_timeout < self.session_idle_timeout
        ):
            out.append("session timeouts: idle must be >= 60 s and absolute >= idle")
        if not 30 <= self.reauth_window <= 3600:
            out.append("IDP_REAUTH_WINDOW must be between 30 and 3600 seconds")
        out.extend(self._delivery_problems())
        out.extend(self._operations_problems())
        if not self.dev:
            if len(self.secret_key) < 32:
                out.append(
                    "IDP_SECRET_KEY must be set to at least 32 random characters in production"
                )
            if not _valid_data_key(self.data_key):
                out.append(
                    "IDP_DATA_KEY must be set to 32 random bytes in base64url in production "
                    "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
            if not self.https:
                out.append(
                    "IDP_BASE_URL must use https in production (cookies are Secure only then)"
                )
        return out

    def _operations_problems(self) -> list[str]:
        out = []
        if self.log_format not in ("text", "json"):
            out.append("IDP_LOG_FORMAT must be text or json")
        if self.access_log not in ("off", "on"):
            out.append("IDP_ACCESS_LOG must be off or on")
        if self.outbox_worker not in ("off", "on"):
            out.append("IDP_OUTBOX_WORKER must be off or on")
        if self.outbox_poll_interval < 1 or self.outbox_max_attempts < 1:
            out.append("IDP_OUTBOX_POLL_INTERVAL and IDP_OUTBOX_MAX_ATTEMPTS must be at least 1")
        if self.redis_timeout < 1:
            out.append("IDP_REDIS_TIMEOUT must be at least 1 second")
        if min(self.db_pool_size, self.db_pool_timeout, self.db_connect_timeout) < 1:
            out.append("IDP_DB_POOL_SIZE, _POOL_TIMEOUT and _CONNECT_TIMEOUT must be at least 1")
        if self.db_max_overflow < 0 or self.db_statement_timeout_ms < 0:
            out.append("IDP_DB_MAX_OVERFLOW and IDP_DB_STATEMENT_TIMEOUT_MS cannot be negative")
        if self.metrics_token and len(self.metrics_token) < 16:
            out.append("IDP_METRICS_TOKEN must be at least 16 characters when set")
        return out

    def _delivery_problems(self) -> list[str]:
        out = []
        if self.sms_sender not in ("", "console", "webhook", "twilio"):
            out.append("IDP_SMS_SENDER must be empty, console, webhook or twilio")
        if self.mail_sender not in ("", "console", "smtp"):
            out.append("IDP_MAIL_SENDER must be empty, console or smtp")
        if not self.dev and "console" in (self.sms_sender, self.mail_sender):
            out.append("the console SMS/mail sender prints codes: development only (IDP_ENV)")
        if self.sms_sender == "webhook" and urlsplit(self.sms_webhook_url).scheme not in (
            "http",
            "https",
        ):
            out.append("IDP_SMS_WEBHOOK_URL must be an http(s) URL for the webhook sender")
        twilio = (self.twilio_account_sid, self.twilio_auth_token, self.twilio_from)
        if self.sms_sender == "twilio" and not all(twilio):
            out.append("the twilio sender needs IDP_TWILIO_ACCOUNT_SID, _AUTH_TOKEN and _FROM")
        if self.mail_sender == "smtp" and not (self.smtp_host and self.mail_from):
            out.append("the smtp sender needs IDP_SMTP_HOST and IDP_MAIL_FROM")
        if self.smtp_security not in ("starttls", "tls", "none"):
            out.append("IDP_SMTP_SECURITY must be starttls, tls or none")
        return out


def _coerce(name: str, raw: Any, kind: Any) -> Any:
    if kind in (int, "int"):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"IDP_{name.upper()} must be a whole number, not {raw!r}") from None
    return str(raw)


def load(
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    defaults: Path = DEFAULTS_FILE,
) -> Settings:
    """Build settings from the defaults file, the environment and ``overrides``."""
    environ = dict(os.environ if environ is None else environ)
    try:
        values: dict[str, Any] = tomllib.loads(defaults.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read the defaults file {defaults}: {exc}") from None
    known = {f.name: f.type for f in fields(Settings)}
    unknown, missing = set(values) - set(known), set(known) - set(values)
    if unknown:
        raise SettingsError(f"unknown setting(s) in {defaults}: {', '.join(sorted(unknown))}")
    if missing:
        raise SettingsError(f"no default in {defaults} for: {', '.join(sorted(missing))}")
    for name in known:
        env_name = f"IDP_{name.upper()}"
        if env_name in environ:
            values[name] = environ[env_name]
    values.update(overrides or {})
    settings = Settings(**{k: _coerce(k, v, known[k]) for k, v in values.items() if k in known})
    if settings.dev and not settings.secret_key:
        settings = replace(
            settings, secret_key=_dev_secret(settings.instance_dir, "dev-secret-key", 48)
        )
    if settings.dev and not settings.data_key:
        settings = replace(
            settings, data_key=_dev_secret(settings.instance_dir, "dev-data-key", 32)
        )
    return settings


def _valid_data_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) == 32
    except (ValueError, binascii.Error):
        return False


def _dev_secret(instance: Path, name: str, nbytes: int) -> str:
    """A development secret kept in instance/ so sessions and encrypted data survive restarts."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(nbytes))
    return path.read_text().strip()
