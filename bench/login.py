"""Full OIDC logins per second on one core, against the argon2id hash-only bound (issue 17).

The server is ``idp serve --workers 1`` (SQLite, in-process store, a fresh instance dir)
pinned to CPU 0 with taskset; the load generator runs here, pinned to CPU 1. Each login is a
new browser (a fresh ``requests.Session``) and a whole authorization code round trip:

  GET /authorize (code, PKCE S256, state, nonce, scope openid) -> redirects to the login
  page -> POST username + password (the page's CSRF token) -> [totp mode: the TOTP step page,
  POST the current code] -> redirects to the client's redirect_uri with ?code= -> POST /token
  (client_secret_basic, code_verifier) -> check the access token, the id_token's nonce and,
  in totp mode, that its ``amr`` holds the TOTP value (payload read without verifying).

Modes: ``password`` (users without MFA, one account per client thread) and ``totp`` (users
required to use MFA with TOTP enrolled: every login asks for a code). A TOTP code is single
use per account (a step at or before the last one used is refused; the server accepts one
step either side of now), so each TOTP login takes a pooled account and a step not used yet:
at most two logins per account per 30 s. Users are seeded in-process through the idp
package (one shared argon2id hash) before the server starts; the server is a separate
process on the same instance dir.

The bound: argon2id verifications per second with the server's Argon2Params, in this process
pinned to CPU 0, measured before and after the load (both printed, with their mean).
"""

from __future__ import annotations

import argparse
import base64
import heapq
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from factors import totp as totp_factor
from factors.kinds import KINDS
from factors.password import PasswordFactor
from idp import directory
from idp.app import build_services
from idp.mfa import credentials
from idp.services import Services
from idp.settings import load
from testkit.load import Target, authorize_url, idp_batch
from testkit.servers import end_server, free_port, wait_for_port
from testkit.signin import TotpUser, sign_in

PASSWORD = "quiet river lantern 7"  # not the tenant name: the rules refuse context words
CALLBACK = "http://127.0.0.1:9/cb"  # never contacted: the browser stops at the redirect
TENANT = "bench"
TOTP_AMR = set(KINDS["totp"].amr)
TICK = os.sysconf("SC_CLK_TCK")


# --- the bound ---------------------------------------------------------------------------


def hash_only_bound(passwords: PasswordFactor, seconds: float) -> tuple[float, float]:
    """argon2id verifications on CPU 0 (this thread pinned there meanwhile): per second of
    wall-clock time, and per second of this thread's CPU time (what other jobs on the core
    do not change)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        encoded = passwords.hash(PASSWORD)
        n, start, cpu = 0, time.perf_counter(), time.thread_time()
        while time.perf_counter() - start < seconds:
            passwords.verify(encoded, PASSWORD)
            n += 1
        return n / (time.perf_counter() - start), n / (time.thread_time() - cpu)
    finally:
        os.sched_setaffinity(0, before)


# --- seeding -----------------------------------------------------------------------------


def seed_users(svc: Services, plain: list[str], totp: list[str]) -> dict[str, str]:
    """Password users, and TOTP users (MFA required, TOTP enrolled and last used); returns
    each TOTP user's secret. One argon2id hash shared by all: seeding stays fast."""
    shared, secrets_of = svc.passwords.hash(PASSWORD), {}
    now = int(time.time())
    wants_totp = set(totp)
    with svc.db.session() as s:
        tenant = directory.require_tenant(s, TENANT)
        for name in plain + totp:
            user = directory.create_user(s, svc.passwords, tenant, name, f"{name}@bench.test")
            user.password_hash = shared
            if name in wants_totp:
                user.mfa_required = user.mfa_enabled = True
                secret = totp_factor.new_secret()
                cred = credentials.add(s, svc.cipher, user, "totp", secret, None, now)
                credentials.touch(s, user, cred, now)
                secrets_of[name] = secret
    return secrets_of


