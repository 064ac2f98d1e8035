"""Real SAML service providers against a live Stepwise: pysaml2 and python3-saml (OneLogin)
send AuthnRequests (HTTP-Redirect and HTTP-POST) and validate our signed Responses with their
own checks; ``xmlsec1`` verifies the signatures independently."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from testkit import servers
from tests import cli_support
from tests.conftest import PASSWORD
from tests.interop.conftest import NODE_DIR
from tests.interop.saml_helpers import confirm_sign_out, saml_login

ACS = "http://127.0.0.1:9/acs"
SLO1, SLO2 = "http://127.0.0.1:9/slo", "http://127.0.0.1:9/slo2"
REDIRECT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
SIGNED_NODE = {
    False: "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
    True: "urn:oasis:names:tc:SAML:2.0:protocol:Response",
}


@dataclass
class Idp:
    base: str
    entity_id: str
    metadata: str
    env: dict[str, str]
    tmp: Path
    node: NodeSp | None = None


NODE_SP = "http://sp.example/node-saml"
ACS3, SLO3 = "http://127.0.0.1:9/acs3", "http://127.0.0.1:9/slo3"


class NodeSp:
    """``saml-sp.mjs``: @node-saml/node-saml answering one JSON command per line."""

    def __init__(self, idp: Idp) -> None:
        node = shutil.which("node")
        assert node and (NODE_DIR / "node_modules" / "@node-saml" / "node-saml").is_dir()
        self.proc = subprocess.Popen(
            [
                node,
                "saml-sp.mjs",
                f"{idp.base}/t/acme/saml/sso",
                NODE_SP,
                ACS3,
                idp_cert(idp),
                f"{idp.base}/t/acme/saml/slo",
                SLO3,
            ],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline() or '{"error": "eof"}')
        return answer

    def close(self) -> None:
        servers.stop(self.proc)


SIGNED_SP = "http://sp.example/signed"


def self_signed(key: Any, common_name: str) -> Any:
    """A self-signed certificate for ``key``, valid from yesterday for 30 days."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def sp_key_pair(tmp: Path) -> tuple[str, str]:
    """A key and self-signed certificate for an SP that signs its requests (PEM files)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key_file, cert_file = tmp / "sp.key", tmp / "sp.crt"
    if not key_file.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = self_signed(key, "test SP")
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_file), str(cert_file)


def pysaml2_config(
    idp: Idp, entity: str = "http://sp.example/pysaml2", unsolicited: bool = False
) -> Any:
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.config import SPConfig

    signs = entity == SIGNED_SP
    settings: dict[str, Any] = {
        "entityid": entity,
        "service": {
            "sp": {
                "endpoints": {
                    "assertion_consumer_service": [(ACS, BINDING_HTTP_POST)],
                    "single_logout_service": [(SLO1, BINDING_HTTP_REDIRECT)],
                },
                "want_assertions_signed": True,
                "want_response_signed": False,
                "authn_requests_signed": signs,
                "allow_unsolicited": unsolicited,
                "name_id_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            }
        },
        "metadata": {"inline": [idp.metadata]},
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "accepted_time_diff": 60,
    }
    if signs:
        settings["key_file"], settings["cert_file"] = sp_key_pair(idp.tmp)
    conf = SPConfig()
    conf.load(settings)
    return conf


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    tmp = tmp_path_factory.mktemp("saml")
    env = servers.idp_env(tmp / "instance")
    cli_support.seed(env, "acme", "alice", PASSWORD)
    with servers.live_idp(env) as base:
        env = {**env, "IDP_BASE_URL": base}
        meta = requests.get(f"{base}/t/acme/saml/metadata", timeout=10)
        assert meta.status_code == 200
        found = Idp(base, f"{base}/t/acme/saml/metadata", meta.text, env, tmp)
        from saml2.metadata import create_metadata_string

        sp_meta = tmp / "pysaml2.xml"
        sp_meta.write_bytes(create_metadata_string(None, config=pysaml2_config(found)))
        added = cli_support.idp(env, "sp", "add", "acme", "--metadata", str(sp_meta))
        assert added.returncode == 0, added.stderr
        signed_meta = tmp / "signed.xml"
        signed_meta.write_bytes(
            create_metadata_string(None, config=pysaml2_config(found, SIGNED_SP))
        )
        added = cli_support.idp(env, "sp", "add", "acme", "--metadata", str(signed_meta))
        assert added.returncode == 0, added.stderr
        ol_meta = tmp / "onelogin.xml"
        ol_meta.write_text(onelogin_metadata(found))
        added = cli_support.idp(
            env, "sp", "add", "acme", "--metadata", str(ol_meta), "--sign-response"
        )
        assert added.returncode == 0, added.stderr
        enc_meta = tmp / "encrypted.xml"
        enc_meta.write_text(onelogin_metadata(found, encrypted=True))
        added = cli_support.idp(
            env, "sp", "add", "acme", "--metadata", str(enc_meta), "--encrypt", "--sign-response"
        )
        assert added.returncode == 0, added.stderr
        for name in ("bob", "carol", "dana"):
            cli_support.add_user(env, "acme", name, PASSWORD)
        node = NodeSp(found)
        node_meta = tmp / "node.xml"
        node_meta.write_text(node.ask(cmd="metadata")["xml"])
        added = cli_support.idp(
            env, "sp", "add", "acme", "--metadata", str(node_meta), "--sign-response"
        )
        assert added.returncode == 0, added.stderr
        found.node = node
        try:
            yield found
        finally:
            node.close()


def post_form(html: str) -> dict[str, str]:
    """The hidden fields of pysaml2's HTTP-POST binding page."""
    return {k: unescape(v) for k, v in re.findall(r'name="(\w+)" value="([^"]*)"', html)}


