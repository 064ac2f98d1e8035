"""Fuzz every route of a live ``idp serve``: no answer may be a 5xx, no error may be logged.

The server runs with a seeded tenant ``acme``: members alice (password only) and bob (TOTP),
an owner olivia, carol and dave (MFA required, none enrolled) for the fuzzed sign-ins and
console forms, a confidential and a public OIDC client, an admin-API client and a SAML SP.
The routes come from the app's own ``url_map``, so a new route is fuzzed without a change
here. Each request goes to one route (or a junk path), as one of: anonymous, a fresh browser,
alice, bob or olivia (signed in), with or without the session's CSRF token, with parameters
drawn from the protocol's own names and values and from hostile ones (overlong, Unicode
digits, nested JSON, bad base64, deflate and XML, odd Host headers, huge bodies, odd methods,
repeated parameters).

Requests are sent one at a time on keep-alive connections, one per identity. The run fails
(exit status 1) on any 5xx, any traceback or ``unhandled error`` line in the server's log,
and any connection the server drops without ``Connection: close``; each distinct cause is
printed once, with a reproducer.

    .venv/bin/python bench/fuzz.py --requests 10000 --seed 1
    .venv/bin/python bench/fuzz.py --seed 1 --replay 345,2210   # only those requests again
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from testkit.html import CSRF, SECRET  # noqa: E402
from testkit.servers import idp_env, live_idp  # noqa: E402
from testkit.totp import oathtool  # noqa: E402

TENANT = "acme"
PASSWORD = "fuzzing password 1"
REDIRECT = "https://rp.fuzz.example/cb"
SP = "https://sp.fuzz.example/metadata"
ACS = "https://sp.fuzz.example/acs"
SP_METADATA = f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
  entityID="{SP}"><md:SPSSODescriptor
  protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
    Location="https://sp.fuzz.example/slo"/>
  <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    Location="{ACS}" index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>"""
#: Signed-in identities: username, role, whether they sign in with TOTP.
SIGNED_IN = {"alice": ("member", False), "bob": ("member", True), "olivia": ("owner", False)}
#: Users only the fuzzed requests name (so the sessions above are never throttled).
OTHERS = {"carol": ("member", False), "dave": ("member", True)}
IDENTITIES = ("anon", "fresh", "alice", "bob", "olivia")
HUGE = 1024 * 1024  # a body far over the form limit
TRACEBACK = "Traceback (most recent call last):"
UNHANDLED = "unhandled error"


# --- what is sent -------------------------------------------------------------------------


@dataclass
class Spec:
    """One generated request; ``{{name}}`` in any string is filled in when it is sent."""

    index: int
    who: str
    method: str
    path: str
    rule: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    body_code: str = ""  # a Python expression for a body too long to print
    content_type: str | None = None


