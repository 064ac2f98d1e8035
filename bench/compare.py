"""Stepwise side by side with node oidc-provider (bench/peer/, pinned by its lockfile).

Both servers run at once, each with one process pinned to CPU 0 (taskset); wrk, one thread,
pinned to CPU 1. The rounds alternate (ABAB): in each round every case runs against
Stepwise, then against the peer, so drift on the machine falls on both alike. Cases:
client_credentials (POST, basic auth, RS256 JWT), refresh_token with rotation, GET JWKS and
GET discovery. Refresh tokens are single use: each wrk connection starts from a token of its
own, minted beforehand through a real authorization code flow, and sends the refresh token
of each answer in its next request (a per-thread pool in the Lua script), so no token is sent
twice. wrk runs closed loop, so its p50/p99 are at saturation.

Stepwise runs on its embedded defaults (SQLite, in-process store) in a fresh instance dir, or
on PostgreSQL + Redis with ``--postgres URL --redis URL``.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.oidc import CALLBACK, PASSWORD, mint_refresh_tokens
from testkit.servers import free_port, idp, seed, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
TENANT = "perf"  # not "bench": the password policy refuses a password holding its name

PEER_DIR = ROOT / "bench" / "peer"
PEER_SECRET = "bench-secret"  # the peer's benchmark client, on loopback

STATIC_LUA = """
wrk.method = "{method}"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "{auth}"
"""

# Each thread holds a pool of live refresh tokens: a request takes one out, its answer puts
# the rotated one back. With at most one request in flight per connection and one token per
# connection to start with (plus one for wrk's start-up check), the pool never runs dry
# unless a refresh fails.
REFRESH_LUA = """
local tokens_file, auth, path = "{tokens}", "{auth}", "{path}"
function init(args)
  pool, failed = {{}}, 0
  for line in io.lines(tokens_file) do table.insert(pool, line) end
end
function request()
  local token = table.remove(pool) or "exhausted"
  return wrk.format("POST", path, {{
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auth,
  }}, "grant_type=refresh_token&refresh_token=" .. token)
