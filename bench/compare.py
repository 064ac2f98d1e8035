"""Stepwise side by side with node oidc-provider (bench/peer/, pinned by its lockfile).

Both servers run at once, each with one process pinned to CPU 0 (taskset); wrk, one thread,
pinned to CPU 1. The rounds alternate (ABAB): in each round every case runs against
Stepwise, then against the peer, so drift on the machine falls on both alike. Cases:
client_credentials (POST, basic auth, RS256 JWT), refresh_token with rotation, GET JWKS and
GET discovery. Refresh tokens are single use: each wrk connection starts from a token of its
own, minted beforehand through a real authorization code flow, and sends the refresh token
of each answer in its next request (a per-thread pool in the Lua script), so no token is sent
twice. wrk runs closed loop, so the p50/p99 of those rounds are at saturation.

After the rounds, each case runs once more against each server paced at 80 % of that
server's own peak (the lower of the median of its rounds and a 3 s saturation run just
before, since a shared machine's capacity drifts): a ``delay()`` in the Lua script hands out send
slots on a fixed schedule (CLOCK_MONOTONIC through LuaJIT's ffi), and the script counts the
sends that left late (every connection busy: wrk's latency starts at the send, so a late
send hides its wait). It prints the target and achieved rates and p50/p99.

``--scaling`` measures Stepwise alone instead: ``idp serve --workers 1`` on CPU 0 against
``--workers 2`` on CPUs 0-1, token grants, ABAB. Two workers need the shared store, so that
run starts a redis-server and both instances use it (DB 1 and DB 2).

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
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.oidc import CALLBACK, PASSWORD, mint_refresh_tokens
from testkit.servers import (
    create_database,
    free_port,
    idp,
    postgres_server,
    redis_server,
    seed,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parent.parent
TENANT = "perf"  # not "bench": the password policy refuses a password holding its name

PEER_DIR = ROOT / "bench" / "peer"
PEER_SECRET = "bench-secret"  # the peer's benchmark client, on loopback

LOAD = 0.8  # the paced runs' share of each server's peak
PEAK_SECONDS = 3  # the saturation run just before each paced run
LATE_MS = 5  # a paced send this far behind its slot counts as late

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

# Appended to a case's script (or alone): open loop at a fixed rate, for one wrk thread.
# delay() runs when a connection is free to send and gives it the next slot of the schedule
# (a slot every {interval} ms from the first call), so a late send does not shift the ones
# after it. wrk sleeps in whole milliseconds, hence the ceil: a send leaves 0-1 ms after its
# slot, and several slots may share a millisecond at high rates. request() wraps the case's
# own (or wrk's static request) to measure how far each send left behind its slot; wrk calls
# it once before the run to check the script, when no slot is out yet.
PACE_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} pace_timespec;
int clock_gettime(int clk_id, pace_timespec *tp);
]]
local pace_ts = ffi.new("pace_timespec")
local function pace_now()  -- CLOCK_MONOTONIC, in ms
  ffi.C.clock_gettime(1, pace_ts)
  return tonumber(pace_ts.tv_sec) * 1000 + tonumber(pace_ts.tv_nsec) / 1e6
end
local pace_interval, pace_late_ms = {interval}, {late_ms}
local pace_next, pace_due, pace_head, pace_tail = nil, {{}}, 1, 0
pace_sent, pace_late, pace_lag_max = 0, 0, 0
function delay()
  local now = pace_now()
  pace_next = pace_next and pace_next + pace_interval or now
  pace_tail = pace_tail + 1
  pace_due[pace_tail] = pace_next
  return math.max(0, math.ceil(pace_next - now))
end
local pace_inner = request
function request()
  if pace_head <= pace_tail then
    local lag = pace_now() - pace_due[pace_head]
    pace_due[pace_head] = nil
    pace_head, pace_sent = pace_head + 1, pace_sent + 1
    if lag > pace_late_ms then pace_late = pace_late + 1 end
    if lag > pace_lag_max then pace_lag_max = lag end
  end
  if pace_inner then return pace_inner() end
  return wrk.request()
end
local pace_threads = {{}}
function setup(thread) table.insert(pace_threads, thread) end
function done(summary, latency, requests)
  for _, t in ipairs(pace_threads) do
    io.write(string.format("pace: sent %d late %d max_lag_ms %.1f\\n",
      t:get("pace_sent"), t:get("pace_late"), t:get("pace_lag_max")))
  end
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
    wrk_cpu_s: float = 0.0  # wrk's own user + system time
    sent: int = 0  # paced runs: sends, sends behind their slot by > LATE_MS, the worst lag
    late: int = 0
    lag_max_ms: float = 0.0


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(
    url: str, script: Path | None, seconds: float, connections: int, cpus: str | None = "1"
) -> Run:
    """One wrk run (pinned to ``cpus``, or where the scheduler puts it when None); its req/s,
    latency percentiles, non-2xx count, CPU time and, for a paced script, its send lag."""
    cmd = ["taskset", "-c", cpus] if cpus else []
    cmd += ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run = Run(float(rate.group(1)), to_ms(p50.group(1)), to_ms(p99.group(1)), count, cpu)
    pace = re.search(r"^pace: sent (\d+) late (\d+) max_lag_ms ([\d.]+)", text, re.M)
    if pace:
        run.sent, run.late, run.lag_max_ms = int(pace[1]), int(pace[2]), float(pace[3])
    return run


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


def start_stepwise(
    tmp: Path,
    name: str = "Stepwise",
    postgres: str | None = None,
    redis_url: str | None = None,
    workers: int = 1,
    cpus: str = "0",
    source: Path | None = None,
) -> Server:
    """A seeded Stepwise in a fresh instance dir under ``tmp``, pinned to ``cpus``; with
    ``source``, the ``idp`` package of that checkout (a worktree of another commit)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    home = tmp / name.replace(" ", "-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_ENV="development", IDP_INSTANCE_PATH=str(home / "instance"),
               IDP_LOG_LEVEL="WARNING", IDP_BASE_URL=base)  # fmt: skip
    if postgres:
        env["IDP_DATABASE_URL"] = postgres
    if redis_url:
        env["IDP_REDIS_URL"] = redis_url
    if source is not None:
        env["PYTHONPATH"] = str(source)
    seed(env, TENANT, "user0", PASSWORD)
    made = idp(env, "client", "create", TENANT, "--name", "Bench", "--redirect-uri", CALLBACK,
               "--json")  # fmt: skip
    if made.returncode != 0:
        raise RuntimeError(f"idp client create failed: {made.stderr.strip()}")
    creds = json.loads(made.stdout)
    exe = str(Path(sys.executable).parent / "idp")
    log = (home / "stepwise.log").open("wb")
    serve = [exe, "serve", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(["taskset", "-c", cpus, *serve], env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    wait_for_port(port, proc)
    cid, secret = creds["client_id"], creds["client_secret"]

    def mint(n: int) -> list[str]:
        return mint_refresh_tokens(f"{base}/t/{TENANT}", cid, secret, n)

    return Server(name, base, f"/t/{TENANT}", cid, secret, mint, proc)


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


def scripts(
    server: Server, tmp: Path, connections: int, rounds: int, paced_connections: int = 0
) -> dict[str, str]:
    """The Lua of each case for ``server`` ("" for a plain GET). Refresh has one token file
    per round, ``refresh-0``..., and with ``paced_connections`` one more, ``refresh-paced``."""
    auth = basic(server.client_id, server.secret)
    cc = STATIC_LUA.format(method="POST", body="grant_type=client_credentials", auth=auth)
    found = {"client_credentials": cc, "jwks": "", "discovery": ""}
    # One token per connection, and one for the request() call wrk makes at start-up to
    # check the script, which it never sends.
    chunks = [(f"refresh-{r}", connections + 1) for r in range(rounds)]
    if paced_connections:
        chunks.append(("refresh-paced", paced_connections + 1))
        chunks.append(("refresh-peak", connections + 1))
    tokens = server.mint(sum(n for _, n in chunks))
    tag = server.name.replace(" ", "-")
    for key, n in chunks:
        chunk = tmp / f"{tag}-{key}.txt"
        chunk.write_text("\n".join(tokens[:n]) + "\n")
        del tokens[:n]
        path = f"{server.prefix}/token"
        found[key] = REFRESH_LUA.format(tokens=chunk, auth=auth, path=path)
    return found


def script_file(tmp: Path, server: Server, key: str, lua: str) -> Path | None:
    if not lua:
        return None
    path = tmp / f"{server.name.replace(' ', '-')}-{key}.lua"
    path.write_text(lua)
    return path


def url_of(server: Server, case: str) -> str:
    path = {"jwks": "/jwks", "discovery": "/.well-known/openid-configuration"}.get(case, "/token")
    return f"{server.base}{server.prefix}{path}"


def stop(servers: list[Server]) -> None:
    for s in servers:
        s.proc.terminate()
        s.proc.wait(20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--paced-seconds", type=float, default=10, help="each paced run")
    ap.add_argument(
        "--paced-connections",
        type=int,
        default=128,
        help="connections open in the paced runs (only those in flight are used)",
    )
    ap.add_argument("--postgres", help="Stepwise's database URL (default: SQLite)")
    ap.add_argument("--redis", help="Stepwise's Redis URL (default: in-process store)")
    ap.add_argument(
        "--scaling",
        action="store_true",
        help="Stepwise alone: 2 workers on 2 CPUs against 1 on 1 (starts its own redis-server)",
    )
    ap.add_argument(
        "--stores",
        action="store_true",
        help="Stepwise alone: PostgreSQL + Redis against SQLite + in-process (starts both); "
        "with --scaling, scaling on PostgreSQL",
    )
    ap.add_argument("--quick", action="store_true", help="allow fewer than 3 rounds (development)")
    args = ap.parse_args()
    if args.rounds < 3 and not args.quick:
        ap.error("at least 3 rounds (ABAB)")
    if args.scaling and (args.postgres or args.redis):
        ap.error("--scaling starts its own redis-server (and with --stores its own PostgreSQL)")
    if args.quick:
        print("--quick: a development run, not a measurement", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="stepwise-compare-"))
    try:
        if args.scaling and args.stores:
            with redis_server(tmp) as url, postgres_server() as pg_url:
                pin_to_cpu1(pg_url, url)
                pgs = (create_database(pg_url, "bench_one"), create_database(pg_url, "bench_two"))
                scaling(args, tmp, url, pgs)
        elif args.scaling:
            with redis_server(tmp) as url:
                scaling(args, tmp, url)
        elif args.stores:
            with redis_server(tmp) as redis_url, postgres_server() as pg_url:
                pin_to_cpu1(pg_url, redis_url)
                stores(args, tmp, create_database(pg_url, "bench_stores"), redis_url)
        else:
            compare(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def saturation_rounds(
    args: argparse.Namespace,
    servers: list[Server],
    files: dict[tuple[str, str], Path | None],
    cases: list[str],
) -> dict[tuple[str, str], list[Run]]:
    """A warm-up, then ``args.rounds`` rounds in which every case runs against every server
    in turn (ABAB); each case's runs by (case, server name)."""
    results: dict[tuple[str, str], list[Run]] = {}
    for s in servers:  # warm-up: JIT, caches, connection pools
        for case in ("client_credentials", "jwks", "discovery"):
            wrk(url_of(s, case), files[(s.name, case)], 1, args.connections)
    for r in range(args.rounds):
        for case in cases:
            for s in servers:
                key = f"refresh-{r}" if case == "refresh_token" else case
                run = wrk(url_of(s, case), files[(s.name, key)], args.seconds, args.connections)
                results.setdefault((case, s.name), []).append(run)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    return results


def compare(args: argparse.Namespace, tmp: Path) -> None:
    """Stepwise and the peer: the saturation rounds, then one paced run per case and server."""
    servers: list[Server] = []
    try:
        servers.append(start_stepwise(tmp, postgres=args.postgres, redis_url=args.redis))
        servers.append(start_peer(tmp))
        lua = {
            s.name: scripts(s, tmp, args.connections, args.rounds, args.paced_connections)
            for s in servers
        }
        files = {
            (s.name, key): script_file(tmp, s, key, text)
            for s in servers
            for key, text in lua[s.name].items()
        }
        cases = ["client_credentials", "refresh_token", "jwks", "discovery"]
        results = saturation_rounds(args, servers, files, cases)
        paced: dict[tuple[str, str], tuple[float, Run]] = {}
        for case in cases:
            for s in servers:
                # The machine's capacity drifts (a shared VM): the peak is measured again
                # just before, and the lower figure is the one paced against.
                peak_key = "refresh-peak" if case == "refresh_token" else case
                now = wrk(url_of(s, case), files[(s.name, peak_key)], PEAK_SECONDS,
                          args.connections)  # fmt: skip
                median = statistics.median(x.rate for x in results[(case, s.name)])
                target = LOAD * min(median, now.rate)
                key = "refresh-paced" if case == "refresh_token" else case
                pace = PACE_LUA.format(interval=f"{1000 / target:.6f}", late_ms=LATE_MS)
                script = script_file(tmp, s, f"{key}-paced", lua[s.name][key] + pace)
                run = wrk(url_of(s, case), script, args.paced_seconds, args.paced_connections)
                paced[(case, s.name)] = (target, run)
        print("paced runs done", file=sys.stderr)
    finally:
        stop(servers)
    report(args, cases, servers, results)
    report_paced(args, cases, servers, paced)


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
    pair_rows(cases, servers, results, second_over_first=False)
    if any(x.bad for runs in results.values() for x in runs):
        print("\nWARNING: some requests failed (non-2xx column): those rates are not comparable")


def report_paced(
    args: argparse.Namespace,
    cases: list[str],
    servers: list[Server],
    paced: dict[tuple[str, str], tuple[float, Run]],
) -> None:
    print(f"\nPaced at {LOAD:.0%} of each server's own peak (the lower of the median above "
          f"and a {PEAK_SECONDS} s saturation run just before): one run of "
          f"{args.paced_seconds:g} s per case and server, wrk -t1 -c{args.paced_connections} on "
          f"CPU 1 with a delay() that hands out send slots on a fixed schedule (open loop). "
          f"Latency counts from the send, so a send more than {LATE_MS} ms behind its slot "
          f"(no free connection) is counted as late: its wait is not in p50/p99.\n")  # fmt: skip
    print("| case | Stepwise target req/s | achieved | p50/p99 ms | peer target req/s | "
          "achieved | p50/p99 ms | late sends (worst lag) S / peer | non-2xx |")  # fmt: skip
    print("|---" * 9 + "|")
    notes = []
    for case in cases:
        cells = []
        for s in servers:
            target, run = paced[(case, s.name)]
            cells.append(f"{target:,.0f} | {run.rate:,.0f} ({run.rate / target:.0%}) | "
                         f"{run.p50_ms:.1f} / {run.p99_ms:.1f}")  # fmt: skip
            if abs(run.rate / target - 1) > 0.05:
                why = ("the server fell behind the schedule" if run.late
                       else "wrk did not keep to the schedule")  # fmt: skip
                notes.append(f"{case}, {s.name}: achieved {run.rate:,.0f} of {target:,.0f} "
                             f"req/s ({why}; worst lag {run.lag_max_ms:.0f} ms)")  # fmt: skip
            if run.sent and run.late / run.sent > 0.01:
                notes.append(f"{case}, {s.name}: {run.late / run.sent:.1%} of sends late, so "
                             f"its p99 is understated (no free connection of the "
                             f"{args.paced_connections} at their slot, or wrk itself behind; "
                             f"try more --paced-connections)")  # fmt: skip
        a, b = (paced[(case, s.name)][1] for s in servers)
        print(f"| {case} | {' | '.join(cells)} | {late(a)} / {late(b)} | {a.bad} / {b.bad} |")
    ours = [(case, paced[(case, servers[0].name)][1]) for case in cases]
    over = [f"{case} ({run.p99_ms:.0f} ms)" for case, run in ours if run.p99_ms >= 50]
    print(f"\nStepwise p99 < 50 ms at {LOAD:.0%} of peak (issue 17): "
          + ("every case" if not over else "not met for " + ", ".join(over)))  # fmt: skip
    for note in notes:
        print(f"NOTE: {note}")
    if any(run.bad for _, run in paced.values()):
        print("WARNING: some paced requests failed (non-2xx column)")


def late(run: Run) -> str:
    """The share of sends more than LATE_MS behind their slot, and the worst lag."""
    return f"{run.late / run.sent:.1%} ({run.lag_max_ms:.0f} ms)" if run.sent else "n/a"


def pin_to_cpu1(pg_url: str, redis_url: str) -> None:
    """PostgreSQL and Redis share CPU 1 with wrk, as they would live on other machines in
    production: CPU 0 is Stepwise's alone in both configurations. Children forked later
    (PostgreSQL's backends) inherit the pin."""
    for port in (urlsplit(pg_url).port, urlsplit(redis_url).port):
        found = subprocess.run(["pgrep", "-f", f"(-p|port) {port}"], capture_output=True,
                               text=True).stdout.split()  # fmt: skip
        for pid in found:
            subprocess.run(["taskset", "-a", "-c", "-p", "1", pid], capture_output=True)


def stores(args: argparse.Namespace, tmp: Path, pg_url: str, redis_url: str) -> None:
    """Stepwise on SQLite + the in-process store against PostgreSQL + Redis, both one worker
    on CPU 0, every case, ABAB."""
    servers: list[Server] = []
    try:
        servers.append(start_stepwise(tmp, "SQLite + in-process"))
        servers.append(start_stepwise(tmp, "PostgreSQL + Redis", postgres=pg_url,
                                      redis_url=redis_url))  # fmt: skip
        files = {
            (s.name, key): script_file(tmp, s, key, text)
            for s in servers
            for key, text in scripts(s, tmp, args.connections, args.rounds).items()
        }
        cases = ["client_credentials", "refresh_token", "jwks", "discovery"]
        results = saturation_rounds(args, servers, files, cases)
    finally:
        stop(servers)
    print(f"\nStores: Stepwise idp serve --workers 1 on CPU 0, SQLite + in-process store against "
          f"PostgreSQL + Redis (both pinned to CPU 1 with wrk -t1 -c{args.connections}); "
          f"{args.rounds} rounds ABAB of {args.seconds:g} s; median of rounds\n")  # fmt: skip
    print("| case | SQLite + in-process req/s | PostgreSQL + Redis req/s | ratio | "
          "p50/p99 ms SQLite | p50/p99 ms PG + Redis | spread SQLite | spread PG + Redis | "
          "non-2xx |")  # fmt: skip
    print("|---" * 9 + "|")
    pair_rows(cases, servers, results, second_over_first=True)


def scaling(
    args: argparse.Namespace, tmp: Path, redis_url: str, pgs: tuple[str, str] | None = None
) -> None:
    """Stepwise alone: 2 workers on CPUs 0-1 against 1 worker on CPU 0, token grants, ABAB;
    on SQLite each, or with ``pgs`` a PostgreSQL database each."""
    servers: list[Server] = []
    try:
        db = redis_url.rsplit("/", 1)[0]
        one, two = pgs or (None, None)
        servers.append(start_stepwise(tmp, "Stepwise 1 worker", redis_url=f"{db}/1",
                                      postgres=one))  # fmt: skip
        servers.append(start_stepwise(tmp, "Stepwise 2 workers", redis_url=f"{db}/2",
                                      workers=2, cpus="0,1", postgres=two))  # fmt: skip
        files = {
            (s.name, key): script_file(tmp, s, key, text)
            for s in servers
            for key, text in scripts(s, tmp, args.connections, args.rounds).items()
        }
        cases = ["client_credentials", "refresh_token"]
        results: dict[tuple[str, str], list[tuple[Run, float, float]]] = {}
        store = redis.Redis.from_url(redis_url)
        for s in servers:  # warm-up, every worker
            wrk(url_of(s, "client_credentials"), files[(s.name, "client_credentials")], 2,
                args.connections, cpus=None)  # fmt: skip
        for r in range(args.rounds):
            for case in cases:
                for s in servers:
                    key = f"refresh-{r}" if case == "refresh_token" else case
                    cpu0, redis0 = tree_cpu(s.proc.pid), redis_cpu(store)
                    run = wrk(url_of(s, case), files[(s.name, key)], args.seconds,
                              args.connections, cpus=None)  # fmt: skip
                    cpu1, redis1 = tree_cpu(s.proc.pid), redis_cpu(store)
                    results.setdefault((case, s.name), []).append(
                        (run, cpu1 - cpu0, redis1 - redis0)
                    )
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        stop(servers)
    if pgs:
        print("\nBoth on PostgreSQL (a database each; the cluster pinned to CPU 1, so with 2 "
              "workers it shares a core with one of them) instead of SQLite.")  # fmt: skip
    report_scaling(args, cases, servers, results, redis_url)


def report_scaling(
    args: argparse.Namespace,
    cases: list[str],
    servers: list[Server],
    results: dict[tuple[str, str], list[tuple[Run, float, float]]],
    redis_url: str,
) -> None:
    seconds = max(1, round(args.seconds))
    print(
        f"\nScaling: Stepwise alone, idp serve --workers 1 pinned to CPU 0 (taskset -c 0) vs "
        f"--workers 2 pinned to CPUs 0-1 (taskset -c 0,1); {args.rounds} rounds ABAB of "
        f"{seconds} s; median of rounds. Each has its own SQLite instance; both use one "
        f"redis-server started for this run ({redis_url.rsplit('/', 1)[0]}, DB 1 and DB 2, "
        f"unpinned): the in-process store serves one process, and idp serve refuses "
        f"--workers 2 without IDP_REDIS_URL, so the 1-worker run uses Redis too.\n"
        f"wrk -t1 -c{args.connections} runs unpinned: with 1 worker the scheduler puts it "
        f"(and redis-server) on the free CPU 1; with 2 workers they share the two cores with "
        f"the server, so their CPU comes out of the 2-worker budget (the 'wrk + redis' "
        f"column, in cores). 'server cores' is the CPU time of idp serve and its processes "
        f"per second of run (from /proc), 'req per server CPU s' its cost per request.\n"
    )
    print("| case | 1 worker req/s | 2 workers req/s | ratio 2/1 | 1w p50/p99 ms | "
          "2w p50/p99 ms | spread 1w | spread 2w | server cores 1w / 2w | "
          "req per server CPU s 1w / 2w | wrk + redis cores 1w / 2w | non-2xx |")  # fmt: skip
    print("|---" * 12 + "|")
    ratios = []
    for case in cases:
        a, b = (results[(case, s.name)] for s in servers)
        ra, rb = (statistics.median(x[0].rate for x in runs) for runs in (a, b))
        ratios.append((case, rb / ra))
        ca, cb = (statistics.median(x[1] for x in runs) / seconds for runs in (a, b))
        oa, ob = (statistics.median(x[0].wrk_cpu_s + x[2] for x in runs) / seconds
                  for runs in (a, b))  # fmt: skip
        runs_a, runs_b = [x[0] for x in a], [x[0] for x in b]
        print(f"| {case} | {ra:,.0f} | {rb:,.0f} | {rb / ra:.2f} | {lat(runs_a)} | "
              f"{lat(runs_b)} | {spread(runs_a)} | {spread(runs_b)} | {ca:.2f} / {cb:.2f} | "
              f"{ra / ca:,.0f} / {rb / cb:,.0f} | {oa:.2f} / {ob:.2f} | "
              f"{sum(x.bad for x in runs_a)} / {sum(x.bad for x in runs_b)} |")  # fmt: skip
    print("\n2 workers / 1 worker >= 1.8 (issue 17): "
          + ", ".join(f"{c} {r:.2f} {'met' if r >= 1.8 else 'not met'}"
                      for c, r in ratios))  # fmt: skip
    if any(x[0].bad for runs in results.values() for x in runs):
        print("WARNING: some requests failed (non-2xx column): those rates are not comparable")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants, from /proc."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    ticks, todo = 0, [pid]
    while todo:
        p = todo.pop()
        ticks += stats.get(p, (0, 0))[1]
        todo += children.get(p, [])
    return ticks / os.sysconf("SC_CLK_TCK")


def redis_cpu(store: redis.Redis) -> float:
    info = store.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def pair_rows(
    cases: list[str],
    servers: list[Server],
    results: dict[tuple[str, str], list[Run]],
    second_over_first: bool,
) -> None:
    """One table row per case for two servers: both median rates, their ratio (first over
    second, or the other way), p50/p99, spreads and non-2xx counts."""
    for case in cases:
        a, b = results[(case, servers[0].name)], results[(case, servers[1].name)]
        ra, rb = (statistics.median(x.rate for x in runs) for runs in (a, b))
        ratio = rb / ra if second_over_first else ra / rb
        print(f"| {case} | {ra:,.0f} | {rb:,.0f} | {ratio:.2f} | {lat(a)} | {lat(b)} | "
              f"{spread(a)} | {spread(b)} | {sum(x.bad for x in a)} / "
              f"{sum(x.bad for x in b)} |")  # fmt: skip


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
