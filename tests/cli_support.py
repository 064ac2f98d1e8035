"""The ``idp`` command run in this process: the real command code (``idp.cli.main``, with its
one-line errors and exit statuses), without the Python start-up and imports that each run of
the console script pays (about a second each, most of the cost of a CLI test). The console
script itself keeps tests of its own (tests/web/test_cli.py): exit status 2 and one line with
no traceback from a real process.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, NoReturn

import click
from click.testing import CliRunner

from idp.cli import main
from testkit import servers


class _Idp(click.Command):
    """``idp.cli.main`` as CliRunner sees a command: it sets the environment and the standard
    streams, and turns SystemExit into the exit status, as the console script would."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        main(list(kwargs.get("args") or (args[0] if args else ())))
        raise AssertionError("idp.cli.main returns only through SystemExit")


_IDP = _Idp("idp")


def idp(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Like ``testkit.servers.idp``: ``env`` replaces the process environment while the
    command runs (variables absent from it are unset). An exception that the command lets
    escape, which the console script would print as a traceback, is raised here."""
    environ: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    environ.update(env)
    result = CliRunner().invoke(_IDP, list(args), input=stdin, env=environ)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["idp", *args], result.exit_code, result.stdout,
                                       result.stderr)  # fmt: skip


def add_user(env: dict[str, str], tenant: str, username: str, password: str) -> None:
    """``testkit.servers.add_user`` (``idp user create`` with a password), in this process."""
    servers.add_user(env, tenant, username, password, run=idp)


def seed(env: dict[str, str], tenant: str, username: str, password: str) -> None:
    """``testkit.servers.seed`` (``idp init``, a tenant and one member), in this process."""
    servers.seed(env, tenant, username, password, run=idp)