@dataclass
class Wire:
    """A request as sent: exact bytes, for the reproducer."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    body_code: str


PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


def fill(text: str, values: Callable[[str], str]) -> str:
    return PLACEHOLDER.sub(lambda m: values(m.group(1)), text)


# --- values ---------------------------------------------------------------------------------


def deflate_b64(data: bytes) -> str:
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(raw.compress(data) + raw.flush()).decode()


def saml_request(kind: str, req_id: str, extra: str = "", prefix: str = "") -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    inner = (
        f"<saml:Issuer>{SP}</saml:Issuer><saml:NameID>fuzz</saml:NameID>"
        if kind == "LogoutRequest"
        else f"<saml:Issuer>{SP}</saml:Issuer>"
    )
    acs = f' AssertionConsumerServiceURL="{ACS}"' if kind == "AuthnRequest" else ""
    return (
        f'{prefix}<samlp:{kind} xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{req_id}" Version="2.0" '
        f'IssueInstant="{now}"{acs}{extra}>{inner}</samlp:{kind}>'
    )


XXE = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
# superscript two, circled one, Arabic-Indic three, fullwidth one two, double-struck zero, NKo three
UNICODE_DIGITS = ["\u00b2", "\u2460", "\u0663", "\uff11\uff12", "\U0001d7d8", "\u07c3"]
# fmt: off
HOSTILE = [
    "", " ", "\x00", "%", "%00", "%zz", "a" * 5000, "-1", "0", "1e9", "NaN",
    "99999999999999999999", *UNICODE_DIGITS, "[" * 1000, '{"a":' * 300, "[]", "{}", "null", "true",
    '"x"', "http://[::1", "https://evil.example/", "//evil.example/x", "javascript:alert(1)",
    "\\\\x", "<x>", "<not-xml", XXE + "<r>&x;</r>", "!!!not base64!!!", "====",
    base64.b64encode(b"not deflate").decode(), deflate_b64(b"<not-xml"), deflate_b64(b"\xff\xfe"),
    "é" * 600, "\u202e\u0301", "\U0001f600", "a\u0000b", "..", "../../etc/passwd", "x" * 1025,
]
ODD_HOSTS = [
    "a" * 64 + ".example", "evil.example", "[::1", "127.0.0.1:99999", "", "ex ample", "é.example",
    "localhost", "127.0.0.1:80:80", "a." * 130 + "example",
]
ODD_METHODS = [
    "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO", "CONNECT_X",
]

OIDC_NAMES = [
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "prompt", "max_age",
    "code_challenge", "code_challenge_method", "response_mode", "request", "request_uri",
    "acr_values", "claims", "id_token_hint", "login_hint", "ui_locales", "grant_type", "code",
    "code_verifier", "refresh_token", "client_secret", "client_assertion", "client_assertion_type",
    "token", "token_type_hint", "access_token", "post_logout_redirect_uri", "logout_hint",
    "bounce", "req", "unmet", "action", "confirm",
]
SAML_NAMES = [
    "SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature", "sp", "req", "bounce",
    "action", "confirm",
]
LOGIN_NAMES = [
    "flow", "step", "username", "password", "code", "next_code", "factor", "action", "phone",
    "email", "confirm", "credential", "label", "return_to", "prompt", "unmet",
]
ACCOUNT_NAMES = [
    "factor", "label", "action", "confirm", "code", "password", "credential", "kind", "name",
]
CONSOLE_NAMES = [
    "mode", "scope", "apply", "factors", "reoffer_days", "totp_two_codes",
    "admins_phishing_resistant", "webauthn_block_cloned", "metadata", "nameid", "sign_response",
    "encrypt", "min_level", "required", "action", "name",
]

GOOD: dict[str, list[str]] = {
    "response_type": ["code", "token", "id_token", "code id_token", "none"],
    "client_id": ["{{client_id}}", "{{public_client_id}}", "{{admin_client_id}}", "nope"],
    "redirect_uri": [REDIRECT, "https://evil.example/cb", REDIRECT + "?x=1"],
    "scope": ["openid", "openid profile email offline_access", "stepwise:admin", "profile"],
    "prompt": ["none", "login", "consent", "select_account", "none login", "create"],
    "max_age": ["0", "60", "-1", "1.5", "1e3"],
    "code_challenge": ["{{challenge}}", "a" * 43, "short"],
    "code_challenge_method": ["S256", "plain", "S512"],
    "response_mode": ["query", "fragment", "form_post", "jwt"],
    "acr_values": ["urn:stepwise:loa:1", "urn:stepwise:loa:2", "urn:stepwise:loa:3", "phr"],
    "claims": ['{"id_token":{"acr":{"essential":true,"values":["urn:stepwise:loa:2"]}}}',
               '{"userinfo":{"email":null}}', '{"id_token":{"acr":{"value":3}}}'],
    "id_token_hint": ["{{id_token}}", "{{access_token}}", "eyJhbGciOiJub25lIn0.e30."],
    "grant_type": ["authorization_code", "refresh_token", "client_credentials", "password",
                   "urn:ietf:params:oauth:grant-type:device_code"],
    "code": ["{{auth_code}}", "000000", "123456"],
    "code_verifier": ["{{verifier}}", "x" * 43],
    "refresh_token": ["{{refresh_token}}"],
    "client_secret": ["{{client_secret}}", "wrong"],
    "token": ["{{access_token}}", "{{refresh_token}}", "{{id_token}}", "{{admin_token}}"],
    "token_type_hint": ["access_token", "refresh_token", "id_token"],
    "access_token": ["{{access_token}}", "{{admin_token}}"],
    "post_logout_redirect_uri": [REDIRECT, "https://evil.example/"],
    "SAMLRequest": ["{{saml_authn_redirect}}", "{{saml_authn_post}}", "{{saml_logout_redirect}}",
                    "{{saml_logout_post}}", "{{saml_xxe}}", "{{saml_acs_index}}"],
    "SAMLResponse": ["{{saml_authn_post}}"],
    "RelayState": ["state-1", "https://evil.example/", "r" * 100],
    "SigAlg": ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "none"],
    "Signature": ["AAAA", "!!"],
    "sp": [SP, "https://unknown.example/"],
    "username": ["carol", "dave", "nobody", "CAROL", " carol "],
    "password": [PASSWORD, "wrong password"],
    "step": ["identify", "password", "offer", "enroll", "choose", "verify_totp", "enroll_totp",
             "backup_codes", "verify_backup", "verify_webauthn", "enroll_webauthn"],
    "action": ["continue", "skip", "resend", "switch", "back", "verify", "remove", "rename", "off",
               "confirm", "cancel", "sign_out"],
    "factor": ["totp", "webauthn", "passkey", "sms", "email", "backup", "totp:1", "sms:-1",
               "totp:99999999999999999999", "webauthn:1"],
    "code_": ["000000", "123456", "abcd-efgh"],
    "flow": ["{{flow}}", "nope"],
    "return_to": ["/t/acme/account", "https://evil.example/", "//evil", "/t/acme/admin/"],
    "credential": ['{"id":"x","rawId":"x","type":"public-key","response":{}}', "{}", "[]"],
    "mode": ["off", "optional", "required"],
    "scope_": ["all", "admins"],
    "apply": ["next_login", "now", "immediately"],
    "factors": ["totp", "webauthn", "sms", "email", "totp,webauthn"],
    "reoffer_days": ["0", "30", "365", "99999"],
    "metadata": [SP_METADATA, SP_METADATA.replace('index="0"', 'index=""'),
                 SP_METADATA.replace('index="0"', 'index="x"'), "<not-xml", XXE],
    "nameid": ["persistent", "email", "transient", "unspecified", "x"],
    "min_level": ["0", "1", "3", "4"],
    "req": ["{{flow}}", "nope"],
    "bounce": ["nope", "x" * 24],
}
GOOD["return_to"] += ["http://[::1", "http://[", "https://a" + "b" * 300 + ".example/"]
GOOD["reoffer_days"] += UNICODE_DIGITS
GOOD["factor"] += [f"totp:{d}" for d in UNICODE_DIGITS]

#: A valid request per endpoint: half the fuzzed requests mutate one or two of its fields, so
#: that bad input reaches the code behind the first checks.
BASELINES: dict[str, list[tuple[str, str]]] = {
    "login.login": [("return_to", "/t/acme/account")],
    "login.answer": [("step", "identify"), ("username", "carol"), ("password", PASSWORD),
                     ("action", "continue")],
    "oidc.authorize": [("response_type", "code"), ("client_id", "{{client_id}}"),
                       ("redirect_uri", REDIRECT), ("scope", "openid"), ("state", "s"),
                       ("nonce", "n"), ("code_challenge", "{{challenge}}"),
                       ("code_challenge_method", "S256")],
    "oidc.end_session": [("id_token_hint", "{{id_token}}"), ("post_logout_redirect_uri", REDIRECT),
                         ("state", "s")],
    "oidc_api.token": [("grant_type", "authorization_code"), ("code", "{{auth_code}}"),
                       ("redirect_uri", REDIRECT), ("code_verifier", "{{verifier}}")],
    "oidc_api.revoke": [("token", "{{access_token}}"), ("token_type_hint", "access_token")],
    "oidc_api.introspect": [("token", "{{access_token}}")],
    "oidc_api.userinfo": [("access_token", "{{access_token}}")],
    "saml.sso": [("SAMLRequest", "{{saml_sso}}"), ("RelayState", "r")],
    "saml.slo": [("SAMLRequest", "{{saml_logout_redirect}}"), ("RelayState", "r")],
    "saml.idp_initiated": [("sp", SP), ("RelayState", "r")],
    "admin.policy": [("mode", "optional"), ("scope", "all"), ("apply", "next_login"),
                     ("factors", "totp"), ("factors", "webauthn"), ("reoffer_days", "30")],
    "admin.add_service_provider": [("metadata", SP_METADATA.replace(SP, SP + "/2")),
                                   ("nameid", "persistent"), ("min_level", "0")],
    "admin.user_mfa": [("action", "require")],
    "account.add_factor": [("factor", "totp")],
    "account.rename_factor": [("factor", "totp:1"), ("label", "phone")],
    "account.remove_factor": [("factor", "totp:1")],
    "account.mfa_off": [("action", "confirm")],
    "admin_api.policy": [("mode", "optional"), ("reoffer_days", "30")],
    "admin_api.user_mfa": [("required", "true")],
}

FAMILIES: list[tuple[str, list[str]]] = [
    ("admin_api.", CONSOLE_NAMES), ("admin.", CONSOLE_NAMES), ("account.", ACCOUNT_NAMES),
    ("login.", LOGIN_NAMES), ("saml.", SAML_NAMES), ("oidc", OIDC_NAMES),
]

# fmt: on


@dataclass(frozen=True)
class Route:
    rule: str
    methods: tuple[str, ...]
    endpoint: str


def names_for(endpoint: str) -> list[str]:
    for prefix, names in FAMILIES:
        if endpoint.startswith(prefix):
            return names
    return ["x", "flow", "return_to", "prompt", "q"]


class Generator:
    """The requests of one run: a pure function of the seed and the route list."""

    def __init__(self, seed: int, routes: list[Route]) -> None:
        self.rng = random.Random(seed)
        self.routes = sorted(routes, key=lambda r: r.rule)

    def specs(self, count: int) -> Iterator[Spec]:
        for index in range(count):
            yield self.one(index)

    def value(self, name: str) -> str:
        r = self.rng.random()
        good = GOOD.get(name) or GOOD.get(name + "_")
        if good and r < 0.55:
            return self.rng.choice(good)
        if r < 0.85:
            return self.rng.choice(HOSTILE)
        alphabet = "aZ09-_.~ %&=+/?#é²①\x7f\t"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, 40)))

    def path_arg(self, name: str) -> str:
        r = self.rng.random()
        if name == "tenant":
            return TENANT if r < 0.9 else self.rng.choice(["nope", "ACME", "a" * 200, "é", "-"])
        if name == "username":
            if r < 0.7:
                return self.rng.choice(["carol", "dave", "olivia", "nobody"])
            return self.rng.choice(["a" * 300, "é²", "%00", "..", "x y"])
        if name == "filename":
            return self.rng.choice(["style.css", "webauthn.js", "../idp/app.py", "nope", "%2e%2e"])
        return self.rng.choice(["x", "a" * 100])

    def path(self, route: Route) -> str:
        parts = re.split(r"(<[^>]+>)", route.rule)
        out = []
        for part in parts:
            if part.startswith("<"):
                out.append(quote(self.path_arg(part.strip("<>").rpartition(":")[2]), safe=""))
            else:
                out.append(part)
        path = "".join(out)
        r = self.rng.random()
        if r < 0.03:
            path += self.rng.choice(["/", "/x", "//", "/%2e%2e/admin/", ";x=1", "/" + "a" * 3000])
        elif r < 0.05:
            path = "/" + path.lstrip("/").replace("/", "//", 1)
        return path

    def one(self, index: int) -> Spec:
        rng = self.rng
        if rng.random() < 0.04:
            route = Route(
                rng.choice(["/nowhere", "/t/acme/nowhere", "/t/", "/t/acme/saml"]),
                ("GET", "POST"),
                "junk",
            )
        else:
            route = rng.choice(self.routes)
        methods = [m for m in route.methods if m not in ("HEAD", "OPTIONS")] or ["GET"]
        method = rng.choice(methods) if rng.random() < 0.88 else rng.choice(ODD_METHODS)
        # The console is mostly the owner's, the account page a signed-in user's.
        family = route.endpoint.split(".")[0]
        weights = {"admin": [10, 10, 10, 10, 60], "account": [10, 10, 30, 30, 20]}
        who = rng.choices(IDENTITIES, weights=weights.get(family, [25, 15, 20, 15, 25]))[0]
        spec = Spec(index, who, method, self.path(route), route.rule)
        names = names_for(route.endpoint)
        baseline = BASELINES.get(route.endpoint)
        if baseline and rng.random() < 0.5:
            params = self.mutate(baseline, names)
        else:
            params = [
                (n, self.value(n)) for n in rng.sample(names, rng.randint(0, min(8, len(names))))
            ]
            if params and rng.random() < 0.1:  # a repeated parameter
                params.append((params[0][0], self.value(params[0][0])))
        r = rng.random()
        if method not in ("GET", "HEAD") and r < (0.8 if who in SIGNED_IN else 0.6):
            params.insert(0, ("csrf_token", "{{csrf}}"))
        elif r < 0.65:
            params.insert(0, ("csrf_token", rng.choice(["x", "{{csrf}}x", "", "a" * 3000])))
        if route.endpoint == "login.answer" or (route.endpoint == "login.login" and r < 0.3):
            spec.query.append(("flow", "{{flow}}" if rng.random() < 0.8 else self.value("x")))
        self.place(spec, route, params)
        self.add_headers(spec, route)
        return spec

    def mutate(self, baseline: list[tuple[str, str]], names: list[str]) -> list[tuple[str, str]]:
        """``baseline`` with one or two fields changed, dropped, repeated or added."""
        rng, params = self.rng, list(baseline)
        for _ in range(rng.choice([1, 1, 2])):
            i = rng.randrange(len(params))
            name = params[i][0]
            r = rng.random()
            if r < 0.6:
                hostile = rng.choice(HOSTILE if rng.random() < 0.8 else UNICODE_DIGITS)
                params[i] = (name, hostile if rng.random() < 0.6 else self.value(name))
            elif r < 0.75:
                del params[i]
                if not params:
                    break
            elif r < 0.9:
                params.append((name, self.value(name)))
            else:
                extra = rng.choice(names)
                params.append((extra, self.value(extra)))
        return params

    def place(self, spec: Spec, route: Route, params: list[tuple[str, str]]) -> None:
        rng = self.rng
        if spec.method in ("GET", "HEAD", "DELETE", "OPTIONS", "TRACE") and rng.random() < 0.9:
            spec.query += params
            return
        if rng.random() < 0.15:
            spec.query += params[: len(params) // 2]
            params = params[len(params) // 2 :]
        r = rng.random()
        json_first = route.endpoint.startswith("admin_api.")
        if (json_first and r < 0.7) or (not json_first and r < 0.08):
            spec.body, spec.content_type = self.json_body(params).encode(), "application/json"
        elif r < 0.8:
            form = urlencode(params).encode()
            if rng.random() < 0.1:
                form += b"&" + bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
            spec.body, spec.content_type = form, "application/x-www-form-urlencoded"
        elif r < 0.86:
            spec.body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
            spec.content_type = rng.choice([None, "application/octet-stream", "text/xml"])
        elif r < 0.9:
            boundary = "fuzzb"
            head = f"--{boundary}\r\nContent-Disposition: form-data; name="
            parts = b"".join(f'{head}"{n}"\r\n\r\n{v}\r\n'.encode() for n, v in params)
            spec.body = parts + f"--{boundary}--\r\n".encode()
            spec.content_type = rng.choice(
                [f"multipart/form-data; boundary={boundary}", "multipart/form-data"]
            )
        else:  # huge: just over the form limit, or far beyond what is drained
            size = rng.choice([70_000, 200_000, HUGE])
            spec.body = b"a=" + b"x" * size
            spec.body_code = f'b"a=" + b"x" * {size}'
            spec.content_type = rng.choice(
                ["application/x-www-form-urlencoded", "application/json", "text/plain"]
            )

    def json_body(self, params: list[tuple[str, str]]) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.1:
            return rng.choice(["[" * 2000, '{"a":' * 1000, "[1,", "", "nul", '"\\ud800"'])
        obj: dict[str, Any] = {}
        for name, text in params:
            kind = rng.random()
            if text in ("true", "false"):
                obj[name] = text == "true"
            elif text.isascii() and text.isdigit() and kind < 0.7:
                obj[name] = int(text)
            elif kind < 0.5:
                obj[name] = text
            elif kind < 0.6:
                obj[name] = rng.choice([True, False, None, 0, -1, 10**30, 1.5])
            elif kind < 0.7:
                obj[name] = [text, 1, None]
            else:
                obj[name] = {"nested": text}
        if rng.random() < 0.3:
            obj[rng.choice(["mode", "required", "factors", "reoffer_days"])] = rng.choice(
                ["required", True, ["totp"], "²", 3, [], {}, None]
            )
        return json.dumps(obj)

    def add_headers(self, spec: Spec, route: Route) -> None:
        rng = self.rng
        host = "{{host}}" if rng.random() < 0.9 else rng.choice(ODD_HOSTS)
        spec.headers.append(("Host", host))
        if spec.content_type and rng.random() < 0.92:
            spec.headers.append(("Content-Type", spec.content_type))
        elif rng.random() < 0.3:
            spec.headers.append(
                (
                    "Content-Type",
                    rng.choice(
                        [
                            "application/json",
                            "multipart/form-data",
                            "application/x-www-form-urlencoded; charset=latin-1",
                            "text/html",
                            ";;",
                            "application/jwt",
                        ]
                    ),
                )
            )
        r = rng.random()
        ep = route.endpoint
        if ep.startswith("admin_api.") and r < 0.6:
            spec.headers.append(("Authorization", "Bearer {{admin_token}}"))
        elif ep.startswith("oidc") and r < 0.4:
            spec.headers.append(
                (
                    "Authorization",
                    rng.choice(
                        ["Basic {{basic}}", "Bearer {{access_token}}", "Basic {{admin_basic}}"]
                    ),
                )
            )
        elif r < 0.75:
            spec.headers.append(
                (
                    "Authorization",
                    rng.choice(
                        [
                            "Basic !!",
                            "Bearer",
                            "Bearer x.y.z",
                            "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
                            "Digest x",
                            "Bearer {{access_token}}",
                            "Basic " + "A" * 2000,
                        ]
                    ),
                )
            )
        if rng.random() < 0.15:
            spec.headers.append(
                ("Accept", rng.choice(["application/json", "*/*", "text/html;q=x"]))
            )
        if rng.random() < 0.1:
            spec.headers += [("Origin", "https://evil.example"), ("Sec-Fetch-Site", "cross-site")]
        if rng.random() < 0.05:
            spec.headers.append(("X-Forwarded-For", rng.choice(["1.2.3.4", "garbage", "::1, x"])))
        if spec.who == "fresh" and rng.random() < 0.3:
            spec.headers.append(
                (
                    "Cookie",
                    rng.choice(
                        ["session=garbage", "session=" + "a" * 4000, "session=", "x=1; session=é"]
                    ),
                )
            )


# --- the server -------------------------------------------------------------------------------


SEED_SCRIPT = r"""
import contextlib, io, json, sys
from idp.cli import main

