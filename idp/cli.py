"""The ``idp`` command (DESIGN.md "Stable interfaces"). A user error exits 2 with one line."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from idp import account_settings, audit_cli, clock, directory
from idp.app import build_services
from idp.mfa import admin as mfa_admin
from idp.oidc import acr, acr_table, clients, keys
from idp.saml import keys as saml_keys
from idp.saml import sps
from idp.services import Services
from idp.settings import SettingsError, load
from idp.store.db import SchemaOutdated
from idp.store.models import Tenant


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _services() -> Services:
    return build_services(load())


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"idp: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Stepwise identity provider."""


@cli.command()
def init() -> None:
    """Create or upgrade the database schema. Safe to run again."""
    from idp.store.migrate import init_lock, upgrade

    svc = _services()
    # Nodes that start together run this at once: one upgrades, the others wait, then find
    # nothing to do.
    with init_lock(svc.db.engine):
        upgrade(svc.db.engine)
        with svc.db.session() as s:
            for t in directory.list_tenants(s):
                keys.ensure_keys(s, svc.cipher, t)
    click.echo(f"database ready: {svc.db.engine.url.render_as_string(hide_password=True)}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="worker processes [default: CPU count; 1 with the in-process store]",
)
@click.option(
    "--no-worker",
    is_flag=True,
    help="do not start the notification worker here (run `idp worker` elsewhere)",
)
def serve(host: str, port: int, workers: int | None, no_worker: bool) -> None:
    """Serve Stepwise with granian (idp/config/granian.toml), and the notification worker
    unless --no-worker or IDP_OUTBOX_WORKER=off."""
    from idp.server import run

    svc = _services()
    if not svc.settings.shared_store:
        if workers not in (None, 1):
            raise CliError(
                "the in-process store serves one process: set IDP_REDIS_URL for --workers > 1"
            )
        workers = 1
    from idp import logs

    # The parent's own lines (start-up, schema warnings) in the operator's format too; the
    # access log belongs to the workers.
    logs.configure(dataclasses.replace(svc.settings, access_log="off"))
    run(svc, host, port, workers or (os.cpu_count() or 1), outbox_worker=not no_worker)


@cli.command("reload-config")
def reload_config() -> None:
    """Make every node read tenants, clients and keys from the database again: after a change
    made outside idp (psql, a restore). Changes made through idp apply at once anyway."""
    _services().config.version.bump()
    click.echo("configuration caches emptied on every node")


@cli.command()
def worker() -> None:
    """Deliver queued notifications (security emails and SMS) until stopped (SIGTERM)."""
    from idp.outbox_worker import run_forever

    run_forever(_services())


@cli.group()
def tenant() -> None:
    """Manage tenants."""


@tenant.command("create")
@click.argument("slug")
@click.option("--name", help="display name [default: the slug]")
@click.option(
    "--mfa", type=click.Choice(["off", "optional", "required"]), default="off", show_default=True
)
def tenant_create(slug: str, name: str | None, mfa: str) -> None:
    """Create tenant SLUG (its issuer is {base}/t/SLUG)."""
    svc = _services()
    with svc.db.session() as s:
        t = directory.create_tenant(s, slug, name, mfa)
        keys.ensure_keys(s, svc.cipher, t)
    click.echo(f"tenant {t.slug} created: {svc.settings.base_url}/t/{t.slug}")


@tenant.command("list")
def tenant_list() -> None:
    """List tenants."""
    with _services().db.session() as s:
        for t in directory.list_tenants(s):
            click.echo(f"{t.slug}\t{t.name}\tmfa={t.mfa_mode}\tusers={directory.count_users(s, t)}")


