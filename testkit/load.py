"""Steady token and login load through a proxy, and a record of every request it sent.

Shared by the fault tests (tests/cluster/test_faults.py) and ``bench/faults.py``. Virtual users
run in threads, each with its own ``requests`` session and a bounded timeout:

- token users alternate the client_credentials grant and the refresh_token grant (the
  refresh tokens come from the logins, and each is rotated by the refresh);
- login users sign in as a browser would, through ``/authorize``, the login pages and the
  token endpoint with PKCE; every other login is a TOTP user's when one of them has an unused
  time step (oathtool computes the codes).

Every request is a :class:`Record`, sorted into one :class:`Outcome`. What counts as what is
written here once, because the rules of issue 16 are checked on it:

- ``OK``: the answer the flow wanted.
- ``REFUSED``: a proper, fast failure that the client can act on: Stepwise's 503 page, OAuth
  ``temporarily_unavailable`` (JSON, or as a redirect to the client), or the proxy's own 503
  (no node to send the request to).
- ``DROPPED``: the proxy's 502 or 504: the node or worker that held the request died (or did
  not answer), so the client cannot know whether it took effect. On a kept-alive connection
  haproxy says the same by closing the connection without an answer (a request that was not
  the connection's first: the client may retry, as HTTP allows for a connection closed under
  it), so that counts as DROPPED too. Allowed only while a node or worker is being killed.
- ``REJECTED``: a protocol-correct refusal that a healthy system would not have given, such
  as ``invalid_grant`` for a refresh token we hold as valid or an expired login form: the state
  the request needed was lost.
- ``IMPROPER``: what must never happen: a 500 or another unexpected answer, a connection
  reset or refused by the proxy, or no answer within the bound (a hang, though the proxy
  itself gives up on a node after ``testkit.cluster.SERVER_TIMEOUT``).

A request is *lost* when it is DROPPED, REJECTED or IMPROPER: the client got no answer it
could rely on. REFUSED requests are not lost: the client was told at once to try again, and
nothing happened on the server.

Separately from the outcomes, :attr:`Load.violations` lists every token or code issued
without its factors: a TOTP user's login that reached the client with a code without a TOTP
code accepted, an ``id_token`` whose ``amr`` lacks a factor the user proved, or a code given
to a ``prompt=none`` probe sent between the password and the TOTP step.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

from testkit.html import FORM, HIDDEN, SECRET, alert_of
from testkit.totp import oathtool

BOUND = 10.0  # seconds: a request unanswered by then is a hang (generous: slow machines)
REDIRECT_URI = "http://127.0.0.1:9/cb"  # never contacted: the load reads the redirect
PASSWORD = "steady load password 1"  # noqa: S105 (test users only)
STEP = 30  # TOTP time step (RFC 6238), seconds


class Outcome(enum.Enum):
    OK = "ok"
    REFUSED = "refused"
    DROPPED = "dropped"
    REJECTED = "rejected"
    IMPROPER = "improper"


LOST = (Outcome.DROPPED, Outcome.REJECTED, Outcome.IMPROPER)
# An answer's outcome and label outright, or None to let classify() decide (not wanted).
Judge = Callable[[requests.Response], "tuple[Outcome, str] | None"]


@dataclass(frozen=True)
class Record:
    """One request: when it started (``time.monotonic``), which flow and step, the answer."""

    at: float
    kind: str  # client_credentials, refresh, login, totp_login
    step: str  # token, authorize, page, identify, verify_totp, probe; loop (not a request)
    status: int | None  # None: no answer
    latency: float
    outcome: Outcome
    detail: str  # e.g. "200", "503 page", "temporarily_unavailable", "proxy 502", "timeout"
    node: str = ""  # X-Stepwise-Node of the answer, when a node answered


@dataclass
class TotpAccount:
    """A user with TOTP enrolled; codes are spent in increasing time steps (RFC 6238 5.2)."""

    username: str
    secret: str
    last_step: int
    busy: bool = False  # one sign-in at a time: the server turns a parallel attempt away
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reserve(self) -> str | None:
        """Hold the account for one sign-in and return the code it will use: a time step not
        used yet and accepted now (the server takes one step of drift either way, so the next
        step too; never an earlier one, which could be past the window once sent). None: the
        account is in use, or has no unused step until the clock moves on."""
        with self.lock:
            now = int(time.time()) // STEP
            candidate = max(self.last_step + 1, now)
            if self.busy or candidate > now + 1:
                return None
            self.busy, self.last_step = True, candidate  # spent even if the sign-in fails
        return oathtool(self.secret, candidate * STEP)

    def release(self) -> None:
        with self.lock:
            self.busy = False


@dataclass
class Target:
    """What the load runs against: the proxy's URL, one tenant, one confidential client."""

    base: str
    tenant: str
    client_id: str
    client_secret: str
    users: list[str]  # password only
    totp_users: list[TotpAccount]
    password: str = PASSWORD
    redirect_uri: str = REDIRECT_URI

    @property
    def issuer(self) -> str:
        return f"{self.base}/t/{self.tenant}"