def run(args, stdin=""):
    out, err = io.StringIO(), io.StringIO()
    sys.stdin = io.StringIO(stdin)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise RuntimeError(f"idp {' '.join(args)}: {err.getvalue().strip()}") from None
    return out.getvalue()

plan = json.loads(sys.argv[1])
results = {}
for name, args, stdin in plan:
    results[name] = run(args, stdin)
try:
    from idp.app import create_app
except ImportError:
    from idp import create_app
app = create_app()
results["routes"] = [
    [r.rule, sorted(r.methods or ()), r.endpoint] for r in app.url_map.iter_rules()
]
print(json.dumps(results))
"""


@dataclass
class Server:
    base: str
    port: int
    log: Path
    env: dict[str, str]
    routes: list[Route]
    seeded: dict[str, Any]


def server_env(instance: Path) -> dict[str, str]:
    # Thousands of fuzzed sign-ins come from one address: keep the IP gate out of the way (its
    # own tests cover it). Fuzzed sign-ins name other users than the sessions do.
    env = idp_env(instance, IDP_THROTTLE_IP_LIMIT="100000000")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def seed_instance(env: dict[str, str], instance: Path) -> dict[str, Any]:
    """Schema, tenant, users, clients and the SP through the ``idp`` CLI (one interpreter)."""
    metadata = instance / "sp.xml"
    metadata.write_text(SP_METADATA)
    plan: list[tuple[str, list[str], str]] = [
        ("init", ["init"], ""),
        ("tenant", ["tenant", "create", TENANT, "--mfa", "optional"], ""),
    ]
    for name, (role, _) in {**SIGNED_IN, **OTHERS}.items():
        args = [
            "user",
            "create",
            TENANT,
            name,
            "--email",
            f"{name}@acme.test",
            "--role",
            role,
            "--password-stdin",
        ]
        plan.append((f"user {name}", args, PASSWORD + "\n"))
    for name, (_, mfa) in {**SIGNED_IN, **OTHERS}.items():
        if mfa:
            plan.append((f"mfa {name}", ["user", "require-mfa", TENANT, name], ""))
    plan += [
        (
            "client",
            [
                "client",
                "create",
                TENANT,
                "--name",
                "web",
                "--redirect-uri",
                REDIRECT,
                "--post-logout-uri",
                REDIRECT,
                "--json",
            ],
            "",
        ),
        (
            "public",
            [
                "client",
                "create",
                TENANT,
                "--name",
                "spa",
                "--redirect-uri",
                REDIRECT,
                "--public",
                "--json",
            ],
            "",
        ),
        ("admin", ["client", "create", TENANT, "--name", "ops", "--admin-api", "--json"], ""),
        ("sp", ["sp", "add", TENANT, "--metadata", str(metadata)], ""),
    ]
    done = subprocess.run(
        [sys.executable, "-c", SEED_SCRIPT, json.dumps(plan)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def live_server(workdir: Path | None = None) -> Iterator[Server]:
    """``idp serve`` (one worker, testkit's ``live_idp``) on a seeded instance."""
    tmp = workdir or Path(tempfile.mkdtemp(prefix="stepwise-fuzz-"))
    instance = tmp / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    env = server_env(instance)
    seeded = seed_instance(env, instance)
    routes = [Route(r, tuple(m), e) for r, m, e in seeded.pop("routes")]
    try:
        with live_idp(env) as base:
            port = urlsplit(base).port or 80
            log = instance / f"serve-{port}.log"  # where live_idp sends the server's output
            if not log.exists():
                raise RuntimeError(f"no server log at {log}: testkit.live_idp changed")
            yield Server(base, port, log, env, routes, seeded)
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)


