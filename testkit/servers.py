"""Real Redis, PostgreSQL and Stepwise processes for the tests, on free ports of 127.0.0.1."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with status {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout}s")


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} is not installed; run scripts/test, which installs it")
    return path


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A throwaway redis-server; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            _need("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries are not installed; run scripts/test")
    return found[-1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (run as the postgres user when we are root); yields a URL."""
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="stepwise-pg-"))
    data = tmp / "pgdata"
    data.mkdir()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(tmp, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(
        [
            *prefix,
            _pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "stepwise",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    proc = subprocess.Popen(
        [
            *prefix,
            _pg_bin("postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(tmp),
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        url = f"postgresql+psycopg://stepwise@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 20
        import psycopg

        while True:  # the port opens a moment before the server accepts logins
            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user=stepwise dbname=postgres").close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """A fresh database on the test PostgreSQL server; returns its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(server_url)
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return u.set(database=name).render_as_string(hide_password=False)


def idp_env(instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        IDP_ENV="development",
        IDP_INSTANCE_PATH=str(instance),
        IDP_ARGON2_MEMORY_KIB="8192",
        IDP_ARGON2_TIME_COST="1",
        IDP_LOG_LEVEL="WARNING",
        # A worker child costs each live server ~1.5 s of CPU; tests of notifications ask for it.
        IDP_OUTBOX_WORKER="off",
    )
    env.update(extra)
    return env


def idp(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``idp`` console script."""
    exe = str(Path(sys.executable).parent / "idp")
    return subprocess.run(
        [exe, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def stop(proc: subprocess.Popen[Any]) -> None:
    """End a helper process and close its pipes (left open, they warn as unclosed files)."""
    proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


class ServerClock:
    """A live server's wall clock that tests move forward instead of sleeping.

    The server runs under Debian's libfaketime, which reads the offset from a file at every
    clock read; monotonic time is left alone (timers and the in-process store's TTLs keep real
    time, as after a wall-clock step). Whole seconds only. A ``frozen`` clock stands still
    (in UTC) until the test moves it, however slow the machine.
    """

    def __init__(self, directory: Path, frozen: bool = False) -> None:
        self.path, self.offset = directory / "faketime", 0
        self.frozen_at = int(time.time()) if frozen else None
        self._write()

    def _write(self) -> None:
        """Replace the file in one step: a server reading it mid-write would see no time."""
        if self.frozen_at is None:
            text = f"+{self.offset}\n"
        else:
            text = time.strftime("%Y-%m-%d %H:%M:%S\n", time.gmtime(self.frozen_at + self.offset))
        partial = self.path.with_suffix(".new")
        partial.write_text(text)
        partial.replace(self.path)

    def env(self) -> dict[str, str]:
        # The thread-safe build: the plain one parses the file into one static buffer, so two
        # server threads reading the clock at once can get the real time instead of the faked
        # one (wolfcw/libfaketime#547), which let a throttle gate open early in a test.
        found = glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
        if not found:
            raise RuntimeError("libfaketime is missing: scripts/test installs it")
        return {
            "TZ": "UTC",
            "LD_PRELOAD": found[0],
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def advance(self, seconds: int) -> None:
        self.offset += seconds
        self._write()


@contextmanager
def live_idp(
    env: dict[str, str],
    workers: int = 1,
    host: str = "127.0.0.1",
    clock: ServerClock | None = None,
) -> Iterator[str]:
    """``idp serve`` on a free port; yields the base URL, named with ``host`` (WebAuthn needs
    a domain such as ``localhost``: an IP address is no valid rp.id). With ``clock``, the
    server's wall clock is one the test moves."""
    port = free_port()
    env = {**env, "IDP_BASE_URL": f"http://{host}:{port}", **(clock.env() if clock else {})}
    exe = str(Path(sys.executable).parent / "idp")
    log = open(Path(env["IDP_INSTANCE_PATH"]) / f"serve-{port}.log", "wb")
    proc = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # one process group, to end the workers with it
    )
    try:
        wait_for_port(port, proc)
        base = f"http://{host}:{port}"
        for _ in range(100):
            if requests.get(base + "/healthz", timeout=5).ok:
                break
            time.sleep(0.05)
        yield base
    finally:
        end_server(proc)
        log.close()


def end_server(proc: subprocess.Popen[Any], grace: float = 20) -> None:
    """Stop an ``idp serve`` started in a session of its own: SIGTERM, then SIGKILL to its
    whole process group after at most ``grace`` seconds. Under libfaketime every sleep fails
    (EINVAL), so granian's shutdown can die waiting for its workers and leave them running."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # nothing of the group is left
    proc.wait()


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def add_user(
    env: dict[str, str], tenant: str, username: str, password: str, run: Runner = idp
) -> None:
    """``idp user create`` with a password, through the real CLI (``run``: the console
    script by default, or an in-process runner of the same command)."""
    result = run(
        env,
        "user",
        "create",
        tenant,
        username,
        "--email",
        f"{username}@{tenant}.test",
        "--password-stdin",
        stdin=password + "\n",
    )
    if result.returncode != 0:
        raise RuntimeError(f"idp user create {username} failed: {result.stderr.strip()}")


def seed(env: dict[str, str], tenant: str, username: str, password: str, run: Runner = idp) -> None:
    """``idp init``, a tenant and one member with a password, through the real CLI."""
    for args in (["init"], ["tenant", "create", tenant]):
        result = run(env, *args)
        if result.returncode != 0:
            raise RuntimeError(f"idp {' '.join(args)} failed: {result.stderr.strip()}")
    add_user(env, tenant, username, password, run)