@tenant.command("set-mfa")
@click.argument("tenant_slug", metavar="TENANT")
@click.option("--mode", type=click.Choice(["off", "optional", "required"]))
@click.option("--scope", type=click.Choice(["all", "admins"]), help="whom the mode covers")
@click.option(
    "--apply",
    "apply_",
    type=click.Choice(["next-login", "immediate"]),
    help="when a stricter policy reaches signed-in users",
)
@click.option("--factors", help="comma-separated: totp,webauthn,sms,email")
@click.option("--reoffer-days", type=int, help="Optional mode: offer enrolment again after")
@click.option("--totp-two-codes/--totp-one-code", default=None, help="codes to activate TOTP")
@click.option(
    "--admins-phishing-resistant/--admins-any-mfa",
    default=None,
    help="admins and owners need a security key or passkey (level 3)",
)
@click.option(
    "--block-cloned-keys/--flag-cloned-keys",
    default=None,
    help="refuse a WebAuthn key whose sign count went back (default: flag and notify)",
)
def tenant_set_mfa(
    tenant_slug: str,
    mode: str | None,
    scope: str | None,
    apply_: str | None,
    factors: str | None,
    reoffer_days: int | None,
    totp_two_codes: bool | None,
    admins_phishing_resistant: bool | None,
    block_cloned_keys: bool | None,
) -> None:
    """Set TENANT's MFA policy; with no options, print it."""
    changes: dict[str, Any] = {
        "mode": mode,
        "scope": scope,
        "apply": apply_.replace("-", "_") if apply_ else None,
        "factors": [f.strip() for f in factors.split(",") if f.strip()] if factors else None,
        "reoffer_days": reoffer_days,
        "totp_two_codes": totp_two_codes,
        "admins_phishing_resistant": admins_phishing_resistant,
        "webauthn_block_cloned": block_cloned_keys,
    }
    with _services().db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        policy = mfa_admin.set_policy(s, t, _given(changes), directory.Actor())
    _echo_settings(policy)


def _given(changes: dict[str, Any]) -> dict[str, Any]:
    """The options given on the command line (None: not given)."""
    return {k: v for k, v in changes.items() if v is not None}