# --- clients ------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int  # 0: no answer
    headers: list[tuple[str, str]]
    body: bytes
    error: str = ""
    dropped: bool = False  # the server closed a connection it had not said it would close


class Client:
    """One keep-alive connection with its own cookies, as one browser (or none)."""

    def __init__(self, port: int, keep_cookies: bool = True) -> None:
        self.port, self.keep_cookies = port, keep_cookies
        self.conn: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}
        self.csrf, self.flow, self.totp_secret = "", "", ""
        self.last_totp_step = -1

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def send(self, wire: Wire) -> Answer:
        reused = self.conn is not None
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn = self.conn
        headers = list(wire.headers)
        if self.cookies and not any(k.lower() == "cookie" for k, _ in headers):
            headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items())))
        try:
            conn.putrequest(wire.method, wire.target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if wire.body or wire.method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(wire.body)))
            try:
                conn.endheaders(wire.body or None)
            except OSError:
                if len(wire.body) < HUGE:
                    raise
                # The server may answer (and close) before reading a body this size.
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            large = len(wire.body) >= HUGE
            return Answer(0, [], b"", f"{exc.__class__.__name__}: {exc}", reused and not large)
        if resp.will_close:
            self.close()
        if self.keep_cookies:
            for raw in resp.msg.get_all("Set-Cookie") or []:
                jar: SimpleCookie = SimpleCookie()
                try:
                    jar.load(raw)
                except Exception:  # noqa: BLE001, S112 - a cookie we cannot parse is not kept
                    continue
                for name, morsel in jar.items():
                    expired = morsel["max-age"] == "0" or "1970" in morsel["expires"]
                    if expired or not morsel.value:
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
        return Answer(resp.status, resp.getheaders(), body)

    def get(self, path: str, host: str) -> Answer:
        return self.send(Wire("GET", path, [("Host", host)], b"", ""))

    def post(self, path: str, host: str, form: dict[str, str]) -> Answer:
        headers = [("Host", host), ("Content-Type", "application/x-www-form-urlencoded")]
        return self.send(Wire("POST", path, headers, urlencode(form).encode(), ""))


