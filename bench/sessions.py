"""Bytes that Stepwise keeps in Redis per active session, per flow in progress and per refresh
family, measured with ``MEMORY USAGE`` on a real redis-server after real logins through the
app; then the cost of AOF (``appendfsync everysec``) against no persistence.

Logins run in-process (the Flask app and its test client) against a real redis-server with
AOF on, as docs/operations/redis.md recommends: what lands in Redis is what ``idp serve``
writes. Refresh-token families live in the database; the table says what Redis holds for one.

    .venv/bin/python bench/sessions.py --users 200 --writes 5000
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from idp import directory  # noqa: E402
from idp.app import create_app  # noqa: E402
from idp.ephemeral.redis_store import RedisStore  # noqa: E402
from idp.oidc import clients, keys  # noqa: E402
from idp.services import Services  # noqa: E402
from idp.store.migrate import upgrade  # noqa: E402
from testkit.html import csrf_of  # noqa: E402
from testkit.redis_ha import RedisNode, persistent_redis  # noqa: E402
from testkit.servers import free_port  # noqa: E402

PASSWORD = "correct horse battery staple"
REDIRECT = "https://rp.example/cb"
GOAL = 1024


def key_class(key: bytes) -> str:
    """``stepwise:session:<id>`` -> ``session``; ``oidc:code-used:<h>`` -> ``oidc:code-used``."""
    parts = key.decode().removeprefix(RedisStore.PREFIX).split(":")
    return ":".join(parts[:2]) if parts[0] in ("oidc", "saml", "count") else parts[0]


class Snapshot:
    """Every Stepwise key in Redis with its ``MEMORY USAGE`` and value size."""

    def __init__(self, raw: redis.Redis) -> None:
        self.usage: dict[bytes, int] = {}
        self.size: dict[bytes, int] = {}
        for key in raw.scan_iter(RedisStore.PREFIX + "*", count=1000):
            self.usage[key] = int(raw.memory_usage(key, samples=0) or 0)
            self.size[key] = int(raw.strlen(key))

    def totals(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for key, usage in self.usage.items():
            row = out[key_class(key)]
            row[0] += 1
            row[1] += usage
            row[2] += self.size[key]
        return out

    def growth_since(self, before: Snapshot) -> dict[str, tuple[int, int, int]]:
        """Per key class, the net change since ``before``: keys, MEMORY USAGE and value bytes
        (keys added, grown, shrunk and deleted all count)."""
        now, then = self.totals(), before.totals()
        out = {}
        for cls in set(now) | set(then):
            a, b = now.get(cls, [0, 0, 0]), then.get(cls, [0, 0, 0])
            delta = (a[0] - b[0], a[1] - b[1], a[2] - b[2])
            if any(delta):
                out[cls] = delta
        return out


def seed(app: Any, users: int) -> str:
    """Tenant acme, ``users`` members with a password, a public client; returns its id."""
    svc: Services = app.extensions["stepwise"]
    with svc.db.session() as s:
        t = directory.create_tenant(s, "acme")
        for i in range(users):
            directory.create_user(
                s, svc.passwords, t, f"user{i}", f"user{i}@acme.test", "member", PASSWORD
            )
        keys.ensure_keys(s, svc.cipher, t)
        reg = clients.create_client(s, t, "Bench", [REDIRECT], public=True)
        return reg.client.client_id


def start_flow(client: FlaskClient) -> tuple[str, str]:
    resp = client.get("/t/acme/login")
    assert resp.status_code == 302, resp.status_code
    page = client.get(resp.headers["Location"])
    return resp.headers["Location"], page.get_data(as_text=True)


def sign_in(client: FlaskClient, username: str) -> None:
    url, html = start_flow(client)
    form = {"csrf_token": csrf_of(html), "step": "identify", "username": username}
    done = client.post(url, data={**form, "password": PASSWORD})
    assert done.status_code == 302 and done.headers["Location"] == "/t/acme/account", (
        done.status_code,
        done.get_data(as_text=True)[:300],
    )


def refresh_family(client: FlaskClient, client_id: str) -> bool:
    """Code + PKCE, then one refresh, for a signed-in browser; True if a refresh was issued."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    resp = client.get(
        "/t/acme/authorize",
        query_string={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid offline_access",
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert resp.headers["Location"].startswith(REDIRECT), resp.headers.get("Location")
    code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    form = {"client_id": client_id, "redirect_uri": REDIRECT}
    got = client.post(
        "/t/acme/token",
        data={**form, "grant_type": "authorization_code", "code": code, "code_verifier": verifier},
    ).get_json()
    if "refresh_token" not in got:
        return False
    refresh = {"grant_type": "refresh_token", "refresh_token": got["refresh_token"]}
    again = client.post("/t/acme/token", data={"client_id": client_id, **refresh})
    assert again.status_code == 200, again.get_data(as_text=True)
    return True


def measure(
    raw: redis.Redis, n: int, action: Callable[[int], Any]
) -> dict[str, tuple[int, int, int]]:
    """What ``n`` runs of ``action`` left in Redis, per key class. (Not INFO's
    used_memory_dataset: it also moves by tens of kB of allocations that are no key's, e.g.
    5000 GETs of one key moved it by 25 kB on Redis 7.0, which swamps a few hundred items.)"""
    before = Snapshot(raw)
    for i in range(n):
        action(i)
    return Snapshot(raw).growth_since(before)


def print_rows(title: str, n: int, rows: dict[str, tuple[int, int, int]]) -> int:
    """One line per key class, per item; returns the MEMORY USAGE per item of all classes."""
    print(f"\n{title}, {n} of them; net change per item:")
    print(f"  {'key class':<22}{'keys/item':>10}{'MEMORY USAGE/item':>19}{'value B/item':>14}")
    total = 0
    for cls, (count, usage, size) in sorted(rows.items()):
        print(f"  {cls:<22}{count / n:>10.2f}{usage / n:>19.0f}{size / n:>14.0f}")
        total += usage
    if not rows:
        print("  (nothing in Redis)")
    return total // n if n else 0


def session_payload(raw: redis.Redis) -> None:
    """A signed-in session's fields and their share of the value, to show where the bytes go."""
    import json

    values = (raw.get(k) for k in raw.scan_iter(RedisStore.PREFIX + "session:*", count=1000))
    value = max((v for v in values if v is not None), key=len, default=None)
    if value is not None:
        data = json.loads(value)
        print(f"\nThe largest session's value ({len(value)} B of JSON), by field:")
        for field, item in sorted(data.items(), key=lambda kv: -len(json.dumps(kv[1]))):
            shown = re.sub(r"[A-Za-z0-9_-]{16,}", "<random>", json.dumps(item))[:60]
            print(f"  {field:<22}{len(json.dumps(item)):>6} B  {shown}")


def memory(users: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, persistent_redis(Path(tmp)) as node:
        app = create_app(
            {
                "env": "development",
                "instance_path": str(Path(tmp) / "instance"),
                "redis_url": node.url,
                "argon2_memory_kib": 8192,
                "argon2_time_cost": 1,
                "TESTING": True,
                "log_level": "WARNING",
            }
        )
        upgrade(app.extensions["stepwise"].db.engine)
        client_id = seed(app, users)
        raw = redis.Redis.from_url(node.url)
        print(f"redis-server {raw.info('server')['redis_version']}, {users} users")
        flows = [app.test_client() for _ in range(users)]
        rows = measure(raw, users, lambda i: start_flow(flows[i]))
        per_flow = print_rows("Flows in progress (login page opened)", users, rows)
        browsers = [app.test_client() for _ in range(users)]
        rows = measure(raw, users, lambda i: sign_in(browsers[i], f"user{i}"))
        print_rows("Sign-ins (everything a password login leaves in Redis)", users, rows)
        per_session = rows.get("session", (0, 0, 0))[1] // users
        issued: list[bool] = []
        rows = measure(raw, users, lambda i: issued.append(refresh_family(browsers[i], client_id)))
        print_rows("Refresh families (code + PKCE, then one refresh)", users, rows)
        if not all(issued):
            print("  (no refresh token was issued: the client or scope does not allow one)")
        print(
            "  Families live in the database (refresh_families); Redis keeps only the code's "
            "spent marker above, until it expires."
        )
        session_payload(raw)
        verdict = "within" if per_session <= GOAL else "ABOVE"
        print(
            f"\nPer active session: {per_session} B (goal {GOAL} B: {verdict}); "
            f"per flow in progress: {per_flow} B"
        )
        raw.close()


def server_cpu(node: RedisNode) -> float:
    """Seconds of CPU that the redis-server process has used, all its threads (the AOF's
    fsync runs in a background thread): unlike wall time, other load on the machine does
    not move it much."""
    assert node.proc is not None
    total = 0
    for task in Path(f"/proc/{node.proc.pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])  # nanoseconds on CPU
    return total / 1e9


def persistence(writes: int, rounds: int) -> None:
    """Session-sized writes (SET with a TTL) and reads through RedisStore, without persistence
    and with AOF everysec, in alternating rounds of the same run: the median rate of a single
    client (a request's view) and the server's CPU per operation (the capacity's view); then
    redis-benchmark with 50 clients, alternating too."""
    value = secrets.token_bytes(400)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        plain = RedisNode(free_port(), Path(tmp) / "plain", extra=["appendonly no"])
        aof = RedisNode(free_port(), Path(tmp) / "aof")
        for node in (plain, aof):
            stack.callback(node.stop)
            node.start()
        rate: dict[str, list[float]] = {"none": [], "aof": []}
        cpu: dict[str, list[float]] = {"none": [], "aof": []}
        for _ in range(rounds):
            for name, node in (("none", plain), ("aof", aof)):
                store = RedisStore(node.url)
                start, used = time.perf_counter(), server_cpu(node)
                for i in range(writes):
                    store.set(f"bench:{i}", value, 3600)
                    store.get(f"bench:{i}")
                rate[name].append(2 * writes / (time.perf_counter() - start))
                cpu[name].append((server_cpu(node) - used) / (2 * writes) * 1e6)
        print(f"\nRedisStore SET (400 B, TTL) + GET, one client, {rounds} rounds of {writes}:")
        print(f"  {'':<16}{'ops/s (median)':>16}{'server CPU us/op':>18}")
        for name, label in (("none", "no persistence"), ("aof", "AOF everysec")):
            print(f"  {label:<16}{statistics.median(rate[name]):>16.0f}"
                  f"{statistics.median(cpu[name]):>18.1f}")  # fmt: skip
        ratio = statistics.median(rate["aof"]) / statistics.median(rate["none"])
        print(f"  AOF / none: {ratio:.2f} x the rate")
        for line in _redis_benchmark(plain, aof, rounds):
            print(line)


def _redis_benchmark(plain: RedisNode, aof: RedisNode, rounds: int) -> Iterator[str]:
    n = 100000

    def run(node: RedisNode, op: str) -> tuple[float, float]:
        """Requests per second, and the server's CPU per request in microseconds."""
        used = server_cpu(node)
        out = subprocess.run(
            ["redis-benchmark", "-p", str(node.port), "-t", op, "-n", str(n), "-c", "50",
             "-d", "400", "-q"],
            capture_output=True, text=True, timeout=300, check=True,
        ).stdout  # fmt: skip
        found = re.search(r"([\d.]+) requests per second", out)
        assert found, out
        return float(found.group(1)), (server_cpu(node) - used) / n * 1e6

    yield f"redis-benchmark, 50 clients, 400 B values, {n} requests, median of {rounds}:"
    for op in ("set", "get"):
        runs: dict[str, list[tuple[float, float]]] = {"none": [], "aof": []}
        try:
            for _ in range(rounds):
                runs["none"].append(run(plain, op))
                runs["aof"].append(run(aof, op))
        except (OSError, subprocess.SubprocessError):
            return
        (r0, c0), (r1, c1) = (
            (statistics.median(r for r, _ in runs[k]), statistics.median(c for _, c in runs[k]))
            for k in ("none", "aof")
        )
        yield (
            f"  {op.upper()}  none {r0:>8.0f}/s {c0:>5.1f} us CPU   "
            f"AOF everysec {r1:>8.0f}/s {c1:>5.1f} us CPU   ({r1 / r0:.2f} x the rate)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="sign-ins and flows measured")
    parser.add_argument("--writes", type=int, default=5000, help="writes per persistence round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-persistence", action="store_true")
    args = parser.parse_args()
    memory(args.users)
    if not args.skip_persistence:
        persistence(args.writes, args.rounds)


if __name__ == "__main__":
    main()
