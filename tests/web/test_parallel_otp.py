"""Single use holds against parallel requests on a live server (real granian, real Redis):
the same TOTP code or backup code posted by many browsers at once signs in exactly one."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import requests

from testkit.html import SECRET, csrf_of
from testkit.servers import idp_env, live_idp
from testkit.totp import oathtool
from tests.cli_support import idp, seed
from tests.conftest import PASSWORD
from tests.mfa_helpers import BACKUP

PARALLEL = 12
STEP = re.compile(r'name="step" value="([a-z_]+)"')


class Web:
    """One browser on the live server."""

    def __init__(self, base: str) -> None:
        self.s, self.base = requests.Session(), base
        self.url, self.html = "", ""

    def start(self) -> None:
        page = self.s.get(f"{self.base}/t/acme/login", timeout=10)
        self.url, self.html = page.url, page.text

    def post(self, **form: str) -> requests.Response:
        step = STEP.search(self.html)
        assert step, self.html[:300]
        data = {"csrf_token": csrf_of(self.html), "step": step.group(1), **form}
        resp = self.s.post(self.url, data=data, timeout=30, allow_redirects=False)
        if resp.status_code == 200:
            self.html = resp.text
        return resp

    def to_second_factor(self) -> None:
        self.start()
        self.post(username="alice", password=PASSWORD, action="continue")


@pytest.fixture(params=["redis-2-workers", "memory-1-worker"])
def base(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    # Generous limits: this is about single use, not the back-off (test_parallel_throttle).
    extra = {"IDP_THROTTLE_IP_LIMIT": "1000", "IDP_THROTTLE_FREE_ATTEMPTS": "60"}
    workers = 1
    if request.param.startswith("redis"):
        extra["IDP_REDIS_URL"] = request.getfixturevalue("redis_url").replace("/0", "/2")
        workers = 2
    env = idp_env(tmp_path / "instance", **extra)
    seed(env, "acme", "alice", PASSWORD)
    assert idp(env, "tenant", "set-mfa", "acme", "--mode", "required").returncode == 0
    with live_idp(env, workers=workers) as url:
        yield url


def fire(browsers: list[Web], **form: str) -> list[int]:
    barrier = threading.Barrier(len(browsers))
    statuses: list[int] = []

    def go(web: Web) -> None:
        barrier.wait()
        statuses.append(web.post(**form).status_code)

    threads = [threading.Thread(target=go, args=(b,)) for b in browsers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_one_code_signs_in_one_browser_only(base: str) -> None:
    first = Web(base)
    first.to_second_factor()
    first.post(factor="totp")
    secret = SECRET.search(first.html)
    assert secret
    first.post(code=oathtool(secret.group(1)), action="verify")
    codes = BACKUP.findall(first.html)
    assert first.post(confirm="saved", action="continue").status_code == 302

    browsers = [Web(base) for _ in range(PARALLEL)]
    for web in browsers:
        web.to_second_factor()
    code = oathtool(secret.group(1), time.time() + 30)  # the activation used the current step
    assert sorted(fire(browsers, code=code, action="verify")).count(302) == 1

    browsers = [Web(base) for _ in range(PARALLEL)]
    for web in browsers:
        web.to_second_factor()
        web.post(factor="backup", action="switch")
    assert sorted(fire(browsers, code=codes[0], action="verify")).count(302) == 1
