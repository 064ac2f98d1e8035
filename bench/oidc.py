"""Token endpoint throughput per core: client_credentials, refresh_token with rotation, and
JWKS GET (the framework floor).

The server is ``idp serve`` with one worker pinned to CPU 0 (taskset, SQLite, in-process
store); this load generator is pinned to CPU 1 and keeps one HTTP/1.1 connection per client
thread. Each endpoint is measured twice:
1. closed loop, ``--clients`` threads as fast as the server answers -> max req/s;
2. open loop at 80 % of that rate (each request has a scheduled start; latency counts from
   it, so queueing is not hidden) -> p50/p99 latency.
Refresh requests each use the newest token of their own family (rotation on every use).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from testkit.servers import free_port, idp, seed, wait_for_port
from testkit.signin import sign_in

PASSWORD = "quiet river lantern 7"  # not the tenant name: the rules refuse context words
CALLBACK = "http://127.0.0.1:9/cb"

Call = Callable[[http.client.HTTPConnection], None]


def mint_refresh_tokens(issuer: str, client_id: str, secret: str, n: int) -> list[str]:
    """n independent grants from one signed-in browser (prompt=none after the first login)."""
    browser, out = requests.Session(), []
    for i in range(n):
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK,
            "scope": "openid profile", "state": str(i),
            "code_challenge": challenge.rstrip(b"=").decode(), "code_challenge_method": "S256",
        })  # fmt: skip
        landed = sign_in(browser, f"{issuer}/authorize?{query}", CALLBACK, "user0", PASSWORD)
        code = dict(p.split("=", 1) for p in urlsplit(landed).query.split("&"))["code"]
        r = requests.post(f"{issuer}/token", auth=(client_id, secret), timeout=10, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": verifier})  # fmt: skip
        out.append(r.json()["refresh_token"])
    return out


def run(
    port: int, calls: list[Call], seconds: float, rate: float | None
) -> tuple[float, list[float]]:
    """One thread per call; closed loop when ``rate`` is None, else open loop at ``rate``."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + seconds

    def worker(call: Call, index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        interval = len(calls) / rate if rate else 0.0
        scheduled = start + index * interval / len(calls)
        while True:
            if rate:
                now = time.perf_counter()
                if scheduled > now:
                    time.sleep(scheduled - now)
                began = scheduled
                scheduled += interval
            else:
                began = time.perf_counter()
            if began >= deadline:
                break
            call(conn)
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(c, i)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - start), latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()

    os.sched_setaffinity(0, {1})
    tmp = Path(tempfile.mkdtemp(prefix="stepwise-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_ENV="development", IDP_INSTANCE_PATH=str(tmp), IDP_LOG_LEVEL="WARNING",
               IDP_BASE_URL=base)  # fmt: skip
    seed(env, "bench", "user0", PASSWORD)
    out = idp(env, "client", "create", "bench", "--name", "Bench", "--redirect-uri", CALLBACK,
              "--json")  # fmt: skip
    creds = json.loads(out.stdout)
    client_id, secret = creds["client_id"], creds["client_secret"]
    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    form = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": basic}
    exe = str(Path(sys.executable).parent / "idp")
    server = subprocess.Popen(
        ["taskset", "-c", "0", exe, "serve", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    issuer = f"{base}/t/bench"
    try:
        wait_for_port(port, server)

        def jwks(conn: http.client.HTTPConnection) -> None:
            conn.request("GET", "/t/bench/jwks")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read()

        def client_credentials(conn: http.client.HTTPConnection) -> None:
            conn.request("POST", "/t/bench/token", "grant_type=client_credentials", form)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body

        def refresher(token: str) -> Call:
            chain = [token]

            def call(conn: http.client.HTTPConnection) -> None:
                body = urlencode({"grant_type": "refresh_token", "refresh_token": chain[0]})
                conn.request("POST", "/t/bench/token", body, form)
                resp = conn.getresponse()
                answer = json.loads(resp.read())
                assert resp.status == 200, answer
                chain[0] = answer["refresh_token"]

            return call

        tokens = mint_refresh_tokens(issuer, client_id, secret, 2 * args.clients)
        cases: list[tuple[str, list[Call], list[Call]]] = [
            ("JWKS GET", [jwks] * args.clients, [jwks] * args.clients),
            ("client_credentials (RS256 JWT)", [client_credentials] * args.clients,
             [client_credentials] * args.clients),
            ("refresh_token (rotation)", [refresher(t) for t in tokens[: args.clients]],
             [refresher(t) for t in tokens[args.clients :]]),
        ]  # fmt: skip
        print(f"server: idp serve, 1 worker on CPU 0; load: {args.clients} connections on CPU 1")
        for name, closed, opened in cases:
            run(port, closed, 2, None)  # warm-up
            top, _ = run(port, closed, args.seconds, None)
            _, lat = run(port, opened, args.seconds, 0.8 * top)
            q = statistics.quantiles(lat, n=100)
            print(f"{name:32s} {top:7.0f} req/s max;  at 80% ({0.8 * top:.0f}/s): "
                  f"p50 {q[49] * 1000:5.1f} ms  p99 {q[98] * 1000:5.1f} ms")  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