end
function response(status, headers, body)
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if status == 200 and token then table.insert(pool, token) else failed = failed + 1 end
end
"""


@dataclass
class Server:
    name: str
    base: str
    prefix: str  # path of the issuer under base
    client_id: str
    secret: str
    mint: Callable[[int], list[str]]  # n fresh refresh tokens
    proc: subprocess.Popen[bytes]


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    bad: int


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, script: Path | None, seconds: float, connections: int) -> Run:
    """One wrk run on CPU 1; its req/s, latency percentiles and non-2xx count."""
    cmd = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
    ]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if not (rate and p50 and p99):
        raise RuntimeError(f"wrk output not understood:\n{text}\n{out.stderr}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    count = int(bad.group(1)) if bad else 0
    count += sum(int(g) for g in errors.groups()) if errors else 0
    return Run(float(rate.group(1)), to_ms(p50.group(1)), to_ms(p99.group(1)), count)


def mint_peer_tokens(base: str, n: int) -> list[str]:
    """n refresh tokens from the peer: code flows through its dev interactions (any login)."""
    out = []
    for i in range(n):
        browser = requests.Session()
        url = f"{base}/auth?" + urlencode({
            "client_id": "bench", "response_type": "code", "redirect_uri": CALLBACK,
            "scope": "openid offline_access", "prompt": "consent", "state": str(i),
        })  # fmt: skip
        method, data = "GET", None
        for _ in range(12):
            resp = browser.request(method, url, data=data, allow_redirects=False, timeout=10)
            if resp.is_redirect:
                url, method, data = urljoin(url, resp.headers["Location"]), "GET", None
                if url.startswith(CALLBACK):
                    break
                continue
            form = re.search(r'<form[^>]*action="([^"]+)"', resp.text)
            if not form:
                raise RuntimeError(f"peer page without a form: {resp.text[:300]}")
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                                     resp.text))  # fmt: skip
            if fields.get("prompt") == "login":
                fields.update(login=f"user{i}", password=PASSWORD)
            method, url, data = "POST", urljoin(url, html.unescape(form.group(1))), fields
        code = parse_qs(urlsplit(url).query)["code"][0]
        answer = requests.post(f"{base}/token", auth=("bench", PEER_SECRET), timeout=10, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        }).json()  # fmt: skip
        out.append(answer["refresh_token"])
    return out


def start_stepwise(args: argparse.Namespace, tmp: Path) -> Server:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_ENV="development", IDP_INSTANCE_PATH=str(tmp / "instance"),
               IDP_LOG_LEVEL="WARNING", IDP_BASE_URL=base)  # fmt: skip
    if args.postgres:
        env["IDP_DATABASE_URL"] = args.postgres
    if args.redis:
        env["IDP_REDIS_URL"] = args.redis
    seed(env, TENANT, "user0", PASSWORD)
    made = idp(env, "client", "create", TENANT, "--name", "Bench", "--redirect-uri", CALLBACK,
               "--json")  # fmt: skip
    if made.returncode != 0:
        raise RuntimeError(f"idp client create failed: {made.stderr.strip()}")
    creds = json.loads(made.stdout)
    exe = str(Path(sys.executable).parent / "idp")
    log = (tmp / "stepwise.log").open("wb")
    proc = subprocess.Popen(
        ["taskset", "-c", "0", exe, "serve", "--port", str(port), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_port(port, proc)
    cid, secret = creds["client_id"], creds["client_secret"]

    def mint(n: int) -> list[str]:
        return mint_refresh_tokens(f"{base}/t/{TENANT}", cid, secret, n)

    return Server("Stepwise", base, f"/t/{TENANT}", cid, secret, mint, proc)


def start_peer(tmp: Path) -> Server:
    if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER_DIR, check=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PEER_CLIENT_SECRET=PEER_SECRET)
    log = (tmp / "peer.log").open("wb")
    proc = subprocess.Popen(
        ["taskset", "-c", "0", "node", "server.mjs", str(port)],
        cwd=PEER_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_port(port, proc)
    return Server("oidc-provider", base, "", "bench", PEER_SECRET,
                  lambda n: mint_peer_tokens(base, n), proc)  # fmt: skip


def scripts(server: Server, tmp: Path, connections: int, rounds: int) -> dict[str, Path | None]:
    """The wrk script of each case for ``server`` (refresh: one token file per round)."""
    auth = basic(server.client_id, server.secret)
    cc = tmp / f"{server.name}-cc.lua"
    cc.write_text(STATIC_LUA.format(method="POST", body="grant_type=client_credentials",
                                    auth=auth))  # fmt: skip
    found: dict[str, Path | None] = {"client_credentials": cc, "jwks": None, "discovery": None}
    # One token per connection, and one for the request() call wrk makes at start-up to
    # check the script, which it never sends.
    per_round = connections + 1
    tokens = server.mint(per_round * rounds)
    for r in range(rounds):
        chunk = tmp / f"{server.name}-tokens-{r}.txt"
        chunk.write_text("\n".join(tokens[r * per_round : (r + 1) * per_round]) + "\n")
        lua = tmp / f"{server.name}-refresh-{r}.lua"
        lua.write_text(REFRESH_LUA.format(tokens=chunk, auth=auth, path=f"{server.prefix}/token"))
        found[f"refresh-{r}"] = lua
    return found


def url_of(server: Server, case: str) -> str:
    path = {"jwks": "/jwks", "discovery": "/.well-known/openid-configuration"}.get(case, "/token")
    return f"{server.base}{server.prefix}{path}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--postgres", help="Stepwise's database URL (default: SQLite)")
    ap.add_argument("--redis", help="Stepwise's Redis URL (default: in-process store)")
    args = ap.parse_args()
    if args.rounds < 3:
        ap.error("at least 3 rounds (ABAB)")

    tmp = Path(tempfile.mkdtemp(prefix="stepwise-compare-"))
    servers: list[Server] = []
    try:
        servers = [start_stepwise(args, tmp), start_peer(tmp)]
        lua = {s.name: scripts(s, tmp, args.connections, args.rounds) for s in servers}
        cases = ["client_credentials", "refresh_token", "jwks", "discovery"]
        results: dict[tuple[str, str], list[Run]] = {}
        for s in servers:  # warm-up: JIT, caches, connection pools
            for case in ("client_credentials", "jwks", "discovery"):
                wrk(url_of(s, case), lua[s.name][case], 1, args.connections)
        for r in range(args.rounds):
            for case in cases:
                for s in servers:
                    key = f"refresh-{r}" if case == "refresh_token" else case
                    run = wrk(url_of(s, case), lua[s.name][key], args.seconds, args.connections)
                    results.setdefault((case, s.name), []).append(run)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        report(args, cases, servers, results)
    finally:
        for s in servers:
            s.proc.terminate()
            s.proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    args: argparse.Namespace,
    cases: list[str],
    servers: list[Server],
    results: dict[tuple[str, str], list[Run]],
) -> None:
    store = "PostgreSQL + Redis" if args.postgres else "SQLite + in-process store"
    print(f"\nStepwise ({store}, idp serve --workers 1) vs node oidc-provider "
          f"{peer_version()}; each on CPU 0, wrk -t1 -c{args.connections} on CPU 1; "
          f"{args.rounds} rounds ABAB of {args.seconds:g} s; median of rounds\n")  # fmt: skip
    head = "| case | Stepwise req/s | peer req/s | ratio | Stepwise p50/p99 ms | peer p50/p99 ms |"
    print(head + " spread Stepwise | spread peer | non-2xx |")
    print("|---" * 9 + "|")
    for case in cases:
        a, b = results[(case, servers[0].name)], results[(case, servers[1].name)]
        ra, rb = (statistics.median(x.rate for x in runs) for runs in (a, b))
        print(f"| {case} | {ra:,.0f} | {rb:,.0f} | {ra / rb:.2f} | "
              f"{lat(a)} | {lat(b)} | {spread(a)} | {spread(b)} | "
              f"{sum(x.bad for x in a)} / {sum(x.bad for x in b)} |")  # fmt: skip
    if any(x.bad for runs in results.values() for x in runs):
        print("\nWARNING: some requests failed (non-2xx column): those rates are not comparable")


def lat(runs: list[Run]) -> str:
    return (f"{statistics.median(x.p50_ms for x in runs):.1f} / "
            f"{statistics.median(x.p99_ms for x in runs):.1f}")  # fmt: skip


def spread(runs: list[Run]) -> str:
    """Lowest to highest round, and that range as a share of the median."""
    rates = [x.rate for x in runs]
    mid = statistics.median(rates)
    return f"{min(rates):,.0f}-{max(rates):,.0f} (±{(max(rates) - min(rates)) / 2 / mid:.0%})"


def peer_version() -> str:
    lock = json.loads((PEER_DIR / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/oidc-provider"]["version"])


if __name__ == "__main__":
    main()