def xmlsec_verifies(idp: Idp, xml: bytes, response: bool = False, node: str = "") -> bool:
    """The Assertion's signature (or the Response's), checked by the xmlsec1 command with the
    certificate from our metadata."""
    from lxml import etree

    cert = (
        etree.fromstring(idp.metadata.encode())
        .find(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate")
        .text
    )
    pem = idp.tmp / "idp.pem"
    body = "\n".join(textwrap.wrap("".join(cert.split()), 64))
    pem.write_text("-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----\n")
    doc = idp.tmp / "response.xml"
    doc.write_bytes(xml)
    result = subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--pubkey-cert-pem",
            str(pem),
            "--id-attr:ID",
            f"urn:oasis:names:tc:SAML:2.0:protocol:{node}" if node else SIGNED_NODE[response],
            str(doc),
        ],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_pysaml2_sp_accepts_our_signed_assertion(idp: Idp, binding: str) -> None:
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client

    client = Saml2Client(config=pysaml2_config(idp))
    browser = requests.Session()
    if binding == "redirect":
        req_id, info = client.prepare_for_authenticate(
            entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT, relay_state="rs-1"
        )
        location = dict(info["headers"])["Location"]
        acs, fields = saml_login(browser, location)
    else:
        req_id, info = client.prepare_for_authenticate(
            entityid=idp.entity_id, binding=BINDING_HTTP_POST, relay_state="rs-1"
        )
        form = post_form(info["data"])
        acs, fields = saml_login(browser, f"{idp.base}/t/acme/saml/sso", data=form)
    assert acs == ACS and fields["RelayState"] == "rs-1"
    xml = base64.b64decode(fields["SAMLResponse"])
    assert xmlsec_verifies(idp, xml)
    assert not xmlsec_verifies(idp, xml.replace(b">alice<", b">mallory<"))  # the check bites
    parsed = client.parse_authn_request_response(
        fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={req_id: "/"}
    )
    assert parsed is not None and parsed.in_response_to == req_id
    identity = parsed.get_identity()
    assert identity["uid"] == ["alice"] and identity["mail"] == ["alice@acme.test"]
    ((context, _authorities, _instant),) = [tuple(a[:3]) for a in parsed.authn_info()]
    assert context == "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    assert parsed.name_id.format.endswith(":persistent") and len(parsed.name_id.text) > 20
    assert urlsplit(acs).path == "/acs"


ACS2 = "http://127.0.0.1:9/acs2"
ENCRYPTED_SP = "http://sp.example/encrypted"
REFEDS_MFA = "https://refeds.org/profile/mfa"


def idp_cert(idp: Idp) -> str:
    from lxml import etree

    found = etree.fromstring(idp.metadata.encode()).find(
        ".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate"
    )
    assert found is not None and found.text
    return "".join(found.text.split())


