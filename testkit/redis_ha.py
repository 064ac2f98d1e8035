"""Real redis-server processes for high-availability tests: restartable nodes with AOF on, a
Sentinel group (master, replica, three sentinels) and a TLS server with its own CA.

Every process started here is ended by the context manager that started it, also on failure.
Each node reads a config file in its own directory, so what Sentinel rewrites there (a node
turned into a replica after a failover) survives a restart, as it would in production.
"""

from __future__ import annotations

import datetime
import ipaddress
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.sentinel import Sentinel

from testkit.servers import _need, free_port


@dataclass
class RedisNode:
    """One redis-server with AOF (``appendfsync everysec``) on, restartable on the same port and
    data directory. ``tls_ca`` set: the node listens with TLS only and ``url`` is ``rediss://``."""

    port: int
    dir: Path
    extra: list[str] = field(default_factory=list)
    tls_ca: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        if self.tls_ca is not None:
            return f"rediss://localhost:{self.port}/0"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def conf(self) -> Path:
        return self.dir / "redis.conf"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout: float = 1) -> redis.Redis:
        """A plain client of this node (the caller closes it)."""
        kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        if self.tls_ca is not None:
            kwargs["ssl_ca_certs"] = str(self.tls_ca)
        return redis.Redis.from_url(self.url, **kwargs)

    def write_conf(self) -> None:
        """The first config; later starts keep the file (and what Sentinel rewrote in it)."""
        port = ["port 0", f"tls-port {self.port}"] if self.tls_ca else [f"port {self.port}"]
        lines = [
            *port,
            "bind 127.0.0.1",
            f"dir {self.dir}",
            "logfile redis.log",
            'save ""',
            "appendonly yes",
            "appendfsync everysec",
            # A replica's full sync starts at once, not after the default 5 s of waiting for
            # other replicas to share the transfer.
            "repl-diskless-sync-delay 0",
            *self.extra,
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 20) -> None:
        """Start (again) on the same port and data directory; return once it answers PING."""
        if self.running:
            raise RuntimeError(f"redis on port {self.port} is already running")
        if not self.conf.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            self.write_conf()
        self.proc = subprocess.Popen(
            [_need("redis-server"), str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        with self.client(timeout=0.5) as c:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis on port {self.port} exited with {self.proc.returncode}; "
                        f"see {self.dir / 'redis.log'}"
                    )
                try:
                    # LOADING (replaying the AOF) is a RedisError too: wait until it is done.
                    if c.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop(signal.SIGKILL)
                    raise RuntimeError(f"redis on port {self.port} did not answer in {timeout}s")
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: a clean shutdown (the AOF is flushed and fsynced). SIGKILL: a crash."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def fsync(self) -> None:
        """Make everything written so far durable now, as ``everysec`` does within a second:
        a crash test can then kill the node without racing the background fsync."""
        with self.client() as c:
            # Rewriting the AOF writes a new base file and fsyncs it before switching to it.
            c.bgrewriteaof()
            deadline = time.monotonic() + 20
            while True:
                info = c.info("persistence")
                if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the AOF rewrite did not finish in 20s")
                time.sleep(0.05)


@contextmanager
def persistent_redis(tmp: Path) -> Iterator[RedisNode]:
    """One redis-server with AOF on; yields the node (stop and start it at will)."""
    node = RedisNode(free_port(), tmp / "redis")
    try:
        node.start()
        yield node
    finally:
        node.stop()


@dataclass
class SentinelGroup:
    """A master, a replica and three sentinels watching them as ``master_name``."""

    master_name: str
    sentinels: str  # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3", as IDP_REDIS_SENTINELS takes it
    nodes: list[RedisNode]
    sentinel_procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    tls_ca: Path | None = None  # set: sentinels and nodes speak TLS only (sentinel_group(tls=))

    def tls_options(self) -> dict[str, Any]:
        """redis-py options for a client of the sentinels (or nodes) of this group."""
        return {} if self.tls_ca is None else {"ssl": True, "ssl_ca_certs": str(self.tls_ca)}

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        out = []
        for item in self.sentinels.split(","):
            host, port = item.rsplit(":", 1)
            out.append((host, int(port)))
        return out

    def _ask(self) -> tuple[str, int]:
        # redis.sentinel has no type annotations.
        options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, **self.tls_options()}
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            self.sentinel_addresses, sentinel_kwargs=options
        )
        try:
            address: tuple[str, int] = sentinel.discover_master(  # type: ignore[no-untyped-call]
                self.master_name
            )
            return address
        finally:
            for s in sentinel.sentinels:
                s.close()

    def master(self) -> RedisNode:
        """The node the sentinels name as master now."""
        _host, port = self._ask()
        for node in self.nodes:
            if node.port == port:
                return node
        raise RuntimeError(f"the sentinels name an unknown master on port {port}")

    def wait_replicated(self, timeout: float = 5) -> None:
        """Return once every running replica has acknowledged all the master's writes so far."""
        master = self.master()
        replicas = [n for n in self.nodes if n is not master and n.running]
        if not replicas:
            return
        deadline = time.monotonic() + timeout
        with master.client() as c:
            while True:
                # WAIT asks the replicas for their offset at once (REPLCONF GETACK).
                acked = int(c.execute_command("WAIT", len(replicas), 200))
                if acked >= len(replicas):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{acked} of {len(replicas)} replicas caught up")

    def kill_master(self) -> RedisNode:
        """SIGKILL the current master (a crash); returns it (``rejoin`` brings it back)."""
        node = self.master()
        node.stop(signal.SIGKILL)
        return node

    def wait_for_failover(self, old: RedisNode, timeout: float = 20) -> RedisNode:
        """Wait until the sentinels have promoted another node, and it acts as master."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                node = self.master()
                if node is not old:
                    with node.client() as c:
                        if c.info("replication")["role"] == "master":
                            return node
            except (redis.RedisError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no failover away from port {old.port} within {timeout}s")
            time.sleep(0.1)

    def rejoin(self, node: RedisNode, timeout: float = 20) -> None:
        """Start a stopped node again as a replica of the current master. Sentinel would
        reconfigure it too, but only at its next INFO poll (up to 10 s); this does it at once."""
        if not node.running:
            node.start()
        master = self.master()
        deadline = time.monotonic() + timeout
        with node.client() as c:
            c.replicaof("127.0.0.1", master.port)
            while c.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {node.port} did not sync with {master.port}")
                time.sleep(0.05)
        self.wait_replicated(timeout)

    def wait_ready(self, timeout: float = 20) -> None:
        """Wait until every sentinel knows the replica and the two other sentinels: before
        that, a failover could not reach its quorum or would have no replica to promote."""
        deadline = time.monotonic() + timeout
        want_replicas = len(self.nodes) - 1
        want_peers = len(self.sentinel_procs) - 1
        pending = self.sentinel_addresses
        while pending:
            host, port = pending[0]
            try:
                with redis.Redis(host, port, socket_timeout=0.5, **self.tls_options()) as s:
                    info = s.sentinel_master(self.master_name)
                    if (
                        int(info["num-slaves"]) >= want_replicas
                        and int(info["num-other-sentinels"]) >= want_peers
                    ):
                        pending.pop(0)
                        continue
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sentinel {port} did not see the whole group in {timeout}s")
            time.sleep(0.1)


def _start_sentinel(
    directory: Path, port: int, master_name: str, master_port: int, tls: list[str]
) -> Any:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "sentinel.conf"  # Sentinel rewrites its file: it must be writable
    listen = ["port 0", f"tls-port {port}", *tls] if tls else [f"port {port}"]
    conf.write_text(
        "\n".join(
            [
                *listen,
                "bind 127.0.0.1",
                f"dir {directory}",
                "logfile sentinel.log",
                f"sentinel monitor {master_name} 127.0.0.1 {master_port} 2",
                f"sentinel down-after-milliseconds {master_name} 1000",
                f"sentinel failover-timeout {master_name} 2000",
                f"sentinel parallel-syncs {master_name} 1",
            ]
        )
        + "\n"
    )
    return subprocess.Popen(
        [_need("redis-server"), str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def sentinel_group(
    tmp: Path, master_name: str = "stepwise", tls: bool = False
) -> Iterator[SentinelGroup]:
    """One master and one replica (AOF on both) and three sentinels with a quorum of 2. A node
    is called down after 1 s without an answer, so a failover takes a few seconds.

    ``tls``: every process listens with TLS only (a certificate for localhost and 127.0.0.1
    from a fresh CA, in ``group.tls_ca``), and replication and Sentinel's own links use TLS.
    """
    ca, lines = _tls_material(tmp / "tls") if tls else (None, [])
    if lines:
        lines = [*lines, "tls-replication yes"]
    master = RedisNode(free_port(), tmp / "node-a", extra=lines, tls_ca=ca)
    replica = RedisNode(
        free_port(), tmp / "node-b", extra=[*lines, f"replicaof 127.0.0.1 {master.port}"], tls_ca=ca
    )
    group = SentinelGroup(master_name, "", [master, replica], tls_ca=ca)
    with ExitStack() as stack:
        for node in group.nodes:
            stack.callback(node.stop)
        master.start()
        replica.start()
        ports = [free_port() for _ in range(3)]
        group.sentinels = ",".join(f"127.0.0.1:{p}" for p in ports)
        for i, port in enumerate(ports):
            proc = _start_sentinel(tmp / f"sentinel-{i}", port, master_name, master.port, lines)
            group.sentinel_procs.append(proc)
            stack.callback(_end, proc)
        group.wait_ready()
        yield group


def _end(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_ca(directory: Path, name: str = "ca") -> tuple[Path, Any, Any]:
    """A self-signed CA; returns its certificate file, certificate and private key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Stepwise test {name}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def _write_server_cert(directory: Path, ca_cert: Any, ca_key: Any) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, signed by the CA; returns (cert, key) files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def _tls_material(certs: Path) -> tuple[Path, list[str]]:
    """A fresh CA and a server certificate it signed; returns the CA file and the config lines
    that make a redis-server (or sentinel) use them. Clients need no certificate."""
    ca_file, ca_cert, ca_key = write_ca(certs)
    cert_file, key_file = _write_server_cert(certs, ca_cert, ca_key)
    return ca_file, [
        f"tls-cert-file {cert_file}",
        f"tls-key-file {key_file}",
        f"tls-ca-cert-file {ca_file}",
        "tls-auth-clients no",
    ]


@contextmanager
def tls_redis(tmp: Path) -> Iterator[tuple[str, Path]]:
    """A redis-server that speaks TLS only, with a certificate for ``localhost`` from a fresh CA;
    yields ``("rediss://localhost:<port>/0", ca_file)``. Clients need no certificate."""
    ca_file, lines = _tls_material(tmp / "tls")
    node = RedisNode(free_port(), tmp / "redis-tls", extra=lines, tls_ca=ca_file)
    try:
        node.start()
        yield node.url, ca_file
    finally:
        node.stop()