def _echo_settings(settings: dict[str, Any]) -> None:
    """``key=value`` pairs on one line; lists comma-separated."""
    click.echo(" ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                        for k, v in settings.items()))  # fmt: skip


@tenant.command("set-accounts")
@click.argument("tenant_slug", metavar="TENANT")
@click.option("--signup", type=click.Choice(["on", "off"]), help="self-service sign-up")
@click.option(
    "--signup-domains",
    metavar="DOMAINS",
    help="comma-separated email domains sign-up is open to; empty: any domain",
)
@click.option("--login-by-email", type=click.Choice(["on", "off"]), help="sign in by email too")
@click.option(
    "--password-min-alone",
    type=int,
    metavar="N",
    help="minimum password length when it is the only factor (8-64)",
)
@click.option("--remember-days", type=int, metavar="N", help="remember browsers (0: off, 1-90)")
def tenant_set_accounts(
    tenant_slug: str,
    signup: str | None,
    signup_domains: str | None,
    login_by_email: str | None,
    password_min_alone: int | None,
    remember_days: int | None,
) -> None:
    """Set TENANT's account settings; with no options, print them."""
    changes: dict[str, Any] = {
        "signup_enabled": None if signup is None else signup == "on",
        "signup_domains": (
            None if signup_domains is None else account_settings.parse_domains(signup_domains)
        ),
        "login_by_email": None if login_by_email is None else login_by_email == "on",
        "password_min_alone": password_min_alone,
        "remember_days": remember_days,
    }
    with _services().db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        settings = account_settings.set_settings(s, t, _given(changes), directory.Actor())
    _echo_settings(settings)


@tenant.command("acr")
@click.argument("tenant_slug", metavar="TENANT")
@click.option("--add", "adds", multiple=True, metavar="VALUE=LEVEL", help="map an acr value")
@click.option("--remove", "removes", multiple=True, metavar="VALUE", help="drop an added value")
def tenant_acr(tenant_slug: str, adds: tuple[str, ...], removes: tuple[str, ...]) -> None:
    """Show TENANT's acr table (defaults and additions); add or remove entries."""
    with _services().db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        table: dict[str, int] = {}
        for entry in adds:
            value, _, level = entry.rpartition("=")
            if not acr.VALUE_RE.match(value) or level not in ("1", "2", "3"):
                raise CliError(f"--add {entry!r}: expected VALUE=1|2|3, VALUE without spaces")
            table[value] = int(level)
        acr_table.change_table(s, t, directory.Actor(), add=table, remove=removes)
        levels = acr.table(t.acr_levels)
    for name, number in sorted(levels.items(), key=lambda kv: (kv[1], kv[0])):
        click.echo(f"{number}\t{name}\t{'added' if name not in acr.LEVELS else 'default'}")


@cli.group()
def sp() -> None:
    """Manage SAML service providers."""


@sp.command("add")
@click.argument("tenant_slug", metavar="TENANT")
@click.option(
    "--metadata",
    "metadata",
    required=True,
    type=click.Path(dir_okay=False),
    help="the SP's SAML metadata (XML file)",
)
@click.option("--name", help="display name [default: the entityID]")
@click.option(
    "--nameid",
    type=click.Choice(["persistent", "email", "transient", "unspecified"]),
    default="persistent",
    show_default=True,
)
@click.option("--sign-response", is_flag=True, help="sign the Response too, not only the Assertion")
@click.option("--encrypt", is_flag=True, help="encrypt assertions for the SP (AES-256-GCM)")
@click.option(
    "--attributes",
    default="username,email,role",
    show_default=True,
    help="attributes to release (comma-separated): username, email, role, displayName, "
    "givenName, sn, mail, memberOf",
)
@click.option("--min-level", type=click.IntRange(0, 3), default=0, show_default=True)
def sp_add(
    tenant_slug: str,
    metadata: str,
    name: str | None,
    nameid: str,
    sign_response: bool,
    encrypt: bool,
    attributes: str,
    min_level: int,
) -> None:
    """Register a service provider of TENANT from its metadata."""
    try:
        data = Path(metadata).read_bytes()
    except OSError as exc:
        raise CliError(f"--metadata: {exc.strerror}: {metadata}") from None
    svc = _services()
    with svc.db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        saml_keys.ensure_key(s, svc.cipher, t)
        added = sps.add_sp(
            s,
            t,
            data,
            name=name,
            nameid=nameid,
            sign_response=sign_response,
            encrypt=encrypt,
            min_level=min_level,
            attributes=[a.strip() for a in attributes.split(",") if a.strip()],
        )
    click.echo(
        f"SP {added.entity_id} added to {tenant_slug}; IdP metadata: "
        f"{svc.settings.base_url}/t/{tenant_slug}/saml/metadata"
    )


@sp.command("list")
@click.argument("tenant_slug", metavar="TENANT")
def sp_list(tenant_slug: str) -> None:
    """List the service providers of TENANT."""
    with _services().db.session() as s:
        for row in sps.list_sps(s, directory.require_tenant(s, tenant_slug)):
            flags = [f"min_level={row.min_level}", f"nameid={row.nameid_format.rsplit(':', 1)[1]}"]
            flags += ["signed-requests"] if row.authn_requests_signed else []
            flags += ["encrypt"] if row.encrypt_assertion else []
            click.echo(f"{row.entity_id}\t{row.name}\t{' '.join(flags)}")


@sp.command("delete")
@click.argument("tenant_slug", metavar="TENANT")
@click.argument("entity_id")
def sp_delete(tenant_slug: str, entity_id: str) -> None:
    """Remove the service provider ENTITY_ID (re-add it to change its settings)."""
    with _services().db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        found = sps.find_sp(s, t, entity_id)
        if found is None:
            raise CliError(f"no service provider {entity_id!r} in tenant {tenant_slug!r}")
        sps.delete_sp(s, t, found)
    click.echo(f"SP {entity_id} deleted from {tenant_slug}")


@cli.group()
def saml() -> None:
    """Manage the tenants' SAML identity provider."""


@saml.command("rotate-key")
@click.argument("tenant_slug", metavar="TENANT")
def saml_rotate_key(tenant_slug: str) -> None:
    """Publish a next signing certificate; run again (after SPs refreshed metadata) to sign
    with it."""
    svc = _services()
    with svc.db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        step = saml_keys.rotate(s, svc.cipher, t)
    if step == "next":
        click.echo(
            "next SAML certificate published in metadata; run again to start signing with it"
        )
    else:
        click.echo("the next SAML certificate now signs; the old one is retired")


@cli.group()
def user() -> None:
    """Manage users."""


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("--password-stdin: no password on standard input")
        return line.rstrip("\r\n")
    if sys.stdin.isatty():
        value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return value
    return None


@user.command("create")
@click.argument("tenant_slug", metavar="TENANT")
@click.argument("username")
@click.option("--email", required=True)
@click.option(
    "--role", type=click.Choice(["member", "admin", "owner"]), default="member", show_default=True
)
@click.option(
    "--password-stdin", is_flag=True, help="read the password from the first line of stdin"
)
def user_create(
    tenant_slug: str, username: str, email: str, role: str, password_stdin: bool
) -> None:
    """Create USERNAME in TENANT."""
    password = _read_password(password_stdin)
    svc = _services()
    with svc.db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        u = directory.create_user(s, svc.passwords, t, username, email, role, password)
    note = "" if password else " (no password set: the user cannot sign in with one yet)"
    click.echo(f"user {u.username} created in {tenant_slug}{note}")


@user.command("list")
@click.argument("tenant_slug", metavar="TENANT")
def user_list(tenant_slug: str) -> None:
    """List the users of TENANT."""
    with _services().db.session() as s:
        for row in directory.list_users(s, directory.require_tenant(s, tenant_slug)):
            click.echo(f"{row.username}\t{row.email}\t{row.role}\t{row.status}")


def _user_command(name: str, help_text: str, change: Callable[..., None], done: str) -> None:
    @user.command(name, help=help_text)
    @click.argument("tenant_slug", metavar="TENANT")
    @click.argument("username")
    def _cmd(tenant_slug: str, username: str) -> None:
        with _services().db.session() as s:
            t = directory.require_tenant(s, tenant_slug)
            u = directory.require_user(s, t, username)
            change(s, t, u)
        click.echo(f"user {u.username}: {done}")


_user_command(
    "disable",
    "Disable USERNAME: it can no longer sign in, and its sessions and tokens end at once "
    "(not the tenant's last active owner).",
    lambda s, t, u: directory.set_status(s, t, u, "disabled", directory.Actor()),
    "disabled; sessions and tokens ended",
)
_user_command(
    "enable",
    "Enable USERNAME again after disable.",
    lambda s, t, u: directory.set_status(s, t, u, "active", directory.Actor()),
    "enabled",
)
_user_command(
    "unlock", "Unlock USERNAME after too many failed sign-ins.", directory.unlock_user, "unlocked"
)
_user_command(
    "require-mfa",
    "Require two-step sign-in for USERNAME, whatever the tenant's mode.",
    lambda s, t, u: mfa_admin.require_for_user(s, t, u, True, directory.Actor()),
    "MFA required",
)
_user_command(
    "unrequire-mfa",
    "Stop requiring two-step sign-in for USERNAME (the tenant policy still applies).",
    lambda s, t, u: mfa_admin.require_for_user(s, t, u, False, directory.Actor()),
    "MFA no longer required for this user alone",
)


@user.command("reset-mfa")
@click.argument("tenant_slug", metavar="TENANT")
@click.argument("username")
def user_reset_mfa(tenant_slug: str, username: str) -> None:
    """Remove USERNAME's second factors and backup codes; they enrol again at next login."""
    svc = _services()
    with svc.db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        u = directory.require_user(s, t, username)
        removed = mfa_admin.reset_user(s, svc, t, u, directory.Actor())
    click.echo(f"user {u.username}: MFA reset ({removed} factor(s) removed)")


@user.command("invite")
@click.argument("tenant_slug", metavar="TENANT")
@click.argument("username")
@click.option("--email", required=True)
@click.option(
    "--role", type=click.Choice(["member", "admin", "owner"]), default="member", show_default=True
)
def user_invite(tenant_slug: str, username: str, email: str, role: str) -> None:
    """Create USERNAME in TENANT if missing, and email a link to choose a password (it works
    once, for 7 days). Without a mail sender the link is printed instead."""
    svc = _services()
    with svc.db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        u = directory.find_user(s, t, username)
        if u is None:
            u = directory.create_user(s, svc.passwords, t, username, email, role)
        elif u.email.lower() != email.lower():
            raise CliError(f"user {u.username!r} exists with another email address")
        link = directory.send_set_password_link(s, svc, t, u, directory.Actor())
    if link.emailed:
        click.echo(f"user {u.username}: set-password link emailed to {u.email}")
    else:
        click.echo(f"user {u.username}: no mail sender; give them this link (7 days, once):")
        click.echo(link.url)


@user.command("set-role")
@click.argument("tenant_slug", metavar="TENANT")
@click.argument("username")
@click.argument("role", type=click.Choice(["member", "admin", "owner"]))
def user_set_role(tenant_slug: str, username: str, role: str) -> None:
    """Make USERNAME a member, admin or owner (the last active owner stays one)."""
    with _services().db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        u = directory.require_user(s, t, username)
        directory.set_role(s, t, u, role, directory.Actor())
    click.echo(f"user {u.username}: role {role}")


@user.command("sign-out")
@click.argument("tenant_slug", metavar="TENANT")
@click.argument("username")
def user_sign_out(tenant_slug: str, username: str) -> None:
    """End every session and token family of USERNAME."""
    svc = _services()
    with svc.db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        u = directory.require_user(s, t, username)
        lifetime = svc.settings.session_absolute_timeout
        ended = directory.sign_out_everywhere(s, t, u, directory.Actor(), lifetime)
    click.echo(f"user {u.username}: signed out everywhere ({ended} session(s) ended)")


@user.command("delete")
@click.argument("tenant_slug", metavar="TENANT")
@click.argument("username")
def user_delete(tenant_slug: str, username: str) -> None:
    """Delete USERNAME with its factors, sessions and tokens (not the last active owner)."""
    with _services().db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        u = directory.require_user(s, t, username)
        name = u.username
        directory.delete_user(s, t, u, directory.Actor())
    click.echo(f"user {name} deleted from {tenant_slug}")


@cli.group()
def client() -> None:
    """Manage OpenID Connect clients (relying parties)."""


def _print_registered(reg: clients.Registered, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps({"client_id": reg.client.client_id, "client_secret": reg.client_secret})
        )
        return
    click.echo(f"client_id      {reg.client.client_id}")
    if reg.client_secret:
        click.echo(f"client_secret  {reg.client_secret}   (shown once; only a hash is kept)")


@client.command("create")
@click.argument("tenant_slug", metavar="TENANT")
@click.option("--name", required=True)
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="exact redirect URI (repeat for several; required unless --admin-api)",
)
@click.option("--post-logout-uri", "logout_uris", multiple=True, help="RP-initiated logout target")
@click.option("--public", is_flag=True, help="no secret: a browser or native app using PKCE")
@click.option("--third-party", is_flag=True, help="ask users for consent")
@click.option(
    "--min-level",
    type=click.IntRange(0, 3),
    default=0,
    show_default=True,
    help="minimum assurance level for this client",
)
@click.option(
    "--id-token-alg",
    type=click.Choice(["RS256", "ES256"]),
    default="RS256",
    show_default=True,
    help="signature algorithm of this client's id_tokens",
)
@click.option(
    "--default-acr",
    "default_acr",
    multiple=True,
    help="acr values used when a request asks for none (repeat for several)",
)
@click.option(
    "--refresh-lifetime",
    type=int,
    metavar="SECONDS",
    help="a refresh-token family ends this long after it began [default: 30 days]",
)
@click.option(
    "--refresh-idle",
    type=int,
    metavar="SECONDS",
    help="a family not refreshed for this long ends [default: 14 days, at most the lifetime]",
)
@click.option(
    "--admin-api",
    is_flag=True,
    help="a service client that may call the JSON admin API (client_credentials, "
    "scope stepwise:admin)",
)
@click.option(
    "--json", "as_json", is_flag=True, help='print {"client_id": ..., "client_secret": ...}'
)
def client_create(
    tenant_slug: str,
    name: str,
    redirect_uris: tuple[str, ...],
    logout_uris: tuple[str, ...],
    public: bool,
    third_party: bool,
    min_level: int,
    id_token_alg: str,
    default_acr: tuple[str, ...],
    refresh_lifetime: int | None,
    refresh_idle: int | None,
    admin_api: bool,
    as_json: bool,
) -> None:
    """Register a client of TENANT."""
    with _services().db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        reg = clients.create_client(
            s,
            t,
            name,
            list(redirect_uris),
            public=public,
            post_logout_redirect_uris=list(logout_uris),
            first_party=not third_party,
            min_level=min_level,
            id_token_alg=id_token_alg,
            admin_api=admin_api,
            default_acr_values=list(default_acr),
            refresh_lifetime=refresh_lifetime,
            refresh_idle=refresh_idle,
        )
    _print_registered(reg, as_json)