def onelogin_settings(
    idp: Idp, contexts: list[str] | None = None, encrypted: bool = False
) -> dict[str, Any]:
    keys: dict[str, str] = {}
    if encrypted:
        key_file, cert_file = sp_key_pair(idp.tmp)
        keys = {"x509cert": Path(cert_file).read_text(), "privateKey": Path(key_file).read_text()}
    return {
        "strict": True,
        "sp": {
            **keys,
            "entityId": ENCRYPTED_SP if encrypted else "http://sp.example/onelogin",
            "assertionConsumerService": {
                "url": ACS2,
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
            },
            "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            "singleLogoutService": {"url": SLO2, "binding": REDIRECT_BINDING},
        },
        "idp": {
            "entityId": idp.entity_id,
            "singleSignOnService": {
                "url": f"{idp.base}/t/acme/saml/sso",
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
            },
            "singleLogoutService": {
                "url": f"{idp.base}/t/acme/saml/slo",
                "binding": REDIRECT_BINDING,
            },
            "x509cert": idp_cert(idp),
        },
        "security": {
            "wantAssertionsSigned": True,
            "wantMessagesSigned": True,
            "requestedAuthnContext": contexts or False,
            "requestedAuthnContextComparison": "exact",
            "wantAssertionsEncrypted": encrypted,
        },
    }


def onelogin_metadata(idp: Idp, encrypted: bool = False) -> str:
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

    meta: str | bytes = OneLogin_Saml2_Settings(
        onelogin_settings(idp, encrypted=encrypted), sp_validation_only=True
    ).get_sp_metadata()
    return meta.decode() if isinstance(meta, bytes) else meta


def onelogin_request(post: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "https": "off",
        "http_host": "127.0.0.1:9",
        "script_name": "/acs2",
        "get_data": {},
        "post_data": post or {},
    }


def test_python3_saml_sp_accepts_signed_response_and_steps_up_to_refeds_mfa(idp: Idp) -> None:
    from onelogin.saml2.auth import OneLogin_Saml2_Auth

    from testkit.signin import TotpUser

    browser, totp = requests.Session(), TotpUser()
    plain = OneLogin_Saml2_Auth(onelogin_request(), onelogin_settings(idp))
    _, fields = saml_login(browser, plain.login(return_to="rs-2"), "bob")
    sp = OneLogin_Saml2_Auth(onelogin_request(fields), onelogin_settings(idp))
    sp.process_response(request_id=plain.get_last_request_id())
    assert sp.get_errors() == [], sp.get_last_error_reason()
    assert sp.get_attributes()["urn:oid:0.9.2342.19200300.100.1.1"] == ["bob"]
    assert sp.get_last_authn_contexts() == [
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    ]

    # REFEDS MFA in the same browser: only the missing second factor runs (here its
    # enrolment, bob has none), never the password again.
    strong = OneLogin_Saml2_Auth(onelogin_request(), onelogin_settings(idp, [REFEDS_MFA]))
    seen: list[str] = []
    _, fields = saml_login(browser, strong.login(), "bob", totp=totp, seen=seen)
    assert seen == ["enroll", "enroll_totp", "backup_codes"]
    sp = OneLogin_Saml2_Auth(onelogin_request(fields), onelogin_settings(idp, [REFEDS_MFA]))
    sp.process_response(request_id=strong.get_last_request_id())
    assert sp.get_errors() == [], sp.get_last_error_reason()
    assert sp.get_last_authn_contexts() == [REFEDS_MFA]


def status_of(fields: dict[str, str]) -> list[str]:
    from lxml import etree

    root = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    codes = root.findall(".//{urn:oasis:names:tc:SAML:2.0:protocol}StatusCode")
    assert root.find(".//{urn:oasis:names:tc:SAML:2.0:assertion}Assertion") is None
    return [c.get("Value", "").rsplit(":", 1)[1] for c in codes]


def test_unmet_context_and_passive_requests_get_statuses_never_assertions(idp: Idp) -> None:
    from onelogin.saml2.auth import OneLogin_Saml2_Auth

    unknown = OneLogin_Saml2_Auth(
        onelogin_request(), onelogin_settings(idp, ["urn:example:unknown"])
    )
    _, fields = saml_login(requests.Session(), unknown.login())
    assert status_of(fields) == ["Responder", "NoAuthnContext"]
    assert xmlsec_verifies(idp, base64.b64decode(fields["SAMLResponse"]), response=True)
    passive = OneLogin_Saml2_Auth(onelogin_request(), onelogin_settings(idp))
    _, fields = saml_login(requests.Session(), passive.login(is_passive=True))
    assert status_of(fields) == ["Responder", "NoPassive"]


