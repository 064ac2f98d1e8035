"""Step-up end to end with node openid-client 6 as the relying party (signature checks on)
and the HTML login forms answered like a browser: only the missing steps run, and acr, amr
and auth_time say what happened. Also the RFC 9470 helper's challenge, parsed by
openid-client and followed to success."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests

from stepwise_rs import Requirement, TokenChecker, protect
from testkit import servers
from testkit.signin import TotpUser, sign_in
from tests import cli_support
from tests.conftest import PASSWORD
from tests.interop.conftest import CALLBACK, NODE_DIR

LOA1, LOA2, LOA3 = "urn:stepwise:loa:1", "urn:stepwise:loa:2", "urn:stepwise:loa:3"
USERS = ("alice", "dave", "erin", "frank", "gina")


class NodeRp:
    """``stepup.mjs``: openid-client answering one JSON command per line."""

    def __init__(self, issuer: str, client_id: str, secret: str) -> None:
        node = shutil.which("node")
        assert node and (NODE_DIR / "node_modules" / "openid-client").is_dir()
        self.proc = subprocess.Popen(
            [node, "stepup.mjs", issuer, client_id, secret, CALLBACK], cwd=NODE_DIR,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline() or '{"error": "eof"}')
        assert answer.get("error") != "exception", answer
        return answer

    def close(self) -> None:
        servers.stop(self.proc)


@dataclass
class Setup:
    issuer: str
    rp: NodeRp
    strict_rp: NodeRp  # a client whose minimum level is 2
    api: str  # a resource server protected by stepwise_rs (level 2 within 60 s)
    clock: servers.ServerClock  # the server's wall clock, moved instead of sleeping


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    env = servers.idp_env(tmp_path_factory.mktemp("stepup") / "instance")
    cli_support.seed(env, "acme", "alice", PASSWORD)
    for name in USERS[1:]:
        cli_support.add_user(env, "acme", name, PASSWORD)
    # No WebAuthn in this tenant: level 3 cannot be reached (for the unmet cases).
    assert cli_support.idp(env, "tenant", "set-mfa", "acme", "--factors", "totp").returncode == 0
    clock = servers.ServerClock(Path(env["IDP_INSTANCE_PATH"]).parent)
    with servers.live_idp(env, clock=clock) as base:
        issuer = f"{base}/t/acme"
        rps = []
        for extra in ([], ["--min-level", "2"]):
            out = cli_support.idp(
                {**env, "IDP_BASE_URL": base},
                "client",
                "create",
                "acme",
                "--name",
                "RP",
                "--redirect-uri",
                CALLBACK,
                "--json",
                *extra,
            )
            creds = json.loads(out.stdout)
            rps.append(NodeRp(issuer, creds["client_id"], creds["client_secret"]))
        checker = TokenChecker(issuer)
        api = protect(
            lambda e, s: (
                s("200 OK", [("Content-Type", "application/json")]),
                [json.dumps({"ok": e["stepwise.claims"]["acr"]}).encode()],
            )[1],
            checker,
            Requirement([LOA2], max_age=60),
        )

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        server = make_server("127.0.0.1", servers.free_port(), api, handler_class=Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield Setup(issuer, rps[0], rps[1], f"http://127.0.0.1:{server.server_port}/", clock)
        finally:
            server.shutdown()
            server.server_close()
            for rp in rps:
                rp.close()


def login(
    rp: NodeRp, browser: requests.Session, user: str, totp: TotpUser | None = None, **params: str
) -> tuple[dict[str, Any], list[str]]:
    """Authorize with ``params``, answer the forms; the RP's answer and the steps shown."""
    seen: list[str] = []
    url = rp.ask(cmd="authorize", params=params)["url"]
    landed = sign_in(browser, url, CALLBACK, user, PASSWORD, totp, seen)
    return rp.ask(cmd="callback", url=landed), seen


