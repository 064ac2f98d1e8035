"""Prometheus metrics at /metrics (issue 16, docs/operations/observability.md).

- The guard: no token set is a 404; a missing or wrong bearer token a 401 with a challenge.
- ``idp serve`` with 2 workers: every worker's samples are added up, whichever answered.
- Sign-ins, step-ups, tokens, SAML responses and throttle refusals are counted with the
  labels the documentation lists; the latency histogram's endpoint label stays bounded.
- The Grafana dashboard names only metrics and labels that /metrics exposes.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from idp import directory, metrics
from idp.app import create_app
from idp.clock import SettableClock
from idp.oidc import clients, keys
from idp.saml import keys as saml_keys
from idp.saml import sps
from idp.store.migrate import upgrade
from testkit.html import csrf_of
from testkit.servers import idp_env, live_idp
from testkit.signin import TotpUser, sign_in
from tests.conftest import PASSWORD, make_app, svc
from tests.web.oidc_helpers import pkce

TOKEN = "scraper-token-0123456789"
REDIS_DB = 11  # a Redis database no other test uses (others: grep for '.replace("/0"')
REDIRECT = "https://rp.example/cb"
SP = "https://sp.example/saml"
SP_METADATA = f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
  entityID="{SP}"><md:SPSSODescriptor
  protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    Location="https://sp.example/acs" index="0" isDefault="true"/></md:SPSSODescriptor>
  </md:EntityDescriptor>"""
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "stepwise.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# --- a live node: idp serve, 2 workers, Redis -------------------------------------------------
@dataclass
class Node:
    base: str
    samples_dir: Path
    web: tuple[str, str]  # client_id, secret of a first-party client
    strict: tuple[str, str]  # one that asks for level 2 (a step-up for a password session)

    def scrape(self, token: str | None = TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return requests.get(f"{self.base}/metrics", headers=headers, timeout=10)

    def samples(self) -> Samples:
        resp = self.scrape()
        assert resp.status_code == 200, resp.status_code
        return parse(resp.text)


def seed(instance: Path) -> tuple[tuple[str, str], tuple[str, str]]:
    """Schema, tenant acme with alice, two clients and an SP, written in-process (cheaper than
    one ``idp`` command each)."""
    app = create_app({"env": "development", "instance_path": str(instance),
                      "argon2_memory_kib": 8192, "argon2_time_cost": 1})  # fmt: skip
    s_ = svc(app)
    upgrade(s_.db.engine)
    with s_.db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme Inc")
        keys.ensure_keys(s, s_.cipher, t)
        saml_keys.ensure_key(s, s_.cipher, t)
        directory.create_user(s, s_.passwords, t, "alice", "alice@acme.test", "member", PASSWORD)
        web = clients.create_client(s, t, "Web", [REDIRECT])
        strict = clients.create_client(s, t, "Strict", [REDIRECT], min_level=2)
        sps.add_sp(s, t, SP_METADATA.encode())
        made = [(r.client.client_id, r.client_secret or "") for r in (web, strict)]
    s_.db.engine.dispose()
    return made[0], made[1]


@contextmanager
def live_node(tmp: Path, redis_url: str) -> Iterator[Node]:
    """No PROMETHEUS_MULTIPROC_DIR: ``idp serve`` makes its own directory, after the app's
    modules (and prometheus_client) are imported, as in production. It is made under the
    server's TMPDIR, so that the test can read each worker's file, and removed at exit."""
    env = idp_env(
        tmp / "instance",
        IDP_REDIS_URL=redis_url.replace("/0", f"/{REDIS_DB}"),
        IDP_METRICS_TOKEN=TOKEN,
        IDP_OUTBOX_WORKER="off",
        TMPDIR=str(tmp),
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    web, strict = seed(tmp / "instance")
    with live_idp(env, workers=2) as base:
        (samples_dir,) = tmp.glob("stepwise-metrics-*")
        yield Node(base, samples_dir, web, strict)
    assert not samples_dir.exists()  # removed when idp serve ended
    (log,) = (tmp / "instance").glob("serve-*.log")
    assert "Traceback" not in log.read_text() and "UserWarning" not in log.read_text()


def healthz_by_worker(samples_dir: Path) -> dict[str, float]:
    """Each worker's own count of answered /healthz requests, from its own file."""
    out: dict[str, float] = {}
    for f in sorted(samples_dir.glob("histogram_*.db")):
        for metric in MultiProcessCollector.merge([str(f)]):  # type: ignore[no-untyped-call]
            for s in metric.samples:
                if s.name.endswith("_count") and s.labels.get("endpoint") == "health.healthz":
                    out[f.name] = out.get(f.name, 0.0) + s.value
    return out


def burst(base: str, connections: int = 16, each: int = 3) -> int:
    """Requests on many connections opened at once, so that both workers accept some."""
    barrier = threading.Barrier(connections)

    def go() -> None:
        with requests.Session() as s:
            barrier.wait(timeout=10)
            for _ in range(each):
                assert s.get(f"{base}/healthz", timeout=10).status_code == 200

    threads = [threading.Thread(target=go) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return connections * each


def check_guard(node: Node) -> None:
    for token in (None, "wrong-token-0123456789", TOKEN[:-1]):
        refused = node.scrape(token)
        assert refused.status_code == 401, token
        assert refused.headers["WWW-Authenticate"].startswith("Bearer ")
        assert "stepwise_" not in refused.text
    answer = node.scrape()
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Set-Cookie" not in answer.headers  # no session for a scraper


def check_every_worker_counts(node: Node) -> None:
    before = value(node.samples(), "stepwise_request_duration_seconds_count",
                   endpoint="health.healthz", status="2xx")  # fmt: skip
    sent = 0
    for _ in range(5):  # until both workers have answered some (the first burst nearly always)
        sent += burst(node.base)
        if len([n for n in healthz_by_worker(node.samples_dir).values() if n]) >= 2:
            break
    assert len(healthz_by_worker(node.samples_dir)) == 2, "not both workers wrote samples"
    # /metrics is answered by one worker, and adds up both.
    after = value(node.samples(), "stepwise_request_duration_seconds_count",
                  endpoint="health.healthz", status="2xx")  # fmt: skip
    assert after - before == sent


def redirect_query(xml: str) -> dict[str, str]:
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    return {"SAMLRequest": base64.b64encode(raw.compress(xml.encode()) + raw.flush()).decode()}


def authn_request(req_id: str, passive: bool = False) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    extra = ' IsPassive="true"' if passive else ""
    return (
        '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{req_id}" Version="2.0" '
        f'IssueInstant="{now}"{extra}><saml:Issuer>{SP}</saml:Issuer></samlp:AuthnRequest>'
    )


def saml_status(page: str) -> str:
    sent = base64.b64decode(page.split('name="SAMLResponse" value="')[1].split('"')[0])
    found = re.findall(rb'StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:(\w+)"', sent)
    return "/".join(v.decode() for v in found)


def code_grant(node: Node, browser: requests.Session, client: tuple[str, str],
               totp: TotpUser | None = None) -> dict[str, str]:  # fmt: skip
    """Authorization code with PKCE through the login pages, then the token endpoint."""
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": client[0], "redirect_uri": REDIRECT,
              "scope": "openid", "state": "s", "nonce": "n", "code_challenge": challenge,
              "code_challenge_method": "S256"}  # fmt: skip
    url = f"{node.base}/t/acme/authorize?" + requests.compat.urlencode(params)
    done = sign_in(browser, url, REDIRECT, "alice", PASSWORD, totp)
    code = parse_qs(urlsplit(done).query)["code"][0]
    answer = requests.post(f"{node.base}/t/acme/token", auth=client, timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier})  # fmt: skip
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    return body


def check_protocols_counted(node: Node) -> None:
    base, browser = node.base, requests.Session()
    # A wrong password at the login page, then a sign-in for an application and its tokens.
    page = browser.get(f"{base}/t/acme/login", timeout=10)
    form = {"csrf_token": csrf_of(page.text), "step": "identify", "username": "alice",
            "password": "not it at all"}  # fmt: skip
    wrong = browser.post(page.url, data=form, timeout=10)
    assert "Incorrect username or password." in wrong.text
    tokens = code_grant(node, browser, node.web)
    refreshed = requests.post(f"{base}/t/acme/token", auth=node.web, timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})  # fmt: skip
    assert refreshed.status_code == 200
    service = requests.post(f"{base}/t/acme/token", auth=node.web, timeout=10,
                            data={"grant_type": "client_credentials"})  # fmt: skip
    assert service.status_code == 200
    # The strict client asks for level 2: the password session steps up (TOTP enrolled).
    code_grant(node, browser, node.strict, TotpUser())
    # SAML: the signed-in browser gets an assertion; a passive request without a session a
    # Responder/NoPassive status.
    sso = f"{base}/t/acme/saml/sso"
    ok = browser.get(sso, params=redirect_query(authn_request("_ok")), timeout=10)
    assert saml_status(ok.text) == "Success"
    passive = requests.get(sso, params=redirect_query(authn_request("_p", True)), timeout=10)
    assert saml_status(passive.text) == "Responder/NoPassive"

    got = node.samples()
    assert value(got, "stepwise_sign_ins_total", tenant="acme", result="failure",
                 factor="password") == 1  # fmt: skip
    assert value(got, "stepwise_sign_ins_total", tenant="acme", result="success",
                 factor="password") == 1  # fmt: skip
    # The step-up's flow verified the new factor only (the password still counted).
    assert value(got, "stepwise_sign_ins_total", tenant="acme", result="success",
                 factor="totp") == 1  # fmt: skip
    for outcome in ("requested", "met"):
        assert value(got, "stepwise_step_ups_total", tenant="acme", outcome=outcome) == 1
    for grant, n in (("authorization_code", 2), ("refresh_token", 1), ("client_credentials", 1)):
        assert value(got, "stepwise_tokens_issued_total", tenant="acme", grant=grant) == n
    for status in ("Success", "Responder/NoPassive"):
        assert value(got, "stepwise_saml_responses_total", tenant="acme", status=status) == 1
    token_latency = value(got, "stepwise_request_duration_seconds_count",
                          endpoint="oidc_api.token", status="2xx")  # fmt: skip
    assert token_latency == 4