def test_signed_requests_are_verified_and_tampering_or_wrapping_refused(idp: Idp) -> None:

    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    client = Saml2Client(config=pysaml2_config(idp, SIGNED_SP))

    def redirect_url() -> str:
        _, info = client.prepare_for_authenticate(
            entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT, sign=True, sigalg=SIG_RSA_SHA256
        )
        return str(dict(info["headers"])["Location"])

    # HTTP-Redirect with a detached signature: accepted.
    _, fields = saml_login(requests.Session(), redirect_url())
    assert b"status:Success" in base64.b64decode(fields["SAMLResponse"])
    # Another request with its signature changed: RequestDenied, no assertion.
    head, _, sig = redirect_url().partition("Signature=")
    tampered = head + "Signature=" + ("A" if sig[0] != "A" else "B") + sig[1:]
    _, fields = saml_login(requests.Session(), tampered)
    assert status_of(fields) == ["Requester", "RequestDenied"]
    # Unsigned, from an SP whose metadata says it signs: refused too.
    _, fields = saml_login(requests.Session(), redirect_url().split("&SigAlg=")[0])
    assert status_of(fields) == ["Requester", "RequestDenied"]

    # HTTP-POST with an enveloped signature: accepted; a wrapped copy whose root is
    # unsigned (the signed request hidden in Extensions) is refused.
    _, info = client.prepare_for_authenticate(
        entityid=idp.entity_id,
        binding=BINDING_HTTP_POST,
        sign=True,
        sigalg=SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA256,  # a SHA-1 digest would be refused (and rightly so)
    )
    form = post_form(info["data"])
    sso = f"{idp.base}/t/acme/saml/sso"
    signed_xml = base64.b64decode(form["SAMLRequest"])
    _, fields = saml_login(requests.Session(), sso, data=form)
    assert b"status:Success" in base64.b64decode(fields["SAMLResponse"])
    inner = signed_xml.split(b"?>", 1)[-1]
    instant = re.search(rb'IssueInstant="([^"]+)"', inner)
    assert instant
    wrapped = (
        b'<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        b'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_evil" Version="2.0" '
        b'IssueInstant="'
        + instant.group(1)
        + b'"><saml:Issuer>'
        + SIGNED_SP.encode()
        + b"</saml:Issuer><samlp:Extensions>"
        + inner
        + b"</samlp:Extensions>"
        b"</samlp:AuthnRequest>"
    )
    evil = {"SAMLRequest": base64.b64encode(wrapped).decode()}
    _, fields = saml_login(requests.Session(), sso, data=evil)
    assert status_of(fields) == ["Requester", "RequestDenied"]


def test_node_saml_sp_accepts_a_signed_response_and_assertion(idp: Idp) -> None:
    assert idp.node is not None
    url = idp.node.ask(cmd="login", relay="rs-3")["url"]
    acs, fields = saml_login(requests.Session(), url)
    assert acs == ACS3 and fields["RelayState"] == "rs-3"
    assert xmlsec_verifies(idp, base64.b64decode(fields["SAMLResponse"]), response=True)
    result = idp.node.ask(cmd="validate", SAMLResponse=fields["SAMLResponse"])
    assert "error" not in result, result
    profile = result["profile"]
    assert profile["issuer"] == idp.entity_id
    assert profile["urn:oid:0.9.2342.19200300.100.1.1"] == "alice"
    assert profile["nameIDFormat"].endswith(":persistent")
    # The same response again: node-saml's InResponseTo check refuses a replay.
    again = idp.node.ask(cmd="validate", SAMLResponse=fields["SAMLResponse"])
    assert "error" in again


def test_idp_initiated_sso_from_the_account_page(idp: Idp) -> None:
    from saml2 import BINDING_HTTP_POST
    from saml2.client import Saml2Client

    browser = requests.Session()
    start = f"{idp.base}/t/acme/saml/idp-init?sp=http://sp.example/pysaml2&RelayState=home"
    acs, fields = saml_login(browser, start)
    assert acs == ACS and fields["RelayState"] == "home"
    xml = base64.b64decode(fields["SAMLResponse"])
    assert b"InResponseTo" not in xml and xmlsec_verifies(idp, xml)
    client = Saml2Client(config=pysaml2_config(idp, unsolicited=True))
    parsed = client.parse_authn_request_response(fields["SAMLResponse"], BINDING_HTTP_POST)
    assert parsed is not None and parsed.get_identity()["uid"] == ["alice"]
    page = browser.get(f"{idp.base}/t/acme/account", timeout=10).text
    assert "idp-init?sp=http" in page  # the user's application list links to it
    assert saml_login(browser, start)[0] == ACS  # signed in already: straight to the SP