@client.command("list")
@click.argument("tenant_slug", metavar="TENANT")
def client_list(tenant_slug: str) -> None:
    """List the clients of TENANT."""
    with _services().db.session() as s:
        for c in clients.list_clients(s, directory.require_tenant(s, tenant_slug)):
            kind = "public" if c.public else "confidential"
            click.echo(f"{c.client_id}\t{c.name}\t{kind}\t{' '.join(c.redirect_uris)}")


@client.command("rotate-secret")
@click.argument("tenant_slug", metavar="TENANT")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
def client_rotate(tenant_slug: str, client_id: str, as_json: bool) -> None:
    """Give CLIENT_ID a new secret; the old one stops working at once."""
    with _services().db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        reg = clients.rotate_secret(s, t, clients.require_client(s, t, client_id))
    _print_registered(reg, as_json)


@client.command("delete")
@click.argument("tenant_slug", metavar="TENANT")
@click.argument("client_id")
def client_delete(tenant_slug: str, client_id: str) -> None:
    """Delete CLIENT_ID."""
    with _services().db.session() as s:
        t = directory.require_tenant(s, tenant_slug)
        clients.delete_client(s, t, clients.require_client(s, t, client_id))
    click.echo(f"client {client_id} deleted")


@cli.group("keys")
def keys_group() -> None:
    """Manage tenants' signing keys."""