def test_step_up_runs_only_the_missing_steps(setup: Setup) -> None:
    browser, totp = requests.Session(), TotpUser()
    first, seen = login(setup.rp, browser, "alice")
    assert first["claims"]["acr"] == LOA1 and first["claims"]["amr"] == ["pwd"]
    assert seen == ["identify"]
    setup.clock.advance(2)  # the server's clock; auth_time is in whole seconds
    # Level 2 asked: alice has no second factor yet, so she enrols one inside the step-up;
    # the password is not asked again.
    second, seen = login(setup.rp, browser, "alice", totp, acr_values=LOA2)
    assert seen == ["enroll", "enroll_totp", "backup_codes"]
    claims = second["claims"]
    assert claims["acr"] == LOA2 and claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["auth_time"] > first["claims"]["auth_time"]  # the newest factor's time

    # A new browser: enrolling inside a step-up did not turn MFA on, so level 1 is one
    # password; the step-up to level 2 then asks for the code alone.
    browser = requests.Session()
    again, seen = login(setup.rp, browser, "alice")
    assert again["claims"]["acr"] == LOA1 and seen == ["identify"]
    up, seen = login(setup.rp, browser, "alice", totp, acr_values=LOA2)
    assert seen == ["verify_totp"] and up["claims"]["acr"] == LOA2

    # prompt=none cannot raise the level: interaction_required, not a weaker token.
    browser2 = requests.Session()
    login(setup.rp, browser2, "alice")
    url = setup.rp.ask(cmd="authorize", params={"acr_values": LOA2, "prompt": "none"})["url"]
    refused = setup.rp.ask(cmd="callback", url=sign_in(browser2, url, CALLBACK, "alice", PASSWORD))
    assert refused["error"] == "interaction_required"

    # max_age: factors older than it do not count; the password is asked again.
    setup.clock.advance(3)
    fresh, seen = login(setup.rp, browser, "alice", totp, max_age="1")
    assert seen == ["password"] and fresh["claims"]["auth_time"] > up["claims"]["auth_time"]
    assert fresh["claims"]["acr"] == LOA1


def test_essential_acr_that_cannot_be_met_is_an_error_not_a_weaker_token(setup: Setup) -> None:
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": [LOA3]}}})
    answer, _ = login(setup.rp, requests.Session(), "dave", claims=claims)
    assert answer["error"] == "unmet_authentication_requirements"


def test_voluntary_acr_that_cannot_be_met_gives_the_achieved_level(setup: Setup) -> None:
    answer, seen = login(setup.rp, requests.Session(), "dave", acr_values=LOA3)
    assert answer["claims"]["acr"] == LOA1 and seen == ["identify"]


def test_the_clients_minimum_level_applies_when_the_request_asks_nothing(setup: Setup) -> None:
    answer, seen = login(setup.strict_rp, requests.Session(), "erin", TotpUser())
    assert seen == ["identify", "enroll", "enroll_totp", "backup_codes"]
    assert answer["claims"]["acr"] == LOA2


def test_rfc9470_challenge_is_parsed_by_the_client_and_followed(setup: Setup) -> None:
    browser, totp = requests.Session(), TotpUser()
    first, _ = login(setup.rp, browser, "frank")
    refused = setup.rp.ask(cmd="resource", url=setup.api, token=first["access_token"])
    assert refused["status"] == 401
    (challenge,) = refused["challenges"]  # as openid-client parsed WWW-Authenticate
    assert challenge["scheme"] == "bearer"
    wanted = challenge["parameters"]
    assert wanted["error"] == "insufficient_user_authentication"
    assert wanted["acr_values"] == LOA2 and wanted["max_age"] == "60"
    stepped, seen = login(
        setup.rp, browser, "frank", totp, acr_values=wanted["acr_values"], max_age=wanted["max_age"]
    )
    assert "password" not in seen and stepped["claims"]["acr"] == LOA2
    done = setup.rp.ask(cmd="resource", url=setup.api, token=stepped["access_token"])
    assert done == {"status": 200, "body": {"ok": LOA2}}


def test_essential_claims_parameter_errors_are_protocol_errors(setup: Setup) -> None:
    rp = setup.rp
    for claims in ("not json", '["x"]', '{"id_token": {"acr": "loa"}}'):
        url = rp.ask(cmd="authorize", params={"claims": claims})["url"]
        resp = requests.get(url, allow_redirects=False, timeout=10)
        assert resp.status_code == 302
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
        assert query["error"] == ["invalid_request"], claims