def query(url: str) -> dict[str, str]:
    from urllib.parse import parse_qs

    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_single_logout_started_by_one_sp_reaches_the_other_and_ends_the_session(
    idp: Idp,
) -> None:
    from onelogin.saml2.auth import OneLogin_Saml2_Auth
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client

    browser = requests.Session()
    # Signed in to pysaml2's SP and to python3-saml's, in one browser session.
    sp_a = Saml2Client(config=pysaml2_config(idp))
    req_id, info = sp_a.prepare_for_authenticate(
        entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT
    )
    _, fields = saml_login(browser, dict(info["headers"])["Location"], "bob")
    assert (
        sp_a.parse_authn_request_response(
            fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={req_id: "/"}
        )
        is not None
    )
    start = OneLogin_Saml2_Auth(onelogin_request(), onelogin_settings(idp))
    _, fields = saml_login(browser, start.login(), "bob")
    sp_b = OneLogin_Saml2_Auth(onelogin_request(fields), onelogin_settings(idp))
    sp_b.process_response(request_id=start.get_last_request_id())
    assert sp_b.get_errors() == []

    # python3-saml starts the logout, unsigned (its metadata has no certificate): the user
    # confirms; then Stepwise asks pysaml2's SP first (front channel).
    logout_url = sp_b.logout(
        name_id=sp_b.get_nameid(),
        session_index=sp_b.get_session_index(),
        name_id_format=sp_b.get_nameid_format(),
        spnq=sp_b.get_nameid_spnq(),
        return_to="bye",
    )
    asked = browser.get(logout_url, allow_redirects=False, timeout=10)
    to_a = confirm_sign_out(browser, logout_url, asked)
    assert to_a.status_code == 302 and to_a.headers["Location"].startswith(SLO1 + "?")
    params = query(to_a.headers["Location"])
    parsed = sp_a.parse_logout_request(
        params["SAMLRequest"],
        BINDING_HTTP_REDIRECT,
        sigalg=params["SigAlg"],
        signature=params["Signature"],
    )
    assert parsed.message.issuer.text == idp.entity_id
    answer = sp_a.create_logout_response(parsed.message, [BINDING_HTTP_REDIRECT])
    back = sp_a.apply_binding(
        BINDING_HTTP_REDIRECT, str(answer), destination=f"{idp.base}/t/acme/saml/slo", response=True
    )
    to_b = browser.get(dict(back["headers"])["Location"], allow_redirects=False, timeout=10)

    # ... then answers python3-saml, which validates the signed LogoutResponse.
    assert to_b.status_code == 302 and to_b.headers["Location"].startswith(SLO2 + "?")
    params = query(to_b.headers["Location"])
    assert params["RelayState"] == "bye"
    done = OneLogin_Saml2_Auth(
        {**onelogin_request(), "script_name": "/slo2", "get_data": params}, onelogin_settings(idp)
    )
    done.process_slo(keep_local_session=True, request_id=sp_b.get_last_request_id())
    assert done.get_errors() == [], done.get_last_error_reason()
    # Stepwise's own session is over.
    account = browser.get(f"{idp.base}/t/acme/account", allow_redirects=False, timeout=10)
    assert account.status_code == 302 and "/login" in account.headers["Location"]


def test_python3_saml_decrypts_an_encrypted_assertion(idp: Idp) -> None:
    from onelogin.saml2.auth import OneLogin_Saml2_Auth

    settings = onelogin_settings(idp, encrypted=True)
    start = OneLogin_Saml2_Auth(onelogin_request(), settings)
    _, fields = saml_login(requests.Session(), start.login())
    xml = base64.b64decode(fields["SAMLResponse"])
    assert b"EncryptedAssertion" in xml and b"aes256-gcm" in xml and b">alice<" not in xml
    sp = OneLogin_Saml2_Auth(onelogin_request(fields), settings)
    sp.process_response(request_id=start.get_last_request_id())
    assert sp.get_errors() == [], sp.get_last_error_reason()
    assert sp.get_attributes()["urn:oid:0.9.2342.19200300.100.1.1"] == ["alice"]