@keys_group.command("rotate")
@click.argument("tenant_slug", metavar="TENANT")
@click.option("--alg", type=click.Choice(keys.ALGORITHMS), default="RS256", show_default=True)
@click.option(
    "--grace",
    type=click.IntRange(0),
    default=keys.DEFAULT_GRACE,
    show_default=True,
    help="seconds the retired key stays published (longer than any token lives)",
)
def keys_rotate(tenant_slug: str, alg: str, grace: int) -> None:
    """Add a new active ALG key to TENANT; the old one stays published for --grace seconds."""
    svc = _services()
    with svc.db.session() as s:
        new = keys.rotate(s, svc.cipher, directory.require_tenant(s, tenant_slug), alg, grace)
    click.echo(f"new {alg} key {new.kid} is active")


@keys_group.command("list")
@click.argument("tenant_slug", metavar="TENANT")
def keys_list(tenant_slug: str) -> None:
    """List TENANT's published keys."""

    with _services().db.session() as s:
        for k in keys.published(s, directory.require_tenant(s, tenant_slug), clock.now()):
            state = "active" if k.active else f"retired, published until {k.publish_until}"
            click.echo(f"{k.kid}\t{k.alg}\t{state}")


@cli.command(hidden=True)
@click.option("--tenant", "slug", default="demo", show_default=True)
def demo(slug: str) -> None:
    """Create the demo tenant and admin (idempotent) and print how to sign in."""
    svc = _services()
    pw_file = svc.settings.instance_dir / "demo-admin-password"
    with svc.db.session() as s:
        # Optional MFA: the admin is offered two-step sign-in after the password, and may skip.
        t = directory.get_tenant(s, slug) or directory.create_tenant(
            s, slug, "Demo Company", "optional"
        )
        keys.ensure_keys(s, svc.cipher, t)
        u = directory.find_user(s, t, "admin")
        if u is None or not pw_file.exists():
            password = secrets.token_urlsafe(12)
            if u is None:
                directory.create_user(
                    s, svc.passwords, t, "admin", "admin@demo.example", "owner", password
                )
            else:
                u.password_hash = svc.passwords.hash(password)
            pw_file.parent.mkdir(parents=True, exist_ok=True)
            pw_file.touch(mode=0o600)
            pw_file.write_text(password)
        demo_client = _demo_client(svc, s, t)
    base, where = svc.settings.base_url, svc.settings.instance_dir / "demo-client.json"
    click.echo(
        f"\n  Sign in at  {base}/t/{slug}/login\n  username    admin\n"
        f"  password    {pw_file.read_text()}\n"
        f"\n  OpenID Connect issuer  {base}/t/{slug}\n"
        f"  demo client           {demo_client['client_id']} (secret in {where})\n"
    )