# --- setting up a target ---------------------------------------------------------------------

_SEED = r"""
import contextlib, io, json, sys
from idp.cli import main

out = []
for args, stdin in json.loads(sys.argv[1]):
    buf, err = io.StringIO(), io.StringIO()
    sys.stdin = io.StringIO(stdin)
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise RuntimeError(f"idp {args[:3]}: {err.getvalue().strip()}") from None
    out.append(buf.getvalue())
print(json.dumps(out))
"""


def idp_batch(env: dict[str, str], commands: list[tuple[list[str], str]]) -> list[str]:
    """Several ``idp`` commands (arguments, standard input) in one interpreter, in order;
    returns what each printed. One start-up instead of one per command."""
    done = subprocess.run(
        [sys.executable, "-c", _SEED, json.dumps(commands)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if done.returncode != 0:
        raise RuntimeError(f"idp commands failed:\n{done.stderr[-2000:]}")
    printed: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return printed


def prepare(
    env: dict[str, str],
    base: str,
    tenant: str,
    users: int = 2,
    totp_users: int = 4,
    create_tenant: bool = True,
) -> Target:
    """A tenant (unless it exists), password users, TOTP users (required to use MFA and
    enrolled through ``base`` as a browser would) and a confidential client, through the real
    ``idp`` command on the running servers' database; returns the load's target."""
    names = [f"load{i}" for i in range(users)]
    totp_names = [f"totp{i}" for i in range(totp_users)]
    commands: list[tuple[list[str], str]] = []
    if create_tenant:
        commands.append((["tenant", "create", tenant], ""))
    for name in names + totp_names:
        commands.append(
            (["user", "create", tenant, name, "--email", f"{name}@{tenant}.test",
              "--password-stdin"], PASSWORD + "\n")
        )  # fmt: skip
    commands += [(["user", "require-mfa", tenant, name], "") for name in totp_names]
    commands.append(
        (["client", "create", tenant, "--name", "Load", "--redirect-uri", REDIRECT_URI, "--json"],
         "")
    )  # fmt: skip
    client = json.loads(idp_batch(env, commands)[-1])
    target = Target(base, tenant, client["client_id"], client["client_secret"], names, [])
    with ThreadPoolExecutor(max(1, len(totp_names))) as pool:  # one account each: no clash
        target.totp_users = list(pool.map(lambda name: enrol_totp(target, name), totp_names))
    return target


def authorize_url(target: Target, prompt: str = "") -> tuple[str, str]:
    """An authorization request with PKCE (S256); returns (URL, code_verifier)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code",
        "client_id": target.client_id,
        "redirect_uri": target.redirect_uri,
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    if prompt:
        params["prompt"] = prompt
    return f"{target.issuer}/authorize?{urlencode(params)}", verifier


def enrol_totp(target: Target, username: str) -> TotpAccount:
    """Sign ``username`` in once and enrol an authenticator app at the step the login asks for."""
    browser, secret, used = requests.Session(), "", 0
    url, _ = authorize_url(target)
    method, data = "GET", None
    for _ in range(15):
        resp = browser.request(method, url, data=data, allow_redirects=False, timeout=BOUND)
        if resp.is_redirect:
            url = urljoin(url, resp.headers["Location"])
            if url.startswith(target.redirect_uri):
                browser.close()
                return TotpAccount(username, secret, used)
            method, data = "GET", None
            continue
        assert resp.status_code == 200, (resp.status_code, resp.text[:300])
        action, fields = form_of(resp.text, url)
        step = fields.get("step", "")
        if step in ("identify", "password"):
            fields.update(username=username, password=target.password)
        elif step == "enroll":
            fields.update(factor="totp")
        elif step == "enroll_totp":
            found = SECRET.search(resp.text)
            assert found, resp.text[:300]
            secret, used = found.group(1), int(time.time()) // STEP
            fields.update(code=oathtool(secret, used * STEP), action="verify")
        else:  # the backup codes page
            fields.update(action="continue")
        method, url, data = "POST", action, fields
    raise AssertionError(f"enrolling {username} took too many steps")


def form_of(html: str, url: str) -> tuple[str, dict[str, str]]:
    """Where the page's login form posts, and its hidden fields."""
    form = FORM.search(html)
    assert form, html[:300]
    return urljoin(url, unescape(form.group(1))), {k: unescape(v) for k, v in HIDDEN.findall(html)}


# --- reading answers -------------------------------------------------------------------------


def from_proxy(resp: requests.Response) -> bool:
    """Whether the proxy answered on its own (haproxy's error pages: no node's header, and
    its own short HTML), rather than a node (even one whose answer lost its headers)."""
    return "X-Stepwise-Node" not in resp.headers and resp.text.startswith("<html><body><h1>")


def _json_error(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _title(html: str) -> str:
    start = html.find("<title>")
    end = html.find("</title>", start)
    return unescape(html[start + 7 : end]).split("·")[0].strip() if start >= 0 < end else ""


def classify(resp: requests.Response, ok: Callable[[requests.Response], bool]) -> tuple[
    Outcome, str
]:  # fmt: skip
    """The outcome of an answer, and a short label of it (see the module's docstring)."""
    status = resp.status_code
    if ok(resp):
        return Outcome.OK, str(status)
    if from_proxy(resp):
        if status == 503:
            return Outcome.REFUSED, "proxy 503"
        if status in (502, 504):
            return Outcome.DROPPED, f"proxy {status}"
        return Outcome.IMPROPER, f"proxy {status}"
    error = _json_error(resp)
    if status == 503:
        if error in ("temporarily_unavailable", "service_unavailable"):
            return Outcome.REFUSED, error
        if "<html" in resp.text and "Service unavailable" in resp.text:
            return Outcome.REFUSED, "503 page"
        return Outcome.IMPROPER, "503 without a proper body"
    if resp.is_redirect:
        location = resp.headers.get("Location", "")
        query = parse_qs(urlsplit(location).query)
        if query.get("error") == ["temporarily_unavailable"]:
            return Outcome.REFUSED, "temporarily_unavailable (redirect)"
        if "error" in query:
            return Outcome.REJECTED, f"redirect error={query['error'][0]}"
        return Outcome.REJECTED, f"{status} to {urlsplit(location).path}"
    if 400 <= status < 500:
        return Outcome.REJECTED, f"{status} {error or _title(resp.text) or 'page'}"
    title = _title(resp.text).removeprefix(str(status)).strip()  # Werkzeug's own pages
    return Outcome.IMPROPER, f"{status} {error or title}".strip()


def _asked_again(step: str, alert: str) -> tuple[Outcome, str]:
    """A login page that asked the same step again, with ``alert``. "Too many attempts" is a
    proper answer (wait, then try again): the load never runs two sign-ins of one account at
    once, so it comes from an attempt that a fault cut short (the account's attempt marker
    lives on for a few seconds). Anything else refused a right answer: state was lost."""
    outcome = Outcome.REFUSED if alert.startswith("Too many attempts") else Outcome.REJECTED
    return outcome, f"{step} asked again: {re.sub(r'[0-9]+', 'N', alert)}"


def amr_of(id_token: str) -> list[str]:
    """The ``amr`` claim of an id_token, read without checking the signature (the load only
    looks at what it was given; the interop tests check signatures)."""
    payload = id_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return list(claims.get("amr", []))


# --- the load --------------------------------------------------------------------------------


class Load:
    """Virtual users in threads, from :meth:`start` until :meth:`stop`; every request is kept
    in :attr:`records`, every token issued without its factors in :attr:`violations`."""

    def __init__(
        self,
        target: Target,
        token_users: int = 2,
        login_users: int = 2,
        pause: float = 0.02,
        bound: float = BOUND,
    ) -> None:
        if login_users > len(target.users):
            raise ValueError("each login user needs a password user of its own (prepare)")
        self.target, self.pause, self.bound = target, pause, bound
        self.records: list[Record] = []
        self.violations: list[str] = []
        self.marks: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refresh: deque[str] = deque(maxlen=16)
        self._threads = [
            threading.Thread(target=self._token_user, name=f"token-{i}", daemon=True)
            for i in range(token_users)
        ] + [
            threading.Thread(target=self._login_user, args=(i,), name=f"login-{i}", daemon=True)
            for i in range(login_users)
        ]
        self._failed: list[BaseException] = []

    # -- control

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.bound * 3)
        if self._failed:  # a bug of the load itself, not of the server: say so loudly
            raise RuntimeError("a virtual user failed") from self._failed[0]

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def mark(self, name: str) -> float:
        """Note the time of an event (a fault's start and end) for the summaries."""
        now = time.monotonic()
        with self._lock:
            self.marks[name] = now
        return now

    def snapshot(self) -> list[Record]:
        with self._lock:
            return sorted(self.records, key=lambda r: r.at)

    def wait_for(self, predicate: Callable[[list[Record]], bool], timeout: float) -> bool:
        """Poll the records until ``predicate`` holds; False at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.1)
        return predicate(self.snapshot())

    def wait_settled(self, since: float, count: int = 30, timeout: float = 60) -> bool:
        """Wait until the load has ``count`` requests in a row, all started after ``since``,
        that all succeeded, logins included."""

        def settled(records: list[Record]) -> bool:
            run = 0
            kinds: set[str] = set()
            for r in records:
                if r.at < since:
                    continue
                if r.outcome is Outcome.OK:
                    run, kinds = run + 1, kinds | {r.kind}
                else:
                    run, kinds = 0, set()
            return run >= count and bool(kinds & {"login", "totp_login"})

        return self.wait_for(settled, timeout)

    # -- requests

    def _add(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def send(
        self,
        session: requests.Session,
        kind: str,
        step: str,
        method: str,
        url: str,
        ok: Callable[[requests.Response], bool] | Judge,
        **kwargs: Any,
    ) -> tuple[Record, requests.Response | None]:
        """One request, recorded; its record and the answer (None: no answer). ``ok`` says
        whether the answer is the one wanted, or (a :data:`Judge`) what it is outright."""
        began = time.monotonic()
        try:
            resp = session.request(
                method, url, allow_redirects=False, timeout=(self.bound, self.bound), **kwargs
            )
        except requests.RequestException as exc:
            outcome, label = Outcome.IMPROPER, "connection error"
            if isinstance(exc, requests.Timeout):
                label = "timeout"
            elif "RemoteDisconnected" in str(exc):  # the proxy's silent 502 (module docstring)
                outcome, label = Outcome.DROPPED, "proxy closed without an answer"
            elif "reset" in str(exc).lower():
                label = "connection reset"
            record = Record(began, kind, step, None, time.monotonic() - began, outcome, label)
            self._add(record)
            return record, None
        latency = time.monotonic() - began
        verdict = ok(resp)
        if isinstance(verdict, tuple):
            outcome, detail = verdict
        else:
            outcome, detail = classify(resp, lambda _r: bool(verdict))
        if latency > self.bound:
            outcome, detail = Outcome.IMPROPER, f"answered past the bound ({detail})"
        node = resp.headers.get("X-Stepwise-Node", "")
        record = Record(began, kind, step, resp.status_code, latency, outcome, detail, node)
        self._add(record)
        return record, resp

    def token(
        self, session: requests.Session, kind: str, form: dict[str, str]
    ) -> tuple[Record, requests.Response | None]:
        return self.send(
            session,
            kind,
            "token",
            "POST",
            f"{self.target.issuer}/token",
            lambda r: r.status_code == 200 and "access_token" in r.text,
            data=form,
            auth=(self.target.client_id, self.target.client_secret),
        )

    # -- virtual users

    def _guard(self, body: Callable[[], None]) -> None:
        try:
            while not self._stop.is_set():
                body()
                self._stop.wait(self.pause)
        except BaseException as exc:  # noqa: BLE001 (reported by stop())
            self._failed.append(exc)

    def _token_user(self) -> None:
        session = requests.Session()
        turn = [0]

        def once() -> None:
            turn[0] += 1
            token = self._take_refresh() if turn[0] % 2 else None
            if token is None:
                self.token(session, "client_credentials", {"grant_type": "client_credentials"})
                return
            record, resp = self.token(
                session, "refresh", {"grant_type": "refresh_token", "refresh_token": token}
            )
            if record.outcome is Outcome.OK and resp is not None:
                self._refresh.append(resp.json()["refresh_token"])
            elif record.outcome is Outcome.REFUSED:
                self._refresh.append(token)  # refused before it was used: still good
            # Otherwise the token may have been rotated without our seeing the new one.

        self._guard(once)
        session.close()

    def _take_refresh(self) -> str | None:
        try:
            return self._refresh.popleft()
        except IndexError:
            return None

    def _login_user(self, index: int) -> None:
        """Signs in as its own password user, and every other time as a TOTP user when one
        is free: never two sign-ins of one account at once (the server would turn one away)."""
        turn = [0]
        users = self.target.users
        own = users[index % len(users)]

        def once() -> None:
            turn[0] += 1
            reserved = self._reserve_totp() if turn[0] % 2 else None
            with requests.Session() as browser:
                if reserved is None:
                    self.login(browser, own)
                    return
                account, code = reserved
                try:
                    self.login(browser, account.username, code)
                finally:
                    account.release()

        self._guard(once)

    def _reserve_totp(self) -> tuple[TotpAccount, str] | None:
        """A free TOTP user and the code it will use (None: none free now)."""
        for account in self.target.totp_users:
            code = account.reserve()
            if code is not None:
                return account, code
        return None

    def login(
        self, browser: requests.Session, username: str, totp_code: str | None = None
    ) -> dict[str, Any] | None:
        """One full sign-in (authorize, login pages, code, token) of ``username``, answering
        the TOTP step with ``totp_code`` when given; the token response when every step
        succeeded, else None (the browser gives up at the first failure)."""
        kind = "totp_login" if totp_code else "login"
        url, verifier = authorize_url(self.target)
        method, data = "GET", None
        totp_accepted, probed = False, False
        trail: list[str] = []
        for _ in range(12):
            step = data["step"] if data else ("authorize" if "/authorize" in url else "page")
            judge = self._login_judge(step if data else None, totp_code is not None)
            record, resp = self.send(browser, kind, step, method, url, judge, data=data)
            trail.append(f"{step} {record.detail}")
            if record.outcome is not Outcome.OK or resp is None:
                return None
            if resp.is_redirect:
                totp_accepted = totp_accepted or step == "verify_totp"
                url = urljoin(url, resp.headers["Location"])
                if url.startswith(self.target.redirect_uri):
                    mfa = totp_code is not None
                    return self._redeem(url, verifier, kind, username, mfa, totp_accepted)
                method, data = "GET", None
                continue
            action, fields = form_of(resp.text, url)
            if fields["step"] == "verify_totp" and totp_code is not None:
                if not probed:
                    probed = True
                    self._probe(browser, username)
                fields.update(code=totp_code, action="verify")
            else:
                fields.update(username=username, password=self.target.password)
            method, url, data = "POST", action, fields
        # Round in circles (a login page that sends back to /authorize, which sends to a new
        # login page...): the state the flow needed was lost. Not a request: no latency.
        self._add(Record(time.monotonic(), kind, "loop", None, 0.0, Outcome.REJECTED,
                         "went round in circles: " + " > ".join(trail)))  # fmt: skip
        return None

    def _login_judge(self, posted: str | None, mfa: bool) -> Judge:
        """How a login step's answer is judged. Wanted: a redirect (onward, or to the client
        with a code) or a page with a login step the user can answer. ``posted``: the step
        just answered, if any; the same step asked again means the answer was refused."""

        def judge(r: requests.Response) -> tuple[Outcome, str] | None:
            if r.is_redirect:
                location = urljoin(r.url, r.headers.get("Location", ""))
                query = parse_qs(urlsplit(location).query)
                if location.startswith(self.target.redirect_uri) and "code" not in query:
                    return None  # an error for the client: classify() says which
                return Outcome.OK, str(r.status_code)
            if r.status_code != 200 or FORM.search(r.text) is None:
                return None
            step = dict(HIDDEN.findall(r.text)).get("step", "")
            if posted and step == posted:
                return _asked_again(step, alert_of(r.text) or "")
            answerable = ["identify", "password"] + (["verify_totp"] if mfa else [])
            if step not in answerable:
                return Outcome.REJECTED, f"unexpected step {step}"
            return Outcome.OK, "200"

        return judge

    def _probe(self, browser: requests.Session, username: str) -> None:
        """Between the password and the TOTP step, ask for a code with ``prompt=none``: the
        answer must be an error for the client (login_required), never a code."""
        url, _ = authorize_url(self.target, prompt="none")

        def no_code(r: requests.Response) -> bool:
            query = parse_qs(urlsplit(r.headers.get("Location", "")).query)
            return r.is_redirect and "error" in query and "code" not in query

        _, resp = self.send(browser, "totp_login", "probe", "GET", url, no_code)
        if resp is not None and "code" in parse_qs(
            urlsplit(resp.headers.get("Location", "")).query
        ):
            self._violation(f"{username}: prompt=none gave a code before the TOTP step")

    def _redeem(
        self, landed: str, verifier: str, kind: str, username: str, mfa: bool, accepted: bool
    ) -> dict[str, Any] | None:
        """The code at the client's redirect URI, exchanged for tokens; the factors checked."""
        query = parse_qs(urlsplit(landed).query)
        if mfa and not accepted:
            self._violation(f"{username}: a code without an accepted TOTP code")
        with requests.Session() as client:
            record, resp = self.token(client, kind, {
                "grant_type": "authorization_code", "code": query["code"][0],
                "redirect_uri": self.target.redirect_uri, "code_verifier": verifier,
            })  # fmt: skip
        if record.outcome is not Outcome.OK or resp is None:
            return None
        answer: dict[str, Any] = resp.json()
        amr = amr_of(str(answer.get("id_token", "")))
        wanted = {"pwd", "otp"} if mfa else {"pwd"}
        if not wanted <= set(amr):
            self._violation(f"{username}: id_token amr {amr}, wanted {sorted(wanted)}")
        if "refresh_token" in answer:
            self._refresh.append(str(answer["refresh_token"]))
        return answer


# --- what it saw -----------------------------------------------------------------------------


@dataclass
class Summary:
    """What a load saw around one fault (between ``start`` and ``end``, monotonic times)."""

    total: int
    outcomes: Counter[str]
    errors: Counter[str]  # "outcome: step detail" -> count, for every request not OK
    lost: int
    recovery_from_start: float | None  # None: never recovered
    recovery_from_end: float | None
    latency: dict[str, tuple[float, float, int]]  # phase -> (p50, p99, count), seconds
    nodes: Counter[str]


def quantiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return (float("nan"), float("nan"))
    if len(values) == 1:
        return (values[0], values[0])
    q = statistics.quantiles(values, n=100, method="inclusive")
    return (q[49], q[98])


def recovery_point(records: list[Record]) -> float | None:
    """The start of the first OK request after which every request was OK (the load's first
    request when none failed); None when the last request failed."""
    point: float | None = records[0].at if records else None
    failing = False
    for r in records:
        if r.outcome is Outcome.OK:
            if failing:
                point, failing = r.at, False
        else:
            failing = True
    return None if failing else point


def summarize(records: Iterable[Record], start: float, end: float) -> Summary:
    rows = sorted(records, key=lambda r: r.at)
    errors = Counter(
        f"{r.outcome.value}: {r.kind}/{r.step} {r.detail}"
        for r in rows
        if r.outcome is not Outcome.OK
    )
    point = recovery_point(rows)
    phases = {
        "before": [r.latency for r in rows if r.at < start],
        "during": [r.latency for r in rows if start <= r.at < end],
        "after": [r.latency for r in rows if r.at >= end],
    }
    return Summary(
        total=len(rows),
        outcomes=Counter(r.outcome.value for r in rows),
        errors=errors,
        lost=sum(1 for r in rows if r.outcome in LOST),
        recovery_from_start=None if point is None else max(0.0, point - start),
        recovery_from_end=None if point is None else max(0.0, point - end),
        latency={k: (*quantiles(v), len(v)) for k, v in phases.items()},
        nodes=Counter(r.node for r in rows if r.node),
    )