def header(answer: Answer, name: str) -> str:
    return next((v for k, v in answer.headers if k.lower() == name.lower()), "")


STEP = re.compile(r'name="step" value="([a-z_]+)"')


# --- the run --------------------------------------------------------------------------------


@dataclass
class Finding:
    kind: str  # "5xx", "traceback", "dropped"
    key: str
    summary: str
    spec: Spec | None
    wire: Wire | None
    detail: str = ""
    count: int = 1


@dataclass
class Report:
    seed: int
    sent: int = 0
    answered: int = 0
    five_xx: int = 0
    tracebacks: int = 0
    dropped: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    findings: dict[str, Finding] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.five_xx or self.tracebacks or self.dropped)

    def add(self, finding: Finding) -> None:
        if finding.key in self.findings:
            self.findings[finding.key].count += 1
        else:
            self.findings[finding.key] = finding


@dataclass
class Crash:
    """One logged error: its traceback (if any) and the line that names it."""

    text: str
    exception: str
    frame: str  # the innermost frame in this repository: "path:line in function"

    @property
    def key(self) -> str:
        return f"{self.frame} {self.exception.split(':', 1)[0]}"


FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (.+)$')


def scan_log(text: str, root: Path = ROOT) -> list[Crash]:
    """The tracebacks and ``unhandled error`` lines in ``text``; a chained traceback is one."""
    lines = text.splitlines()
    crashes: list[Crash] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith(TRACEBACK):
            start, frames, i = i, [], i + 1
            while True:
                while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
                    match = FRAME.match(lines[i])
                    if match:
                        frames.append(match)
                    i += 1
                exception = lines[i].strip() if i < len(lines) else "(cut off)"
                i += 1
                # "During handling of the above exception..." and "The above exception was
                # the direct cause..." continue the same crash.
                j = _skip_blank(lines, i)
                if j < len(lines) and lines[j].startswith(("During handling", "The above")):
                    j = _skip_blank(lines, j + 1)
                    if j < len(lines) and lines[j].rstrip().endswith(TRACEBACK):
                        i = j + 1
                        continue
                break
            ours = [m for m in frames if _ours(m.group(1), root)]
            where = ours[-1] if ours else (frames[-1] if frames else None)
            frame = (
                f"{_rel(where.group(1), root)}:{where.group(2)} in {where.group(3)}"
                if where
                else "?"
            )
            crashes.append(Crash("\n".join(lines[start:i]), exception, frame))
            continue
        if UNHANDLED in line and not (i + 1 < len(lines) and TRACEBACK in lines[i + 1]):
            crashes.append(Crash(line, line.strip(), "(no traceback)"))
        i += 1
    return crashes