class TotpPool:
    """TOTP accounts handed out one sign-in at a time, each with a time step it has not used:
    now or the next one (the server accepts one step either side), never an earlier one."""

    def __init__(self, secrets_of: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self._secret = dict(secrets_of)
        self._free = [(0, name) for name in secrets_of]  # (first unused step, username)
        heapq.heapify(self._free)
        self.waited = 0.0  # seconds clients spent waiting for a free account

    def take(self, deadline: float) -> tuple[str, int] | None:
        """An account and the step whose code it will send (spent even if the login fails);
        None when none is free before ``deadline`` (``time.perf_counter``)."""
        began = time.perf_counter()
        while time.perf_counter() < deadline:
            with self._lock:
                now = int(time.time()) // totp_factor.INTERVAL
                if self._free and self._free[0][0] <= now + 1:
                    first, name = heapq.heappop(self._free)
                    self.waited += time.perf_counter() - began
                    return name, max(first, now)
            time.sleep(0.05)
        self.waited += time.perf_counter() - began
        return None

    def code(self, name: str, step: int) -> str:
        return pyotp.TOTP(self._secret[name]).at(step * totp_factor.INTERVAL)

    def give_back(self, name: str, step: int) -> None:
        with self._lock:
            heapq.heappush(self._free, (step + 1, name))


@dataclass
class OneCode(TotpUser):
    """Answers the TOTP step with one given code, and nothing else."""

    code: str = ""

    def answer(self, step: str, html: str) -> dict[str, str]:
        assert step == "verify_totp", f"unexpected step {step!r}"
        return {"code": self.code, "action": "verify"}


# --- one login ---------------------------------------------------------------------------


def claims_of(jwt: str) -> dict[str, Any]:
    """A JWT's payload, unverified (a sanity check; the interop tests check signatures)."""
    payload = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


Login = tuple[int, float]  # HTTP requests sent, seconds taken
# (back channel, client index, deadline) -> a login; None: no account free before the deadline
LoginFn = Callable[[requests.Session, int, float], Login | None]


def one_login(
    target: Target, rp: requests.Session, username: str, totp_code: str | None = None
) -> Login:
    """One full round trip in a new browser: how many HTTP requests it took, and how long."""
    began = time.perf_counter()
    url, verifier = authorize_url(target)
    nonce = secrets.token_urlsafe(12)
    sent = [0]
    with requests.Session() as browser:
        browser.hooks["response"].append(lambda r, *a, **k: sent.__setitem__(0, sent[0] + 1))
        answerer = OneCode(code=totp_code) if totp_code else None
        landed = sign_in(browser, f"{url}&{urlencode({'nonce': nonce})}", CALLBACK, username,
                         PASSWORD, answerer)  # fmt: skip
    code = parse_qs(urlsplit(landed).query)["code"][0]
    r = rp.post(f"{target.issuer}/token", auth=(target.client_id, target.client_secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": verifier}, timeout=30)  # fmt: skip
    assert r.status_code == 200, (r.status_code, r.text[:300])
    answer = r.json()
    assert answer.get("access_token") and answer.get("id_token"), answer
    claims = claims_of(answer["id_token"])
    assert claims.get("nonce") == nonce, claims
    if totp_code:
        assert TOTP_AMR & set(claims.get("amr", [])), f"amr {claims.get('amr')} lacks {TOTP_AMR}"
    return sent[0] + 1, time.perf_counter() - began


# --- CPU accounting ----------------------------------------------------------------------


def tree_of(root: int) -> list[int]:
    """``root`` and every process below it (the granian worker is a child of ``idp serve``)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def labels_of(root: int) -> dict[int, str]:
    """The server's processes by role: ``idp serve`` starts granian's worker (the same
    command line) and the notification outbox worker (``idp worker``)."""
    labels = {}
    for pid in tree_of(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            continue
        labels[pid] = ("main" if pid == root else "outbox worker" if "worker']" in cmdline
                       else "granian worker")  # fmt: skip
    return labels


def core_busy(cpu: int) -> tuple[float, float]:
    """(busy, total) seconds of one core so far, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(v) for v in line.split()[1:]]
            idle = ticks[3] + ticks[4]  # idle, iowait
            return (sum(ticks) - idle) / TICK, sum(ticks) / TICK
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")


@dataclass
class Result:
    mode: str
    elapsed: float
    latencies: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    server_cpu: dict[str, float] = field(default_factory=dict)  # role -> share of one core
    core0: float = 0.0  # share of CPU 0 busy, whoever used it
    generator_cpu: float = 0.0  # share of one core, this process
    waited: float = 0.0  # seconds spent waiting for a free TOTP account


def run(mode: str, clients: int, seconds: float, login: LoginFn, server: dict[int, str]) -> Result:
    """``clients`` threads logging in as fast as the server answers, for ``seconds``."""
    lock = threading.Lock()
    result = Result(mode, 0.0)
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        with requests.Session() as rp:  # the client's back channel keeps its connection
            while time.perf_counter() < deadline:
                try:
                    done = login(rp, index, deadline)
                except Exception as exc:  # noqa: BLE001 (counted and printed: a failed login)
                    with lock:
                        result.failures.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                if done is None:  # no TOTP account free before the deadline
                    break
                n, took = done
                with lock:
                    result.latencies.append(took)
                    result.requests.append(n)

    server0 = {pid: cpu_seconds(pid) for pid in server}
    busy0, gen0 = core_busy(0), sum(os.times()[:2])
    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.elapsed = time.perf_counter() - start
    busy1 = core_busy(0)
    for pid, role in server.items():
        used = (cpu_seconds(pid) - server0[pid]) / result.elapsed
        result.server_cpu[role] = result.server_cpu.get(role, 0.0) + used
    result.core0 = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1e-9)
    result.generator_cpu = (sum(os.times()[:2]) - gen0) / result.elapsed
    return result


# --- main --------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mode", choices=["password", "totp", "both"], default="both")
    ap.add_argument("--seconds", type=float, default=20, help="per mode")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--bound-seconds", type=float, default=5, help="each bound measurement")
    ap.add_argument("--totp-users", type=int, default=0,
                    help="TOTP accounts (0: enough for the bound's rate)")  # fmt: skip
    args = ap.parse_args()
    modes = ["password", "totp"] if args.mode == "both" else [args.mode]
    os.sched_setaffinity(0, {1})  # the load generator; hash_only_bound moves to CPU 0

    tmp = Path(tempfile.mkdtemp(prefix="stepwise-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_ENV="development", IDP_INSTANCE_PATH=str(tmp), IDP_LOG_LEVEL="WARNING",
               IDP_BASE_URL=base)  # fmt: skip
    printed = idp_batch(env, [
        (["init"], ""), (["tenant", "create", TENANT], ""),
        (["client", "create", TENANT, "--name", "Bench", "--redirect-uri", CALLBACK, "--json"],
         ""),
    ])  # fmt: skip
    creds = json.loads(printed[-1])
    svc = build_services(load(environ=env))  # the server's own settings: same Argon2Params
    params = svc.passwords.params

    bound_before, per_cpu_before = hash_only_bound(svc.passwords, args.bound_seconds)
    # Each TOTP account gives at least two logins per run (now and the next step).
    n_totp = args.totp_users or math.ceil(0.6 * per_cpu_before * args.seconds) + 4 * args.clients
    n_totp = n_totp if "totp" in modes else 0
    plain = [f"user{i}" for i in range(args.clients)]  # one each: one account's logins queue
    started = time.perf_counter()
    pool = TotpPool(seed_users(svc, plain, [f"totp{i}" for i in range(n_totp)]))
    seeded = time.perf_counter() - started
    svc.db.engine.dispose()
    target = Target(base, TENANT, creds["client_id"], creds["client_secret"], plain, [],
                    password=PASSWORD, redirect_uri=CALLBACK)  # fmt: skip

    def password_login(rp: requests.Session, index: int, deadline: float) -> Login:
        return one_login(target, rp, plain[index])

    def totp_login(rp: requests.Session, index: int, deadline: float) -> Login | None:
        taken = pool.take(deadline)
        if taken is None:
            return None
        name, step = taken
        try:
            return one_login(target, rp, name, pool.code(name, step))
        finally:
            pool.give_back(name, step)

    logins = {"password": password_login, "totp": totp_login}
    exe = str(Path(sys.executable).parent / "idp")
    command = ["taskset", "-c", "0", exe, "serve", "--port", str(port), "--workers", "1"]
    log = open(tmp / "serve.log", "wb")  # closed in finally
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    results: list[Result] = []
    try:
        wait_for_port(port, server)
        with requests.Session() as rp:
            for mode in modes:
                for _ in range(5):  # warm-up: imports, caches, keys
                    logins[mode](rp, 0, time.perf_counter() + 60)
        roles = labels_of(server.pid)  # the worker is up now: it answered
        for mode in modes:
            waited = pool.waited
            results.append(run(mode, args.clients, args.seconds, logins[mode], roles))
            results[-1].waited = pool.waited - waited
    finally:
        end_server(server)
        log.close()
    bound_after, per_cpu_after = hash_only_bound(svc.passwords, args.bound_seconds)
    bound, per_cpu = (bound_before + bound_after) / 2, (per_cpu_before + per_cpu_after) / 2

    print(f"server:    {' '.join(command[:3])} idp serve --workers 1 (SQLite, in-process store, "
          f"instance {tmp})")  # fmt: skip
    print(f"load:      {args.clients} client threads on CPU 1, a new requests.Session per login,"
          f" {args.seconds:g} s per mode")  # fmt: skip
    print(f"users:     {len(plain)} password-only, {n_totp} with TOTP required (seeded "
          f"in-process in {seeded:.1f} s)")  # fmt: skip
    print(f"argon2id:  m={params.memory_kib} KiB, t={params.time_cost}, p={params.parallelism} "
          "(the server's settings)")  # fmt: skip
    print(f"bound:     argon2id verify on CPU 0, {args.bound_seconds:g} s each: before "
          f"{bound_before:.1f}/s, after {bound_after:.1f}/s, mean {bound:.1f}/s "
          f"(drift {bound_after / bound_before - 1:+.0%}); per CPU-second {per_cpu_before:.1f}, "
          f"{per_cpu_after:.1f}, mean {per_cpu:.1f}")  # fmt: skip
    print()
    print("| mode | logins/s | % of bound | p50 ms | p99 ms | logins | requests/login | "
          "server CPU | % of bound, CPU time | CPU 0 busy | generator CPU | "
          "failures |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    notes: list[str] = []
    for r in results:
        n = len(r.latencies)
        rate = n / r.elapsed
        q = statistics.quantiles(r.latencies, n=100) if n > 1 else [float("nan")] * 99
        per = statistics.mean(r.requests) if r.requests else float("nan")
        server_cpu = sum(r.server_cpu.values())
        print(f"| {r.mode} | {rate:.1f} | {rate / bound:.0%} | {q[49] * 1000:.0f} | "
              f"{q[98] * 1000:.0f} | {n} | {per:.1f} | {server_cpu:.0%} | "
              f"{rate / max(server_cpu, 1e-9) / per_cpu:.0%} | {r.core0:.0%} | "
              f"{r.generator_cpu:.0%} | {len(r.failures)} |")  # fmt: skip
        split = ", ".join(f"{role} {share:.0%}" for role, share in sorted(r.server_cpu.items()))
        notes.append(f"{r.mode}: server CPU by process: {split}")
        if r.waited > 0.5:
            notes.append(f"warning: {r.mode}: clients waited {r.waited:.1f} s for a free TOTP "
                         "account (raise --totp-users)")  # fmt: skip
        notes += [f"{r.mode} failure: {f}" for f in sorted(set(r.failures))[:5]]
    print()
    print("\n".join(notes))
    print("(latency: one whole round trip, authorize to token; server CPU: its processes' "
          "user+system time over the run; % of bound, CPU time: logins per second of the "
          "server's CPU time against verifications per second of CPU time, the steadier "
          "figure when other jobs share CPU 0; CPU 0 busy: whoever used it)")  # fmt: skip
    if any(r.failures for r in results):
        print(f"server log: {tmp / 'serve.log'}")
        sys.exit(1)


if __name__ == "__main__":
    main()