def test_a_live_node_guards_metrics_and_adds_up_both_workers(
    tmp_path: Path, redis_url: str
) -> None:
    """One server for all the live checks (a module fixture could be built twice when xdist
    spreads a module's tests over its workers)."""
    with live_node(tmp_path, redis_url) as node:
        check_guard(node)
        check_every_worker_counts(node)
        check_protocols_counted(node)


def test_an_operators_multiprocess_dir_is_emptied_when_serving_starts(tmp_path: Path) -> None:
    """Samples left by an earlier run would be added to this one's."""
    given = tmp_path / "samples"
    given.mkdir()
    (given / "counter_12345.db").write_bytes(b"stale")
    (given / "notes.txt").write_text("not ours")
    code = (
        "from idp import metrics_setup\n"
        "from idp.settings import load\n"
        "print(metrics_setup.prepare_multiprocess_dir(load({'env': 'development'})))\n"
        "print(metrics_setup.multiprocess_mode())\n"
    )
    env = {**idp_env(tmp_path / "instance"), "PROMETHEUS_MULTIPROC_DIR": str(given)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()  # fmt: skip
    assert out == [str(given), "True"]
    assert sorted(p.name for p in given.iterdir()) == ["notes.txt"]  # only samples files go


# --- the Flask app (one process, the plain registry) -----------------------------------------
def process_value(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    app = make_app(tmp_path, metrics_token=TOKEN, throttle_free_attempts=1,
                   throttle_lock_after=3, throttle_max_delay=60, throttle_ip_limit=3)  # fmt: skip
    clock = svc(app).clock
    assert isinstance(clock, SettableClock)
    clock.freeze()  # a gate shut for a second stays shut however slow the machine
    return app


def test_no_token_set_means_no_metrics(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_unmatched_addresses_share_one_latency_series(client: FlaskClient) -> None:
    before = process_value("stepwise_request_duration_seconds_count", endpoint="unmatched",
                           status="4xx")  # fmt: skip
    for path in ("/no-such-page", "/t/acme/no/such/page", "/%00"):
        assert client.get(path).status_code in (400, 404)
    assert client.post("/healthz").status_code == 405  # a known path, but no such method
    after = process_value("stepwise_request_duration_seconds_count", endpoint="unmatched",
                          status="4xx")  # fmt: skip
    assert after - before == 4
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert "no-such-page" not in text and "no/such" not in text


def test_throttle_refusals_count_as_locked_sign_ins_by_scope(
    client: FlaskClient, tenant: str
) -> None:
    def attempt(username: str, password: str) -> str:
        page = client.get(client.get("/t/acme/login").headers["Location"])
        html = page.get_data(as_text=True)
        form = {"csrf_token": csrf_of(html), "step": "identify", "username": username,
                "password": password}  # fmt: skip
        answer = client.post(page.request.url, data=form)
        return answer.get_data(as_text=True)

    def locks(scope: str) -> float:
        return process_value("stepwise_throttle_locks_total", tenant="acme", scope=scope)

    def sign_ins(result: str) -> float:
        return process_value("stepwise_sign_ins_total", tenant="acme", result=result,
                             factor="password")  # fmt: skip

    account, ip = locks("account"), locks("ip")
    failed, locked = sign_ins("failure"), sign_ins("locked")
    attempt("alice", "wrong one")  # the free attempt
    attempt("alice", "wrong two")  # shuts the gate for a second
    assert "Too many attempts" in attempt("alice", "wrong three")  # refused unchecked
    assert (locks("account") - account, sign_ins("failure") - failed) == (1, 2)
    attempt("olivia", "wrong one")  # the 3rd attempt this IP makes (the refused one made none)
    assert "Too many attempts" in attempt("nobody-here", "any")  # over the IP's limit of 3
    assert (locks("ip") - ip, sign_ins("locked") - locked) == (1, 2)


def test_the_dashboard_charts_only_what_metrics_exposes(client: FlaskClient) -> None:
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    exposed: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(
            family.type, ("",)
        ):
            exposed[family.name + suffix] = {"le"} if suffix == "_bucket" else set()
    for metric in metrics.CATALOGUE:  # every label the catalogue declares
        for name in exposed:
            if name.startswith(metric._name):
                exposed[name] |= set(metric._labelnames)
    board = json.loads(DASHBOARD.read_text())
    assert 38 <= board["schemaVersion"] <= 41
    assert any(v["type"] == "datasource" and v["query"] == "prometheus"
               for v in board["templating"]["list"])  # fmt: skip
    panels = [p for p in board["panels"] if p["type"] != "row"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    used = set()
    for expr in exprs:
        names = set(re.findall(r"\bstepwise_[a-z_]+", expr))
        assert names, expr
        grouped = [x.strip() for g in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
                   for x in g.split(",") if x.strip()]  # fmt: skip
        selected = re.findall(r"([a-z_]+)\s*=~?\s*\"", expr)
        for name in names:
            assert name in exposed, f"{name} is not exposed by /metrics"
            for label in grouped + selected:
                assert label in exposed[name], f"{name} has no label {label}: {expr}"
        used |= {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in names}
    assert used == {m._name for m in metrics.CATALOGUE}, "a metric without a panel"