def test_node_saml_post_binding_step_up_and_single_logout(idp: Idp) -> None:
    from testkit.signin import TotpUser

    assert idp.node is not None
    browser = requests.Session()
    form = idp.node.ask(cmd="login", binding="post", relay="rs-4")["form"]
    _, fields = saml_login(browser, f"{idp.base}/t/acme/saml/sso", "carol", data=post_form(form))
    first = idp.node.ask(cmd="validate", SAMLResponse=fields["SAMLResponse"])
    assert "error" not in first, first
    assert "PasswordProtectedTransport" in first["xml"]

    # Step-up to REFEDS MFA: only the second factor runs (carol enrols one now).
    seen: list[str] = []
    url = idp.node.ask(cmd="login", options={"authnContext": [REFEDS_MFA]})["url"]
    _, fields = saml_login(browser, url, "carol", totp=TotpUser(), seen=seen)
    assert seen == ["enroll", "enroll_totp", "backup_codes"]
    stepped = idp.node.ask(
        cmd="validate", SAMLResponse=fields["SAMLResponse"], options={"authnContext": [REFEDS_MFA]}
    )
    assert "error" not in stepped, stepped
    assert REFEDS_MFA in stepped["xml"]

    # Single Logout started by node-saml; its SLO endpoint is HTTP-POST, so Stepwise answers
    # with a signed LogoutResponse in an auto-submitting form, which node-saml checks.
    logout_url = idp.node.ask(cmd="logout", profile=stepped["profile"])["url"]
    asked = browser.get(logout_url, allow_redirects=False, timeout=10)
    back = confirm_sign_out(browser, logout_url, asked)  # unsigned: the user confirms
    assert back.status_code == 200 and f'action="{SLO3}"' in back.text
    answer = post_form(back.text)
    assert answer["RelayState"] == "bye-3"
    assert xmlsec_verifies(idp, base64.b64decode(answer["SAMLResponse"]), node="LogoutResponse")
    # (node-saml's POST path looks for InResponseTo on samlp:Response only, so its
    # InResponseTo check is off for this one message; signature and status are checked.)
    done = idp.node.ask(
        cmd="logged_out",
        SAMLResponse=answer["SAMLResponse"],
        options={"validateInResponseTo": "never"},
    )
    assert done == {"loggedOut": True}
    account = browser.get(f"{idp.base}/t/acme/account", allow_redirects=False, timeout=10)
    assert account.status_code == 302


def test_pysaml2_steps_up_to_refeds_mfa_and_starts_single_logout(idp: Idp) -> None:
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.saml import AuthnContextClassRef
    from saml2.samlp import RequestedAuthnContext

    from testkit.signin import TotpUser

    client = Saml2Client(config=pysaml2_config(idp))
    browser, totp = requests.Session(), TotpUser()
    req_id, info = client.prepare_for_authenticate(
        entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT
    )
    _, fields = saml_login(browser, dict(info["headers"])["Location"], "dana")
    client.parse_authn_request_response(
        fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={req_id: "/"}
    )
    mfa = RequestedAuthnContext(
        authn_context_class_ref=[AuthnContextClassRef(text=REFEDS_MFA)], comparison="minimum"
    )
    req_id, info = client.prepare_for_authenticate(
        entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT, requested_authn_context=mfa
    )
    seen: list[str] = []
    _, fields = saml_login(browser, dict(info["headers"])["Location"], "dana", totp=totp, seen=seen)
    assert seen == ["enroll", "enroll_totp", "backup_codes"]
    stepped = client.parse_authn_request_response(
        fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={req_id: "/"}
    )
    assert stepped is not None and stepped.authn_info()[0][0] == REFEDS_MFA

    # pysaml2 starts Single Logout (unsigned: the user confirms); Stepwise ends the session
    # and answers it.
    ((_, (binding, http_args)),) = client.global_logout(stepped.name_id).items()
    assert binding == BINDING_HTTP_REDIRECT
    logout_url = dict(http_args["headers"])["Location"]
    asked = browser.get(logout_url, allow_redirects=False, timeout=10)
    back = confirm_sign_out(browser, logout_url, asked)
    assert back.status_code == 302 and back.headers["Location"].startswith(SLO1 + "?")
    params = query(back.headers["Location"])
    answer = client.parse_logout_request_response(params["SAMLResponse"], BINDING_HTTP_REDIRECT)
    assert answer is not None and answer.status_ok()
    account = browser.get(f"{idp.base}/t/acme/account", allow_redirects=False, timeout=10)
    assert account.status_code == 302