DEMO_REDIRECT = "http://127.0.0.1:8001/callback"


def _demo_client(svc: Services, s: Session, t: Tenant) -> dict[str, str]:
    """The demo relying party's registration, kept in instance/demo-client.json (0600)."""
    path = svc.settings.instance_dir / "demo-client.json"
    if path.exists():
        known: dict[str, str] = json.loads(path.read_text())
        if clients.find_client(s, t, known["client_id"]) is not None:
            return known
    reg = clients.create_client(
        s, t, "Demo app", [DEMO_REDIRECT], post_logout_redirect_uris=["http://127.0.0.1:8001/"]
    )
    creds = {"client_id": reg.client.client_id, "client_secret": reg.client_secret or ""}
    path.touch(mode=0o600)
    path.write_text(json.dumps(creds))
    return creds


cli.add_command(audit_cli.audit)


def main(argv: list[str] | None = None) -> None:
    """Entry point: turn every user error into one line on stderr and exit status 2."""
    try:
        code = cli.main(args=argv, prog_name="idp", standalone_mode=False)
    except click.UsageError as exc:
        _fail(exc.format_message().replace("\n", " "))
    except click.Abort:
        _fail("aborted", 1)
    except (CliError, SettingsError, directory.DirectoryError, SchemaOutdated) as exc:
        _fail(str(exc))
    except OperationalError as exc:
        _fail(f"cannot use the database: {str(exc.orig).splitlines()[0] if exc.orig else exc}", 1)
    sys.exit(code if isinstance(code, int) else 0)
