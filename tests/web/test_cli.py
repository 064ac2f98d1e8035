"""The ``idp`` command: stable commands, and one-line errors with exit status 2.

Most tests run the command's code in this process (tests.cli_support: a Python start-up per
command would cost a second each); those marked "console script" run the real one in a process
of its own, for what only a process shows: its exit status, and one line with no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import servers
from testkit.servers import idp_env
from tests.cli_support import idp


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = idp_env(tmp_path / "instance")
    assert idp(env, "init").returncode == 0
    return env


def test_init_is_idempotent(env: dict[str, str]) -> None:
    again = servers.idp(env, "init")  # console script
    assert again.returncode == 0 and "database ready" in again.stdout


def test_tenant_and_user_lifecycle(env: dict[str, str]) -> None:
    assert (
        idp(env, "tenant", "create", "acme", "--name", "Acme Inc", "--mfa", "optional").returncode
        == 0
    )
    created = idp(
        env,
        "user",
        "create",
        "acme",
        "alice",
        "--email",
        "alice@acme.test",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long password\n",
    )
    assert created.returncode == 0, created.stderr
    assert idp(env, "tenant", "list").stdout.split("\t")[:3] == ["acme", "Acme Inc", "mfa=optional"]
    assert idp(env, "user", "list", "acme").stdout == "alice\talice@acme.test\tadmin\tactive\n"
    assert idp(env, "user", "disable", "acme", "alice").returncode == 0
    assert "disabled" in idp(env, "user", "list", "acme").stdout
    unlock = idp(env, "user", "unlock", "acme", "alice")
    assert unlock.returncode == 2 and "disabled, not locked" in unlock.stderr
    assert idp(env, "user", "enable", "acme", "alice").returncode == 0
    assert idp(env, "user", "unlock", "acme", "alice").returncode == 0
    assert "active" in idp(env, "user", "list", "acme").stdout


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["tenant", "create", "Bad Slug"], None, "tenant slug must be"),
        (["tenant", "create", "ok", "--mfa", "sometimes"], None, "Invalid value for '--mfa'"),
        (["user", "create", "nope", "bob", "--email", "b@x.test"], None, "no tenant 'nope'"),
        (
            ["user", "create", "acme", "bob", "--email", "not-an-email"],
            None,
            "not an email address",
        ),
        (
            ["user", "create", "acme", "bob", "--email", "b@x.test", "--password-stdin"],
            "short\n",
            "at least 15 characters",
        ),
        (
            ["user", "create", "acme", "bob", "--email", "b@x.test", "--password-stdin"],
            "1qaz2wsx3edc4rfv\n",
            "too common",
        ),
        (
            ["user", "create", "acme", "bob", "--email", "b@x.test", "--password-stdin"],
            "",
            "no password",
        ),
        (["user", "create", "acme"], None, "Missing argument"),
        (["user", "unlock", "acme", "ghost"], None, "no user 'ghost'"),
        (["nonsense"], None, "No such command"),
        (["serve", "--workers", "2"], None, "in-process store serves one process"),
        (["serve", "--port", "99999"], None, "Invalid value for '--port'"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    env: dict[str, str], args: list[str], stdin: str | None, message: str
) -> None:
    idp(env, "tenant", "create", "acme")
    result = idp(env, *args, stdin=stdin)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("idp: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_tenant_leaves_the_first_intact(env: dict[str, str]) -> None:
    idp(env, "tenant", "create", "acme", "--name", "First")
    again = idp(env, "tenant", "create", "acme", "--name", "Second")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "First" in idp(env, "tenant", "list").stdout


def test_unsafe_production_settings_are_refused(tmp_path: Path) -> None:
    env = idp_env(tmp_path / "instance", IDP_ENV="production")
    result = servers.idp(env, "init")  # console script
    assert result.returncode == 2
    assert "IDP_SECRET_KEY" in result.stderr and "https" in result.stderr
    assert "IDP_DATA_KEY" in result.stderr
    bad_number = idp(idp_env(tmp_path / "i2", IDP_SESSION_IDLE_TIMEOUT="soon"), "init")
    assert (
        bad_number.returncode == 2
        and "IDP_SESSION_IDLE_TIMEOUT must be a whole number" in bad_number.stderr
    )
    too_lax = servers.idp(idp_env(tmp_path / "i3", IDP_THROTTLE_LOCK_AFTER="101"), "init")
    assert too_lax.returncode == 2 and "Traceback" not in too_lax.stderr
    assert too_lax.stderr.startswith("idp: IDP_THROTTLE_*: lock_after must be between 1 and 100")


def test_serve_refuses_an_uninitialised_database(tmp_path: Path) -> None:
    result = servers.idp(idp_env(tmp_path / "fresh"), "serve", "--port", "1")  # console script
    assert result.returncode == 2 and "run `idp init` first" in result.stderr


def test_demo_is_idempotent_and_prints_credentials(env: dict[str, str]) -> None:
    first = idp(env, "demo")
    second = idp(env, "demo")
    assert first.returncode == second.returncode == 0
    assert (
        first.stdout == second.stdout
        and "/t/demo/login" in first.stdout
        and "admin" in first.stdout
    )


def test_mfa_policy_and_per_user_commands(env: dict[str, str]) -> None:
    assert idp(env, "tenant", "create", "acme").returncode == 0
    assert idp(env, "user", "create", "acme", "bob", "--email", "bob@acme.test").returncode == 0
    shown = idp(env, "tenant", "set-mfa", "acme")
    assert shown.returncode == 0 and "mode=off scope=all apply=next_login" in shown.stdout
    changed = idp(
        env,
        "tenant",
        "set-mfa",
        "acme",
        "--mode",
        "required",
        "--scope",
        "admins",
        "--apply",
        "immediate",
        "--factors",
        "sms,totp",
        "--reoffer-days",
        "3",
        "--totp-two-codes",
    )
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == (
        "mode=required scope=admins apply=immediate factors=totp,sms reoffer_days=3 "
        "totp_two_codes=True admins_phishing_resistant=False webauthn_block_cloned=True"
    )
    relaxed = idp(env, "tenant", "set-mfa", "acme", "--flag-cloned-keys",
                  "--admins-phishing-resistant")  # fmt: skip
    assert "admins_phishing_resistant=True webauthn_block_cloned=False" in relaxed.stdout
    required = idp(env, "user", "require-mfa", "acme", "bob")
    assert required.returncode == 0 and "MFA required" in required.stdout
    reset = idp(env, "user", "reset-mfa", "acme", "bob")
    assert reset.returncode == 0 and "0 factor(s) removed" in reset.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tenant", "set-mfa", "acme", "--mode", "sometimes"], "Invalid value for '--mode'"),
        (["tenant", "set-mfa", "acme", "--factors", "pigeon"], "factors must be a list of"),
        (["tenant", "set-mfa", "acme", "--reoffer-days", "-2"], "reoffer_days must be"),
        (["tenant", "set-mfa", "nope", "--mode", "off"], "no tenant 'nope'"),
        (["user", "reset-mfa", "acme", "nobody"], "no user 'nobody'"),
    ],
)
def test_mfa_command_errors_are_one_line_with_status_2(
    env: dict[str, str], args: list[str], message: str
) -> None:
    assert idp(env, "tenant", "create", "acme").returncode == 0
    result = idp(env, *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "mode=off" in idp(env, "tenant", "set-mfa", "acme").stdout  # nothing was changed