def _skip_blank(lines: list[str], i: int) -> int:
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i


def _ours(path: str, root: Path) -> bool:
    return path.startswith(str(root)) and "site-packages" not in path and "/.venv/" not in path


def _rel(path: str, root: Path) -> str:
    return path[len(str(root)) + 1 :] if path.startswith(str(root)) else path


class LogTail:
    """The server's log, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def new(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        # Only whole lines: a traceback being written is read on the next call.
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        return data[:cut].decode("utf-8", "replace")


class Fuzzer:
    """Sends generated requests to ``server`` and records what went wrong."""

    def __init__(self, server: Server, seed: int) -> None:
        self.server, self.seed = server, seed
        self.host = f"127.0.0.1:{server.port}"
        self.report = Report(seed)
        self.tail = LogTail(server.log)
        self.clients = {w: Client(server.port, keep_cookies=w != "fresh") for w in IDENTITIES}
        self.values: dict[str, str] = {}
        self.pending = ""  # log text not yet attributed
        self.previous: dict[str, tuple[Spec, Wire, int]] = {}  # the last request per identity
        self.dropped_after: Counter[int] = Counter()  # the status before each dropped connection

    # setup

    def prepare(self) -> None:
        seeded = self.server.seeded
        web, public, admin = (json.loads(seeded[k]) for k in ("client", "public", "admin"))
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        self.values.update(
            host=self.host,
            client_id=web["client_id"],
            client_secret=web["client_secret"],
            public_client_id=public["client_id"],
            admin_client_id=admin["client_id"],
            basic=_basic(web["client_id"], web["client_secret"]),
            admin_basic=_basic(admin["client_id"], admin["client_secret"]),
            verifier=verifier,
            challenge=challenge,
        )
        for who in SIGNED_IN:
            if not self.sign_in(who):
                print(f"note: {who} could not sign in", file=sys.stderr)
        self.refresh_anon()
        self.tokens()

    def check_setup(self, answer: Answer, what: str) -> Answer:
        self.check(None, None, answer, what)
        return answer

    def sign_in(self, who: str) -> bool:
        """Sign ``who`` in through the login pages (enrolling TOTP if asked); True if done."""
        c = self.clients[who]
        c.cookies.clear()
        c.close()
        page = self.check_setup(c.get(f"/t/{TENANT}/login", self.host), "sign-in")
        url = ""
        for _ in range(12):
            if page.status in (302, 303):
                location = urlsplit(header(page, "Location"))
                if not location.path.endswith("/login"):
                    return self.signed_in(c)
                url = location.path + ("?" + location.query if location.query else "")
                c.flow = location.query.rsplit("flow=", 1)[-1]
                page = self.check_setup(c.get(url, self.host), "login page")
                continue
            html = page.body.decode("utf-8", "replace")
            token, step = CSRF.search(html), STEP.search(html)
            if page.status != 200 or not token or not step or not url:
                return False
            c.csrf = token.group(1)
            form = {"csrf_token": c.csrf, "step": step.group(1)}
            form.update(self.answer_step(c, step.group(1), who, html))
            page = self.check_setup(c.post(url, self.host, form), "login answer")
        return False

    def signed_in(self, c: Client) -> bool:
        page = self.check_setup(c.get(f"/t/{TENANT}/account", self.host), "account")
        token = CSRF.search(page.body.decode("utf-8", "replace"))
        c.csrf = token.group(1) if token else ""
        return page.status == 200

    def answer_step(self, c: Client, step: str, who: str, html: str) -> dict[str, str]:
        if step == "identify":
            return {"username": who, "password": PASSWORD, "action": "continue"}
        if step == "password":
            return {"password": PASSWORD, "action": "continue"}
        if step == "offer" and not {**SIGNED_IN, **OTHERS}.get(who, ("", False))[1]:
            return {"action": "skip"}  # stays a user without MFA
        if step in ("offer", "enroll", "choose"):
            return {"factor": "totp"}
        if step == "enroll_totp":
            secret = SECRET.search(html)
            c.totp_secret = secret.group(1) if secret else ""
        if step in ("enroll_totp", "verify_totp") and c.totp_secret:
            now = time.time()
            while int(now) // 30 == c.last_totp_step:  # a code is used once
                time.sleep(0.5)
                now = time.time()
            c.last_totp_step = int(now) // 30
            return {"code": oathtool(c.totp_secret, now), "action": "verify"}
        if step == "backup_codes":
            return {"confirm": "saved", "action": "continue"}
        return {"action": "skip"}

    def refresh_anon(self) -> None:
        c = self.clients["anon"]
        c.cookies.clear()
        start = self.check_setup(c.get(f"/t/{TENANT}/login", self.host), "anon login")
        location = urlsplit(header(start, "Location"))
        if location.query:
            page = self.check_setup(
                c.get(f"{location.path}?{location.query}", self.host), "anon page"
            )
            token = CSRF.search(page.body.decode("utf-8", "replace"))
            c.csrf = token.group(1) if token else ""
            c.flow = location.query.rsplit("flow=", 1)[-1]

    def tokens(self) -> None:
        """An authorization code, tokens from it (alice), and an admin-API token."""
        v, c = self.values, self.clients["alice"]
        query = urlencode(
            {
                "response_type": "code",
                "client_id": v["client_id"],
                "redirect_uri": REDIRECT,
                "scope": "openid profile email offline_access",
                "state": "s",
                "nonce": "n",
                "code_challenge": v["challenge"],
                "code_challenge_method": "S256",
            }
        )
        got = self.check_setup(c.get(f"/t/{TENANT}/authorize?{query}", self.host), "authorize")
        code = re.search(r"[?&]code=([^&]+)", header(got, "Location"))
        v["auth_code"] = code.group(1) if code else "none"
        anon = self.clients["fresh"]
        token_headers = [
            ("Host", self.host),
            ("Authorization", f"Basic {v['basic']}"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ]
        form = urlencode(
            {
                "grant_type": "authorization_code",
                "code": v["auth_code"],
                "redirect_uri": REDIRECT,
                "code_verifier": v["verifier"],
            }
        )
        resp = self.check_setup(
            anon.send(Wire("POST", f"/t/{TENANT}/token", token_headers, form.encode(), "")),
            "token",
        )
        issued = json.loads(resp.body) if resp.status == 200 else {}
        for name in ("access_token", "refresh_token", "id_token"):
            v[name] = str(issued.get(name, "none"))
        token_headers[1] = ("Authorization", f"Basic {v['admin_basic']}")
        form = urlencode({"grant_type": "client_credentials", "scope": "stepwise:admin"})
        resp = self.check_setup(
            anon.send(Wire("POST", f"/t/{TENANT}/token", token_headers, form.encode(), "")),
            "admin token",
        )
        v["admin_token"] = str(json.loads(resp.body).get("access_token", "none"))
        if resp.status != 200 or "none" in (v["access_token"], v["auth_code"]):
            print("note: setup got no tokens; token-bearing requests use 'none'", file=sys.stderr)

    # the loop

    def value(self, name: str, spec: Spec) -> str:
        c = self.clients[spec.who]
        if name == "csrf":
            return c.csrf
        if name == "flow":
            return c.flow
        rid = f"_fuzz{self.seed}x{spec.index}"
        if name == "saml_authn_redirect":
            return deflate_b64(saml_request("AuthnRequest", rid).encode())
        if name == "saml_authn_post":
            return base64.b64encode(saml_request("AuthnRequest", rid).encode()).decode()
        if name == "saml_logout_redirect":
            return deflate_b64(saml_request("LogoutRequest", rid).encode())
        if name == "saml_logout_post":
            return base64.b64encode(saml_request("LogoutRequest", rid).encode()).decode()
        if name == "saml_xxe":
            return deflate_b64(saml_request("AuthnRequest", rid, prefix=XXE).encode())
        if name == "saml_sso":  # a valid request, or one that names its ACS by index
            name = "saml_acs_index" if spec.index % 3 == 0 else "saml_authn_redirect"
            return self.value(name, spec)
        if name == "saml_acs_index":
            index = random.Random(spec.index).choice(["²", "", "x", "-1", "99"])
            xml = saml_request("AuthnRequest", rid, f' AssertionConsumerServiceIndex="{index}"')
            return deflate_b64(xml.replace(f' AssertionConsumerServiceURL="{ACS}"', "").encode())
        return self.values.get(name, "none")

    def render(self, spec: Spec) -> Wire:
        def values(name: str) -> str:
            return self.value(name, spec)

        target = spec.path
        if spec.query:
            target += "?" + urlencode([(k, fill(v, values)) for k, v in spec.query])
        headers = [(k, fill(v, values)) for k, v in spec.headers]
        body = spec.body
        if b"{{" in body and not spec.body_code:
            if spec.content_type == "application/x-www-form-urlencoded":
                # The placeholders were urlencoded with the rest.
                body = PLACEHOLDER.sub(
                    lambda m: quote(values(m.group(1)), safe=""),
                    body.decode("latin-1").replace("%7B%7B", "{{").replace("%7D%7D", "}}"),
                ).encode("latin-1")
            else:
                body = fill(body.decode("latin-1"), lambda n: _latin(values(n))).encode("latin-1")
        return Wire(spec.method, target, headers, body, spec.body_code)

    def run(self, specs: Iterator[Spec], refresh_every: int = 500) -> Report:
        started = time.monotonic()
        for n, spec in enumerate(specs):
            if n and n % refresh_every == 0:
                self.refresh()
            if spec.who == "anon" and n % 200 == 199:
                self.refresh_anon()
            wire = self.render(spec)
            answer = self.clients[spec.who].send(wire)
            self.report.sent += 1
            self.report.rules[spec.rule] += 1
            self.check(spec, wire, answer, spec.rule)
            self.previous[spec.who] = (spec, wire, answer.status)
        time.sleep(0.5)  # a last traceback may still be on its way to the log
        self.attribute(None, None, self.tail.new())
        self.report.seconds = time.monotonic() - started
        for c in self.clients.values():
            c.close()
        return self.report

    def refresh(self) -> None:
        """Sign the identities back in if the fuzzing signed them out."""
        for who in SIGNED_IN:
            c = self.clients[who]
            page = self.check_setup(c.get(f"/t/{TENANT}/account", self.host), "refresh")
            if page.status == 200:
                token = CSRF.search(page.body.decode("utf-8", "replace"))
                c.csrf = token.group(1) if token else c.csrf
            else:
                self.sign_in(who)

    def check(self, spec: Spec | None, wire: Wire | None, answer: Answer, what: str) -> None:
        r = self.report
        if answer.status and spec is not None:
            r.answered += 1
            r.statuses[answer.status] += 1
        # What the server logged while answering: a 5xx with a traceback is that traceback's
        # cause; one without is a cause of its own, per route.
        logged = self.attribute(spec, wire, self.tail.new())
        method = spec.method if spec else "setup"
        if answer.status >= 500:
            r.five_xx += 1
            if not logged:
                body = answer.body[:300].decode("utf-8", "replace")
                r.add(
                    Finding(
                        "5xx",
                        f"5xx {answer.status} {method} {what}",
                        f"{answer.status} from {method} {what}, nothing logged",
                        spec,
                        wire,
                        body,
                    )
                )
        if answer.dropped:
            r.dropped += 1
            before = self.previous.get(spec.who) if spec else None
            spec0, wire0, status0 = before if before else (spec, wire, 0)
            self.dropped_after[status0] += 1
            tally = ", ".join(f"{n} after a {s or '?'}" for s, n in self.dropped_after.items())
            finding = Finding(
                "dropped",
                "dropped",
                "the server closed a keep-alive connection without saying "
                "Connection: close; the next request on it failed "
                f"({answer.error})",
                spec0,
                wire0,
            )
            r.add(finding)
            r.findings["dropped"].detail = (
                f"by the answer before: {tally}\nreproduce: the request below, then any "
                "request on the same connection"
            )
        elif answer.status == 0:
            r.dropped += 1
            r.add(Finding("dropped", "no answer", f"no answer: {answer.error}", spec, wire))

    def attribute(self, spec: Spec | None, wire: Wire | None, text: str) -> list[str]:
        """Count the crashes in ``text`` as ``spec``'s; their finding keys."""
        text = self.pending + text
        self.pending = ""
        if TRACEBACK not in text and UNHANDLED not in text:
            return []
        keys = []
        for crash in scan_log(text):
            if crash.exception == "(cut off)":
                self.pending = text[text.rindex(TRACEBACK) - 200 :]
                continue
            self.report.tracebacks += 1
            key = f"traceback {crash.key}"
            keys.append(key)
            summary = f"{crash.exception} at {crash.frame}"
            self.report.add(Finding("traceback", key, summary, spec, wire, crash.text))
        return keys


