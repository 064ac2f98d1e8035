"""Password logins per second on one core, against the argon2id hash-only bound.

The server is ``idp serve`` with one worker pinned to CPU 0 (taskset); the load generator runs
here, pinned to CPU 1. Each login is a new browser: GET the login page (new flow, CSRF token),
POST username and password, expect the redirect to the account page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from factors.password import Argon2Params, PasswordFactor
from testkit.html import csrf_of
from testkit.servers import free_port, idp, seed, wait_for_port

PASSWORD = "quiet river lantern 7"  # not the tenant name: the rules refuse context words


def hash_only_bound(params: Argon2Params, seconds: float) -> float:
    """argon2id verifications per second on this (pinned) core."""
    pf = PasswordFactor(params)
    encoded = pf.hash(PASSWORD)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        pf.verify(encoded, PASSWORD)
        n += 1
    return n / (time.perf_counter() - start)


def one_login(base: str, username: str) -> float:
    s = requests.Session()
    page = s.get(f"{base}/t/bench/login", timeout=30)
    token = csrf_of(page.text)
    started = time.perf_counter()
    r = s.post(
        page.url,
        data={
            "csrf_token": token,
            "step": "identify",
            "username": username,
            "password": PASSWORD,
        },
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 302, (r.status_code, r.text[:200])
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    params = Argon2Params()  # the defaults the server uses

    os.sched_setaffinity(0, {0})
    bound = hash_only_bound(params, 5)
    os.sched_setaffinity(0, {1})

    tmp = Path(tempfile.mkdtemp(prefix="stepwise-bench-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        IDP_ENV="development",
        IDP_INSTANCE_PATH=str(tmp),
        IDP_LOG_LEVEL="WARNING",
        IDP_BASE_URL=f"http://127.0.0.1:{port}",
        IDP_THROTTLE_IP_LIMIT="100",
    )
    seed(env, "bench", "user0", PASSWORD)
    for i in range(1, args.clients):  # one account per client: logins to one account queue up
        assert (
            idp(
                env,
                "user",
                "create",
                "bench",
                f"user{i}",
                "--email",
                f"u{i}@bench.test",
                "--password-stdin",
                stdin=PASSWORD + "\n",
            ).returncode
            == 0
        )
    import subprocess

    exe = str(Path(sys.executable).parent / "idp")
    server = subprocess.Popen(
        ["taskset", "-c", "0", exe, "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server)
        base = f"http://127.0.0.1:{port}"
        for _ in range(5):
            one_login(base, "user0")  # warm-up
        latencies: list[float] = []
        lock = threading.Lock()
        deadline = time.perf_counter() + args.seconds

        def client(username: str) -> None:
            while time.perf_counter() < deadline:
                t = one_login(base, username)
                with lock:
                    latencies.append(t)

        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(f"user{i}",)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(10)

    rate = len(latencies) / elapsed
    q = statistics.quantiles(latencies, n=100)
    print(f"argon2id m={params.memory_kib}KiB t={params.time_cost} p={params.parallelism}")
    print(f"hash-only bound (verify, 1 core):   {bound:7.1f} /s")
    print(f"full password logins (1 core):      {rate:7.1f} /s  ({rate / bound:.0%} of the bound)")
    print(
        f"login POST latency: p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms "
        f"({len(latencies)} logins, {args.clients} clients, {elapsed:.1f} s)"
    )


if __name__ == "__main__":
    main()
