"""A PostgreSQL server that tests stop and start again, on the same port and data directory.

The fault tests take the database away under a running Stepwise and bring it back: the
server must come back where the pool expects it (same port, same data), which
:func:`testkit.servers.postgres_server` cannot do. Runs as the postgres user when we are root,
as PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from testkit.servers import _pg_bin, free_port

StopMode = Literal["smart", "fast", "immediate"]


class PgServer:
    """One PostgreSQL cluster controlled with ``pg_ctl``; ``url`` names the "postgres" database."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.data = directory / "pgdata"
        self.log = directory / "postgres.log"
        self.url = f"postgresql+psycopg://stepwise@127.0.0.1:{port}/postgres"
        self._prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str, timeout: float = 30) -> None:
        subprocess.run(
            [*self._prefix, *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )

    def init(self) -> None:
        self.data.mkdir()
        if self._prefix:
            shutil.chown(self.directory, "postgres")
            shutil.chown(self.data, "postgres")
        self._run(
            _pg_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            "stepwise",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self, timeout: float = 20) -> None:
        """Start the server and return once it accepts logins (not merely once the port opens)."""
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.directory} "
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        # pg_ctl -w waits for the server to accept connections; its own timeout bounds it.
        self._run(
            _pg_bin("pg_ctl"),
            "start",
            "-w",
            "-t",
            str(int(timeout)),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            timeout=timeout + 5,
        )
        self._wait_for_login(timeout)

    def _wait_for_login(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self._dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: StopMode = "fast", timeout: float = 20) -> None:
        """Stop the server: ``fast`` ends sessions cleanly, ``immediate`` is close to a crash."""
        self._run(
            _pg_bin("pg_ctl"),
            "stop",
            "-w",
            "-t",
            str(int(timeout)),
            "-m",
            mode,
            "-D",
            str(self.data),
            timeout=timeout + 5,
        )

    def running(self) -> bool:
        result = subprocess.run(
            [*self._prefix, _pg_bin("pg_ctl"), "status", "-D", str(self.data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return result.returncode == 0

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=stepwise dbname={database}"

    def create_database(self, name: str) -> str:
        """A fresh database on this server; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def restartable_postgres() -> Iterator[PgServer]:
    """A throwaway PostgreSQL cluster that the test may stop and start; removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="stepwise-pgctl-"))
    server = PgServer(directory, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.data.exists() and server.running():
            try:
                server.stop("immediate")
            except subprocess.SubprocessError:
                pass
        shutil.rmtree(directory, ignore_errors=True)
