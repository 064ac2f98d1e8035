"""Several Stepwise nodes behind a real reverse proxy (Debian's haproxy), for the cluster and
fault tests (issue 16).

``cluster()`` runs ``idp init`` once through the real CLI, then starts ``nodes`` processes of
``idp serve --workers <workers>`` that share one PostgreSQL database and one Redis (or Redis
Sentinel), and haproxy in front of them: round-robin, no cookies, no stick tables, so
consecutive requests go to different nodes. Every node sends ``X-Stepwise-Node: node-a`` (b,
c, ...), which is how a test sees where a request went.

Proxy behaviour, for the tests built on it:

- haproxy balances each HTTP request on its own, keep-alive or not (no ``prefer-last-server``).
  Its health checks do not move the rotation, so a single client's requests alternate
  strictly while both nodes are up.
- ``/static/`` and ``/favicon.ico`` have their own backend (also round-robin over the same
  nodes): a browser's stylesheet and script loads would otherwise shift the rotation between
  two login steps.
- A connection refused (a dead node) is retried on the other node at once (``option
  redispatch 1``, ``retries 2``) and marks the node down (``observe layer4``); health checks
  (``GET /healthz`` every 500 ms; 3 failed checks to go down, 2 passed to go up; a
  check may take 3 s, so a merely busy node stays in) bring it back. Only connection failures are
  retried: a request already sent to a node that dies is never replayed on another, so a
  one-time code cannot be spent twice by the proxy; it gets a 502 instead.
- ``timeout server`` is ``SERVER_TIMEOUT`` seconds: a hung node yields a 504, never a hang.

Example::

    with cluster(tmp, database_url, redis_url, prepare=seed_users) as c:
        requests.get(c.base_url + "/healthz").headers["X-Stepwise-Node"]  # "node-a"
        c.nodes[0].kill()          # SIGKILL the node's whole process group
        c.nodes[0].start()         # same port, same environment
        c.wait_in_rotation(c.nodes[0])
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from testkit import servers

SERVER_TIMEOUT = 15  # haproxy's ``timeout server``: a request to a hung node ends in a 504
START_TIMEOUT = 60.0  # a node's start (granian, 2 workers, the app) on a machine 3x slower


@dataclass
class Node:
    """One ``idp serve`` process group (granian's main process, its HTTP workers and the
    notification worker), on a fixed port of 127.0.0.1 that survives restarts."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    workers: int = 2
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The node itself, bypassing the proxy."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the node (again: same port, same environment) and wait for its /healthz."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        exe = str(Path(sys.executable).parent / "idp")
        with open(self.log, "ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [exe, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() ends all of it
            )  # fmt: skip
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Poll the node's own /healthz until it answers 200."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not healthy within {timeout}s; see {self.log}")
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the node's whole process group. With SIGKILL (a crash) or SIGTERM
        (a stop), wait until the main process has gone; other signals (SIGSTOP for a hung
        node, SIGCONT) return at once."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass  # nothing left in the group
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            if sig == signal.SIGKILL:
                self._wait_group_gone()

    def stop(self) -> None:
        """Stop gracefully (SIGTERM); SIGKILL the group if it has not ended within 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        # After a worker was killed too, granian's shutdown can leave workers behind.
        servers.end_server(self.proc)

    def _wait_group_gone(self, timeout: float = 10) -> None:
        """Wait until no process of the group is left (the port is free for a restart)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while _group_members(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def worker_pids(self) -> list[int]:
        """The granian HTTP worker processes (for worker-kill faults): the main process's
        children forked with its command line; the notification worker (``idp worker``), a
        child with a command line of its own, is left out."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        main = _cmdline(self.proc.pid)
        return [pid for pid in _children(self.proc.pid) if _cmdline(pid) == main]


@dataclass
class Cluster:
    """The running nodes behind haproxy. ``env`` is the environment of the ``idp`` command
    for this cluster (its database, Redis, keys, and IDP_BASE_URL = ``base_url``)."""

    base_url: str  # the proxy, named ``localhost`` (WebAuthn needs a domain, not an IP)
    nodes: list[Node]
    env: dict[str, str]
    proxy_port: int
    proxy: subprocess.Popen[bytes] = field(repr=False)
    stats_socket: Path

    def node(self, name: str) -> Node:
        (found,) = [n for n in self.nodes if n.name == name]
        return found

    def idp(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """The real ``idp`` command on the cluster's database; fails on a non-zero status."""
        result = servers.idp(self.env, *args, stdin=stdin)
        if result.returncode != 0:
            raise RuntimeError(f"idp {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def proxy_status(self) -> dict[str, str]:
        """haproxy's view of each node of the main backend: ``UP``, ``DOWN``, or a transition
        such as ``UP 1/2`` (from ``show stat`` on the admin socket)."""
        lines = _ask_haproxy(self.stats_socket, "show stat\n").splitlines()
        header = lines[0].lstrip("# ").split(",")
        at = {name: i for i, name in enumerate(header)}
        status = {}
        for line in lines[1:]:
            cols = line.split(",")
            if len(cols) > at["status"] and cols[at["pxname"]] == "nodes":
                if cols[at["svname"]] not in ("FRONTEND", "BACKEND"):
                    status[cols[at["svname"]]] = cols[at["status"]]
        return status

    def wait_in_rotation(self, node: Node, timeout: float = START_TIMEOUT) -> None:
        """Wait until haproxy sends requests to ``node`` again (after a restart)."""
        deadline = time.monotonic() + timeout
        while self.proxy_status().get(node.name) != "UP":
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not take {node.name} back within {timeout}s")
            time.sleep(0.05)

    def wait_out_of_rotation(self, node: Node, timeout: float = 30) -> None:
        """Wait until haproxy has marked ``node`` down."""
        deadline = time.monotonic() + timeout
        while not self.proxy_status().get(node.name, "").startswith("DOWN"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not mark {node.name} down within {timeout}s")
            time.sleep(0.05)


@contextmanager
def cluster(
    tmp: Path,
    database_url: str,
    redis_url: str | None = None,
    *,
    redis_sentinels: str | None = None,
    nodes: int = 2,
    workers: int = 2,
    extra_env: dict[str, str] | None = None,
    prepare: Callable[[dict[str, str]], None] | None = None,
) -> Iterator[Cluster]:
    """``nodes`` Stepwise nodes of ``workers`` workers behind haproxy, all in ``tmp``.

    ``database_url`` must be a fresh PostgreSQL database (``servers.create_database``);
    ``redis_url`` a Redis database of its own, emptied here first (leftover throttles or
    sessions of an earlier cluster would leak into this one). With ``redis_sentinels``
    (``host:port,...``) the nodes follow the Sentinel master instead; ``extra_env`` adds or
    overrides IDP_* settings. ``prepare(env)`` runs after ``idp init``, while the nodes start
    (nothing there reads a tenant before its first request), and ends before the cluster is
    handed over: the place for ``idp tenant create``, users and clients through the real CLI.
    """
    if (redis_url is None) == (redis_sentinels is None):
        raise ValueError("give redis_url or redis_sentinels (one of them)")
    tmp.mkdir(parents=True, exist_ok=True)
    proxy_port = servers.free_port()
    base_url = f"http://localhost:{proxy_port}"
    shared = {
        "IDP_BASE_URL": base_url,
        "IDP_DATABASE_URL": database_url,
        # One secret key and data key for every node, as an operator would configure them:
        # any node must read a session or a factor secret that another wrote.
        "IDP_SECRET_KEY": secrets.token_urlsafe(48),
        "IDP_DATA_KEY": secrets.token_urlsafe(32),
        "IDP_TRUSTED_PROXIES": "1",  # haproxy sets X-Forwarded-For and -Proto
    }
    if redis_sentinels is not None:
        shared["IDP_REDIS_SENTINELS"] = redis_sentinels
    else:
        assert redis_url is not None
        shared["IDP_REDIS_URL"] = redis_url
        _flush_redis(redis_url)
    shared.update(extra_env or {})
    env = servers.idp_env(tmp / "cli", **shared)
    result = servers.idp(env, "init")
    if result.returncode != 0:
        raise RuntimeError(f"idp init failed: {result.stderr.strip()}")

    members = []
    for i in range(nodes):
        name = f"node-{chr(ord('a') + i)}"
        node_env = servers.idp_env(tmp / name, **shared, IDP_NODE_NAME=name)
        members.append(Node(name, servers.free_port(), node_env, tmp / f"{name}.log", workers))
    stats = tmp / "haproxy.sock"
    config = tmp / "haproxy.cfg"
    config.write_text(haproxy_config(proxy_port, members, stats))

    with ExitStack() as stack:
        stack.callback(_stop_all, members)
        with ThreadPoolExecutor(len(members)) as pool:  # side by side: seconds each
            starting = [pool.submit(node.start) for node in members]
            if prepare is not None:
                prepare(env)
            for started in starting:
                started.result()
        proxy = _start_proxy(config, tmp / "haproxy.log")
        stack.callback(servers.stop, proxy)
        servers.wait_for_port(proxy_port, proxy)
        while not stats.exists():  # haproxy creates its socket before it binds the port
            time.sleep(0.02)
        found = Cluster(base_url, members, env, proxy_port, proxy, stats)
        deadline = time.monotonic() + START_TIMEOUT
        for node in members:
            found.wait_in_rotation(node, max(1.0, deadline - time.monotonic()))
        yield found


def haproxy_config(port: int, members: list[Node], stats: Path) -> str:
    """haproxy's configuration: see the module docstring for what each part is for."""
    check = (
        "check inter 500ms fastinter 200ms downinter 500ms fall 3 rise 2 "
        "observe layer4 error-limit 1 on-error mark-down"
    )
    nodes = "\n".join(f"    server {n.name} 127.0.0.1:{n.port} {check}" for n in members)
    statics = "\n".join(
        f"    server {n.name} 127.0.0.1:{n.port} track nodes/{n.name}" for n in members
    )
    return f"""\
global
    maxconn 1024
    stats socket {stats} mode 600 level admin

defaults
    mode http
    log stdout format raw local0 err
    option dontlognull
    timeout connect 1s
    timeout client 30s
    timeout server {SERVER_TIMEOUT}s
    timeout http-request 10s
    timeout http-keep-alive 30s
    timeout queue 5s
    timeout check 3s
    retries 2
    option redispatch 1
    option forwardfor

frontend stepwise
    bind 127.0.0.1:{port}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    use_backend statics if {{ path_beg /static/ }} || {{ path /favicon.ico }}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
{nodes}

backend statics
    balance roundrobin
{statics}
"""


def _stop_all(members: list[Node]) -> None:
    """Stop the nodes side by side."""
    with ThreadPoolExecutor(len(members)) as pool:
        for done in [pool.submit(node.stop) for node in members]:
            done.result()


def _start_proxy(config: Path, log: Path) -> subprocess.Popen[bytes]:
    check = subprocess.run(
        ["/usr/sbin/haproxy", "-c", "-q", "-f", str(config)], capture_output=True, text=True
    )
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refused its configuration: {check.stderr.strip()}")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["/usr/sbin/haproxy", "-db", "-f", str(config)],  # foreground, no daemon
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc


def _ask_haproxy(sock_path: Path, command: str) -> str:
    """One command on haproxy's admin socket; its whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(sock_path))
        sock.sendall(command.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] != "Z" and int(stat[1]) == parent:
                found.append(int(entry.name))
    return sorted(found)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] != "Z" and int(stat[2]) == pgid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