def _basic(user: str, secret: str) -> str:
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


def _latin(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


def reproducer(finding: Finding, port: int, seed: int) -> str:
    wire, spec = finding.wire, finding.spec
    if wire is None or spec is None:
        return "  (during setup; see the detail above)"
    body = wire.body_code or repr(wire.body)
    lines = [
        f"  # seed {seed}, request #{spec.index}, sent as {spec.who}"
        + (
            " (its session cookie below is from that run)"
            if spec.who not in ("anon", "fresh")
            else ""
        )
        + f"; replay: bench/fuzz.py --seed {seed} --replay {spec.index}",
        "  import http.client",
        f'  c = http.client.HTTPConnection("127.0.0.1", {port})',
        f"  c.putrequest({wire.method!r}, {wire.target!r}, skip_host=True, "
        "skip_accept_encoding=True)",
    ]
    for name, value in wire.headers:
        lines.append(f"  c.putheader({name!r}, {value!r})")
    lines.append(f"  body = {body}")
    lines.append('  c.putheader("Content-Length", str(len(body)))')
    lines.append("  c.endheaders(body)")
    lines.append("  print(c.getresponse().status)")
    return "\n".join(lines)


def print_report(report: Report, port: int, routes: list[Route], out: Any = sys.stdout) -> None:
    rules = {r.rule for r in routes}
    covered = rules & set(report.rules)
    print(
        f"seed {report.seed}: sent {report.sent} requests in {report.seconds:.1f} s; "
        f"{report.answered} answered; {report.five_xx} x 5xx, {report.tracebacks} logged "
        f"tracebacks, {report.dropped} dropped connections (setup requests included)",
        file=out,
    )
    print(f"routes fuzzed: {len(covered)} of {len(rules)}", file=out)
    missing = sorted(rules - covered)
    if missing:
        print(f"  not reached: {', '.join(missing)}", file=out)
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(report.statuses.items()))
    print(f"statuses: {statuses}", file=out)
    for i, finding in enumerate(report.findings.values(), 1):
        print(f"\n== cause {i} ({finding.count}x, {finding.kind}): {finding.summary}", file=out)
        if finding.detail:
            print("  " + finding.detail.strip().replace("\n", "\n  ")[-3000:], file=out)
        print(reproducer(finding, port, report.seed), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, metavar="N")
    parser.add_argument("--seed", type=int, default=1, metavar="S")
    parser.add_argument("--replay", help="send only these request numbers (comma-separated)")
    parser.add_argument("--keep", type=Path, help="keep the instance and serve.log here")
    args = parser.parse_args(argv)
    with live_server(args.keep) as server:
        fuzzer = Fuzzer(server, args.seed)
        fuzzer.prepare()
        wanted = {int(x) for x in args.replay.split(",")} if args.replay else set()
        count = max(args.requests, max(wanted, default=0) + 1)
        specs = Generator(args.seed, server.routes).specs(count)
        if wanted:
            specs = (s for s in specs if s.index in wanted)
        report = fuzzer.run(specs)
        print_report(report, server.port, server.routes)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
