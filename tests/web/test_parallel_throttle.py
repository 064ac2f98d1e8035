"""Back-off and lock hold against parallel requests on a live server (real granian, real Redis)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import requests

from testkit.html import alert_of, csrf_of
from testkit.servers import ServerClock, idp_env, live_idp
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD

GENERIC = "Incorrect username or password."
PARALLEL = 24


def prepared_logins(base: str, n: int) -> list[tuple[requests.Session, str, str]]:
    """n browsers, each with its own session and sign-in flow, ready to post."""
    out = []
    for _ in range(n):
        s = requests.Session()
        page = s.get(f"{base}/t/acme/login", timeout=10)
        out.append((s, page.url, csrf_of(page.text)))
    return out


def fire(logins: list[tuple[requests.Session, str, str]], password: str) -> Counter[str]:
    barrier = threading.Barrier(len(logins))
    answers: list[str] = []

    def go(s: requests.Session, url: str, token: str) -> None:
        barrier.wait()
        r = s.post(
            url,
            data={
                "csrf_token": token,
                "step": "identify",
                "username": "alice",
                "password": password,
            },
            timeout=30,
            allow_redirects=False,
        )
        answers.append(f"{r.status_code} {alert_of(r.text) or r.headers.get('Location')}")

    threads = [threading.Thread(target=go, args=login) for login in logins]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Counter(a.split(". ")[0] if "Too many attempts" in a else a for a in answers)


@pytest.fixture(params=["redis-2-workers", "memory-1-worker"])
def server(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    extra = {
        "IDP_THROTTLE_FREE_ATTEMPTS": "3",
        "IDP_THROTTLE_LOCK_AFTER": "6",
        "IDP_THROTTLE_MAX_DELAY": "1",
        "IDP_THROTTLE_IP_LIMIT": "1000",
    }
    workers = 1
    if request.param.startswith("redis"):
        extra["IDP_REDIS_URL"] = request.getfixturevalue("redis_url").replace("/0", "/1")
        workers = 2
    env = idp_env(tmp_path / "instance", **extra)
    seed(env, "acme", "alice", PASSWORD)
    clock = ServerClock(tmp_path, frozen=True)  # a burst never spans one of its seconds
    with live_idp(env, workers=workers, clock=clock) as base:
        yield base, env, clock


def test_parallel_guesses_get_only_the_free_attempts_then_back_off_and_lock(server) -> None:  # type: ignore[no-untyped-def]
    base, env, clock = server
    logins = prepared_logins(base, PARALLEL)
    first = fire(logins, "wrong password!")
    # At most the 3 free attempts plus the one that shuts the gate are checked (the server's
    # clock stands still, so the 1 s gate cannot re-open during the burst, however slow the
    # machine); every other parallel guess is refused (and not counted), and nothing is locked.
    assert 1 <= first[f"200 {GENERIC}"] <= 4, first
    assert first["200 Too many attempts"] == PARALLEL - first[f"200 {GENERIC}"], first

    checked = first[f"200 {GENERIC}"]
    for _ in range(20):  # keep guessing at the pace the back-off allows, up to the lock
        if checked >= 6:
            break
        clock.advance(1)  # the 1 s gate re-opens on the server's clock
        logins = prepared_logins(base, 8)
        burst = fire(logins, "wrong password!")
        # The gate (max_delay 1 s) re-opened once: the free attempts left, plus one guess.
        assert burst[f"200 {GENERIC}"] <= max(0, 3 - checked) + 1, burst
        checked += burst[f"200 {GENERIC}"]
    assert checked == 6, "the back-off never let the guesses through"
    clock.advance(1)
    locked = fire(prepared_logins(base, 8), PASSWORD)
    assert set(locked) == {
        "200 Too many failed attempts. Ask your administrator to unlock the account."
    }, locked
    assert "locked" in idp(env, "user", "list", "acme").stdout

    assert idp(env, "user", "unlock", "acme", "alice").returncode == 0
    after = fire(prepared_logins(base, 1), PASSWORD)
    assert after == Counter({"302 /t/acme/account": 1}), after
