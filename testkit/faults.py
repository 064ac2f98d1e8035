"""Faults under load (issue 16): the scenarios shared by tests/cluster/test_faults.py and
``bench/faults.py``, and the checks of single use while a worker is killed.

Each scenario runs a fault under a running :class:`testkit.load.Load` and returns a
:class:`FaultRun`: when the fault started and ended, whether a user signed in before it was
still signed in after it, and whatever else the scenario saw. Waits are polls with generous
deadlines: a fault lasts until the load has *felt* it (a few requests refused), so a slow
machine gets a longer fault, not a fault that nobody saw.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from testkit.cluster import Cluster, Node
from testkit.load import (
    BOUND,
    Load,
    Outcome,
    Record,
    Target,
    TotpAccount,
    authorize_url,
    form_of,
)
from testkit.pg_control import PgServer
from testkit.redis_ha import RedisNode, SentinelGroup
from testkit.signin import sign_in

T = TypeVar("T")
FELT = 3  # requests refused before a fault may end: the load has seen it
LONGEST_FAULT = 15.0  # seconds a backend stays down at most, should the load feel nothing
SETTLE = 60.0  # seconds to recover by itself, at most (a generous bound, not a measure)


@dataclass
class FaultRun:
    """What one scenario did: its times (``time.monotonic``) and its own observations."""

    name: str
    start: float
    end: float
    still_signed_in: bool | None = None  # the user signed in before the fault; None: not asked
    settled: bool = False  # the load succeeded again on every kind, by itself
    notes: dict[str, object] = field(default_factory=dict)


# --- waiting on the load ---------------------------------------------------------------------


def felt(since: float, count: int = FELT) -> Callable[[list[Record]], bool]:
    """A predicate: ``count`` requests started after ``since`` did not succeed."""
    return lambda rows: sum(r.at >= since and r.outcome is not Outcome.OK for r in rows) >= count


def hold(load: Load, since: float, at_least: float = 0.0) -> None:
    """Keep a fault on until the load has felt it and ``at_least`` seconds have passed (a
    benchmark's outage of a set length), but no longer than that or LONGEST_FAULT."""
    feel = felt(since)
    load.wait_for(lambda rows: feel(rows) and time.monotonic() >= since + at_least,
                  max(LONGEST_FAULT, at_least))  # fmt: skip


# --- the signed-in witness -------------------------------------------------------------------


def sign_in_witness(target: Target, username: str) -> requests.Session:
    """A browser signed in as ``username`` (password only), before a fault."""
    browser = requests.Session()
    url, _ = authorize_url(target)
    sign_in(browser, url, target.redirect_uri, username, target.password)
    return browser


def signed_in(target: Target, browser: requests.Session) -> bool:
    """Whether ``browser``'s session is still signed in: ``prompt=none`` gets a code (True)
    or ``login_required`` (False). Anything else (a 503 while the store is down) raises."""
    url, _ = authorize_url(target, prompt="none")
    resp = browser.get(url, allow_redirects=False, timeout=BOUND)
    query = parse_qs(urlsplit(resp.headers.get("Location", "")).query)
    if resp.is_redirect and "code" in query:
        return True
    if resp.is_redirect and query.get("error") == ["login_required"]:
        return False
    raise AssertionError(f"prompt=none answered {resp.status_code} {query or resp.text[:200]}")


def witness_check(target: Target, browser: requests.Session, timeout: float = SETTLE) -> bool:
    """:func:`signed_in`, asked again while the answer is not yet a clear yes or no; the
    browser is closed after."""
    deadline = time.monotonic() + timeout
    with browser:
        while True:
            try:
                return signed_in(target, browser)
            except (AssertionError, requests.RequestException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


# --- scenarios -------------------------------------------------------------------------------


def redis_restart(load: Load, redis_node: RedisNode, witness: str, down: float = 0.0) -> FaultRun:
    """Stop Redis cleanly (SIGTERM: the AOF is flushed), keep it down until the load has felt
    it (and ``down`` seconds), start it again on the same port and data; Stepwise is not
    touched."""
    browser = sign_in_witness(load.target, witness)
    start = load.mark("redis stopped")
    redis_node.stop(signal.SIGTERM)
    hold(load, start, down)
    redis_node.start()
    end = load.mark("redis started")
    run = FaultRun("Redis restart (AOF)", start, end)
    run.settled = load.wait_settled(end, timeout=SETTLE)
    run.still_signed_in = witness_check(load.target, browser)
    return run


def sentinel_failover(load: Load, group: SentinelGroup, witness: str) -> FaultRun:
    """SIGKILL the Redis master; the sentinels promote the replica and Stepwise must follow
    it. The witness's session is replicated before the kill (``WAIT``), as it would be a
    moment after any write."""
    browser = sign_in_witness(load.target, witness)
    group.wait_replicated()
    start = load.mark("master killed")
    old = group.kill_master()
    promoted = group.wait_for_failover(old)
    end = load.mark("replica promoted")
    run = FaultRun("Sentinel failover", start, end)
    run.notes["promoted"] = f"port {promoted.port} (was {old.port})"
    run.settled = load.wait_settled(end, timeout=SETTLE)
    run.still_signed_in = witness_check(load.target, browser)
    return run


def postgres_restart(load: Load, pg: PgServer, down: float = 0.0) -> FaultRun:
    """Stop PostgreSQL (fast: sessions end, as in a restart), keep it down until the load
    has felt it (and ``down`` seconds), start it again on the same port and data."""
    start = load.mark("postgres stopped")
    pg.stop("fast")
    hold(load, start, down)
    pg.start()
    end = load.mark("postgres started")
    run = FaultRun("PostgreSQL restart", start, end)
    run.settled = load.wait_settled(end, timeout=SETTLE)
    return run


def worker_kill(
    load: Load,
    cluster: Cluster,
    user: str,
    totp: TotpAccount,
    races: int = 3,
    parallel: int = 8,
) -> FaultRun:
    """SIGKILL one granian worker of each node in turn, each time while ``parallel``
    requests race to redeem one single-use secret (an authorization code, a refresh token,
    a TOTP code) across both nodes. ``user`` and ``totp`` are users the load leaves alone
    (two sign-ins of one account at once would turn one away). ``notes["winners"]`` holds
    how many of each race succeeded (single use: at most one); each node must keep serving
    (granian respawns the worker)."""
    target = load.target
    kinds = ["authorization code", "refresh token", "TOTP code"]
    winners: dict[str, list[int]] = {k: [] for k in kinds}
    killed: list[tuple[Node, int]] = []
    start = load.mark("first worker killed")
    for i in range(races):
        kind = kinds[i % len(kinds)]
        node = cluster.nodes[i % len(cluster.nodes)]
        attempt = single_use_attempt(kind, target, user, totp, parallel)

        def kill(node: Node = node) -> None:
            killed.append(kill_worker(node))

        winners[kind].append(sum(race(parallel, attempt, during=kill)))
        wait_respawned(*killed[-1])  # before the next kill: never both workers of a node
    end = load.mark("workers respawned")
    run = FaultRun("granian worker SIGKILL", start, end)
    run.notes["winners"] = winners
    run.notes["killed"] = [f"{n.name} pid {p}" for n, p in killed]
    run.settled = load.wait_settled(end, timeout=SETTLE)
    return run


# --- single use under a worker kill ----------------------------------------------------------


def kill_worker(node: Node) -> tuple[Node, int]:
    """SIGKILL one of the node's granian workers; returns it and the pid killed."""
    pids = node.worker_pids()
    assert pids, f"{node.name} has no worker to kill"
    os.kill(pids[0], signal.SIGKILL)
    return node, pids[0]


def wait_respawned(node: Node, killed: int, timeout: float = SETTLE) -> None:
    """Wait until granian has replaced the killed worker (as many workers as configured)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = node.worker_pids()
        if killed not in pids and len(pids) == node.workers:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{node.name}: worker {killed} not replaced ({pids})")
        time.sleep(0.05)


def race(n: int, attempt: Callable[[int], T], during: Callable[[], object]) -> list[T]:
    """``attempt(0..n-1)`` in ``n`` threads released together, and ``during`` as they go."""
    barrier = threading.Barrier(n + 1)
    results: list[T | None] = [None] * n
    failures: list[BaseException] = []

    def go(i: int) -> None:
        try:
            barrier.wait(BOUND)
            results[i] = attempt(i)
        except BaseException as exc:  # noqa: BLE001 (raised below, in the caller's thread)
            failures.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait(BOUND)
    during()
    for t in threads:
        t.join(BOUND * 3)
    if failures:
        raise failures[0]
    return [r for r in results if r is not None]


def single_use_attempt(
    kind: str, target: Target, user: str, totp: TotpAccount, parallel: int
) -> Callable[[int], bool]:
    """One secret of ``kind``, freshly made, and an attempt to redeem it (True: it worked)."""
    if kind == "authorization code":
        code, verifier = fresh_code(target, user)
        return lambda _i: redeem(target, {"grant_type": "authorization_code", "code": code,
                                          "redirect_uri": target.redirect_uri,
                                          "code_verifier": verifier})  # fmt: skip
    if kind == "refresh token":
        code, verifier = fresh_code(target, user)
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": target.redirect_uri}  # fmt: skip
        tokens = _token(target, form)
        refresh = str(tokens["refresh_token"])
        return lambda _i: redeem(target, {"grant_type": "refresh_token", "refresh_token": refresh})
    pages = [at_totp_step(target, totp.username) for _ in range(parallel)]
    deadline = time.monotonic() + 2 * 30
    while (reserved := totp.reserve()) is None:  # its next unused step: at most 30 s away
        assert time.monotonic() < deadline, "no TOTP step came free"
        time.sleep(0.2)
    totp.release()
    totp_code = reserved

    def post(i: int) -> bool:
        browser, action, fields = pages[i]
        browser.close()  # a new connection: the proxy has closed the ones idle since the page
        try:
            resp = browser.post(action, data={**fields, "code": totp_code, "action": "verify"},
                                allow_redirects=False, timeout=BOUND)  # fmt: skip
        except requests.RequestException:
            return False  # see redeem()
        finally:
            browser.close()
        return resp.is_redirect and "/login" not in resp.headers.get("Location", "")

    return post


def fresh_code(target: Target, username: str) -> tuple[str, str]:
    """An authorization code not redeemed yet, and its PKCE verifier."""
    url, verifier = authorize_url(target)
    with requests.Session() as browser:
        landed = sign_in(browser, url, target.redirect_uri, username, target.password)
    return parse_qs(urlsplit(landed).query)["code"][0], verifier


def at_totp_step(target: Target, username: str) -> tuple[requests.Session, str, dict[str, str]]:
    """A browser past the password and at the TOTP step: (browser, form action, fields)."""
    browser = requests.Session()
    url, _ = authorize_url(target)
    method, data = "GET", None
    for _ in range(6):
        resp = browser.request(method, url, data=data, allow_redirects=False, timeout=BOUND)
        if resp.is_redirect:
            url, method, data = urljoin(url, resp.headers["Location"]), "GET", None
            continue
        assert resp.status_code == 200, (resp.status_code, resp.text[:300])
        action, fields = form_of(resp.text, url)
        if fields.get("step") == "verify_totp":
            return browser, action, fields
        fields.update(username=username, password=target.password)
        method, url, data = "POST", action, fields
    raise AssertionError(f"{username} never reached the TOTP step")


def _token(target: Target, form: dict[str, str]) -> dict[str, object]:
    resp = requests.post(f"{target.issuer}/token", data=form, timeout=BOUND,
                         auth=(target.client_id, target.client_secret))  # fmt: skip
    assert resp.status_code == 200, resp.text
    answer: dict[str, object] = resp.json()
    return answer


def redeem(target: Target, form: dict[str, str]) -> bool:
    """One redemption at the token endpoint: True when it gave tokens. A worker killed under
    it (the proxy's 502) or a connection error counts as not redeemed *for us*, but the
    server may have redeemed it: which is why every racer counts, not just the answers."""
    try:
        resp = requests.post(f"{target.issuer}/token", data=form, timeout=BOUND,
                             auth=(target.client_id, target.client_secret))  # fmt: skip
    except requests.RequestException:
        return False
    return resp.status_code == 200 and "access_token" in resp.text
