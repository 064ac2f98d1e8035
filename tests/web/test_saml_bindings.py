"""The HTTP-Redirect binding's query is read once: the signature covers exactly the message
that is processed, and a parameter sent twice (however its name is encoded) is refused.
LogoutRequests must be signed by SPs that have signing certificates; an unsigned one from
another SP asks the user before the session ends (SAML bindings 3.4.4.1, profiles 4.4)."""

from __future__ import annotations

import base64
import re
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from idp.saml import logout as saml_logout
from idp.saml import sps
from testkit.html import csrf_of
from tests.conftest import svc
from tests.interop.test_saml_sps import sp_key_pair
from tests.web.test_saml_attacks import (
    METADATA,
    SP,
    add_sp_with_slo,
    authn_request,
    get_sso,
    redirect_value,
    sign_in_at,
)

SIGNED_SP = "https://signed.example/saml"
SSO = "http://localhost/t/acme/saml/sso"
SLO = "http://localhost/t/acme/saml/slo"


@pytest.fixture
def sp_key(app: Flask, tenant: str, tmp_path: Path) -> bytes:
    """Registers SIGNED_SP (a signing certificate, AuthnRequestsSigned, an HTTP-Redirect SLO
    endpoint); returns its private key (PEM)."""
    key_file, cert_file = sp_key_pair(tmp_path)
    body = "".join(Path(cert_file).read_text().splitlines()[1:-1])
    metadata = (
        METADATA.replace(SP, SIGNED_SP)
        .replace("https://sp.example/", "https://signed.example/")
        .replace(
            "<md:AssertionConsumerService",
            '<md:KeyDescriptor use="signing"><ds:KeyInfo '
            'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>'
            f"{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"'
            ' Location="https://signed.example/slo"/><md:AssertionConsumerService',
        )
    )
    with svc(app).db.session() as s:
        sps.add_sp(s, directory.require_tenant(s, "acme"), metadata.encode())
    return Path(key_file).read_bytes()


def signed_query(key_pem: bytes, xml: str, relay: str | None = None) -> str:
    """An HTTP-Redirect query for ``xml`` signed by the SP, as SPs send it (bindings 3.4.4.1)."""
    url = saml_logout.redirect_url("x", "SAMLRequest", xml.encode(), relay, key_pem)
    return url.split("?", 1)[1]


def signed_authn(key_pem: bytes, req_id: str, relay: str | None = None) -> str:
    xml = authn_request(req_id, acs="https://signed.example/acs").replace(SP, SIGNED_SP)
    return signed_query(key_pem, xml, relay)


def sent_to_acs(page: str) -> bytes:
    """The SAMLResponse XML of an auto-submitting form."""
    return base64.b64decode(page.split('name="SAMLResponse" value="')[1].split('"')[0])


def sign_in_with_signed_sp(client: FlaskClient, key_pem: bytes, req_id: str = "_in") -> None:
    """Alice signs in through SIGNED_SP (so it holds an assertion in her session)."""
    started = client.get("/t/acme/saml/sso?" + signed_authn(key_pem, req_id))
    done = sign_in_at(client, started)
    assert b"status:Success" in sent_to_acs(client.get(done.headers["Location"]).text)


# --- finding 6: one parse of the query; signed bytes == processed message ----------------


@pytest.mark.parametrize(
    "shape",
    [
        "SAML%52equest={forged}&{signed}",  # the exploit: verified one, processed the other
        "{signed}&SAML%52equest={forged}",
        "SAMLRequest={forged}&{signed}",
        "{signed}&RelayState=evil",
        "{signed}&Sig%41lg=x",
    ],
)
def test_a_parameter_sent_twice_is_refused_never_verified_one_way_and_read_another(
    client: FlaskClient, sp_key: bytes, shape: str
) -> None:
    sign_in_with_signed_sp(client, sp_key)
    forged_xml = authn_request("_forged", acs="https://signed.example/acs").replace(SP, SIGNED_SP)
    forged = quote_plus(redirect_value(forged_xml))
    query = shape.format(forged=forged, signed=signed_authn(sp_key, "_signed", relay="r"))
    resp = client.get("/t/acme/saml/sso?" + query)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "more than once" in page, (resp.status_code, page[-400:])
    assert "SAMLResponse" not in page


def test_an_encoded_parameter_name_is_the_parameter_it_decodes_to(
    client: FlaskClient, sp_key: bytes
) -> None:
    """``SAML%52equest`` is SAMLRequest: read, and checked by the signature, as such."""
    sign_in_with_signed_sp(client, sp_key)
    query = signed_authn(sp_key, "_enc").replace("SAMLRequest=", "SAML%52equest=", 1)
    answer = client.get("/t/acme/saml/sso?" + query)
    xml = sent_to_acs(answer.get_data(as_text=True))
    assert b"status:Success" in xml and b'InResponseTo="_enc"' in xml
    # ... and a changed message under that name does not verify.
    other = signed_authn(sp_key, "_enc2").split("&", 1)[1]
    forged = quote_plus(
        redirect_value(authn_request("_x", acs="https://signed.example/acs").replace(SP, SIGNED_SP))
    )
    refused = client.get(f"/t/acme/saml/sso?SAML%52equest={forged}&{other}")
    xml = sent_to_acs(refused.get_data(as_text=True))
    assert b"RequestDenied" in xml and b"Assertion" not in xml


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SAMLRequest=a&SAMLResponse=b", "both a SAMLRequest and a SAMLResponse"),
        ("SAML%FFRequest=a", "not UTF-8"),
        ("SAMLRequest=%FF", "not UTF-8"),
    ],
)
def test_malformed_queries_get_an_error_page(
    client: FlaskClient, tenant: str, query: str, message: str
) -> None:
    for path in ("sso", "slo"):
        resp = client.get(f"/t/acme/saml/{path}?{query}")
        assert resp.status_code == 400 and message in resp.get_data(as_text=True)


def test_a_post_carrying_a_saml_parameter_twice_is_refused(
    client: FlaskClient, tenant: str
) -> None:
    xml = base64.b64encode(authn_request("_p").encode()).decode()
    body = f"SAMLRequest={quote_plus(xml)}&SAML%52equest={quote_plus(xml)}"
    resp = client.post(
        "/t/acme/saml/sso", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert resp.status_code == 400 and "more than once" in resp.get_data(as_text=True)


# --- LogoutRequests ----------------------------------------------------------------------


IDP_SLO = "http://127.0.0.1:8000/t/acme/saml/slo"  # the test app's base URL


def logout_xml(issuer: str, req_id: str = "_lo", destination: str | None = IDP_SLO) -> str:
    xml = authn_request(req_id, acs=None).replace("AuthnRequest", "LogoutRequest")
    if destination is not None:
        xml = xml.replace('Version="2.0"', f'Version="2.0" Destination="{destination}"', 1)
    return xml.replace(SP, issuer)


def logout_answer(resp: Any) -> saml_logout.LogoutResponse:
    """The LogoutResponse a redirect carries to the SP's SingleLogoutService."""
    assert resp.status_code == 302, resp.status_code
    sent = parse_qs(urlsplit(resp.headers["Location"]).query)["SAMLResponse"][0]
    return saml_logout.parse_response(zlib.decompress(base64.b64decode(sent), -15))


def signed_in(client: FlaskClient) -> bool:
    return client.get("/t/acme/account").status_code == 200


def test_an_unsigned_logout_request_from_an_sp_with_a_certificate_is_refused(
    client: FlaskClient, sp_key: bytes, tmp_path: Path
) -> None:
    sign_in_with_signed_sp(client, sp_key)
    unsigned = redirect_value(logout_xml(SIGNED_SP))
    answer = client.get("/t/acme/saml/slo", query_string={"SAMLRequest": unsigned})
    reply = logout_answer(answer)
    assert reply.in_response_to == "_lo" and not reply.success
    assert answer.headers["Location"].startswith("https://signed.example/slo?")
    # Over HTTP-POST too, and signed by another key.
    posted = client.post(
        "/t/acme/saml/slo",
        data={"SAMLRequest": base64.b64encode(logout_xml(SIGNED_SP, "_lp").encode())},
    )
    assert not logout_answer(client.get(posted.headers["Location"])).success
    (tmp_path / "other").mkdir()
    other_key, _ = sp_key_pair(tmp_path / "other")
    query = signed_query(Path(other_key).read_bytes(), logout_xml(SIGNED_SP, "_lk"))
    assert not logout_answer(client.get("/t/acme/saml/slo?" + query)).success
    assert signed_in(client)


def test_a_signed_logout_request_ends_the_session_at_once(
    client: FlaskClient, sp_key: bytes
) -> None:
    sign_in_with_signed_sp(client, sp_key)
    query = signed_query(sp_key, logout_xml(SIGNED_SP), relay="bye")
    reply = logout_answer(client.get("/t/acme/saml/slo?" + query))
    assert reply.in_response_to == "_lo" and reply.success
    assert not signed_in(client)


def test_a_signed_post_logout_request_is_read_from_the_signed_element(
    client: FlaskClient, sp_key: bytes, tmp_path: Path
) -> None:
    sign_in_with_signed_sp(client, sp_key)
    _, cert_file = sp_key_pair(tmp_path)
    signed = saml_logout.signed(
        logout_xml(SIGNED_SP, "_ps").encode(), sp_key, Path(cert_file).read_text()
    )
    # Changed after signing: refused, still signed in.
    tampered = signed.replace(b'ID="_ps"', b'ID="_pt"', 1)
    for body, ok in ((tampered, False), (signed, True)):
        posted = client.post("/t/acme/saml/slo", data={"SAMLRequest": base64.b64encode(body)})
        reply = logout_answer(client.get(posted.headers["Location"]))
        assert reply.success is ok and signed_in(client) is not ok


def unsigned_logout(client: FlaskClient) -> Any:
    """Alice signs in through the test SP (no certificate), which then asks, unsigned, to
    sign her out."""
    add_sp_with_slo(client.application)
    done = sign_in_at(client, get_sso(client, authn_request("_s1")))
    assert "SAMLResponse" in client.get(done.headers["Location"]).get_data(as_text=True)
    return client.get(
        "/t/acme/saml/slo",
        query_string={"SAMLRequest": redirect_value(logout_xml(SP)), "RelayState": "rs"},
    )


def test_an_unsigned_logout_request_asks_the_user_before_the_session_ends(
    client: FlaskClient, tenant: str
) -> None:
    page = unsigned_logout(client)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "asks to sign you out" in html
    assert '<form method="post"' in html and "Stay signed in" in html
    # The form may lead on to the SP's SingleLogoutService (CSP form-action, redirects).
    assert "form-action 'self' https://sp.example" in page.headers["Content-Security-Policy"]
    assert signed_in(client)
    action = html.split('action="')[1].split('"')[0].replace("&amp;", "&")
    forged = client.post(action, data={"action": "logout"})  # no CSRF token: refused
    assert forged.status_code == 400 and signed_in(client)
    done = client.post(action, data={"csrf_token": csrf_of(html), "action": "logout"})
    reply = logout_answer(done)
    assert reply.in_response_to == "_lo" and reply.success
    assert parse_qs(urlsplit(done.headers["Location"]).query)["RelayState"] == ["rs"]
    assert not signed_in(client)
    # The confirmation is used once.
    again = client.post(action, data={"csrf_token": csrf_of(html), "action": "logout"})
    assert again.status_code >= 400


def test_staying_signed_in_answers_the_sp_and_ends_nothing(
    client: FlaskClient, tenant: str
) -> None:
    html = unsigned_logout(client).get_data(as_text=True)
    action = html.split('action="')[1].split('"')[0].replace("&amp;", "&")
    stay = client.post(action, data={"csrf_token": csrf_of(html), "action": "stay"})
    reply = logout_answer(stay)
    assert reply.in_response_to == "_lo" and not reply.success
    assert signed_in(client)


# --- a real SP library signing its queries: pysaml2 --------------------------------------


def pysaml2_sp(app: Flask, client: FlaskClient, tmp_path: Path) -> Any:
    """pysaml2's signing SP (tests.interop), registered here from its own metadata."""
    from saml2.client import Saml2Client
    from saml2.metadata import create_metadata_string

    from tests.interop.test_saml_sps import SIGNED_SP as PYSAML2_SP
    from tests.interop.test_saml_sps import Idp, pysaml2_config

    meta = client.get("/t/acme/saml/metadata").get_data(as_text=True)
    base = svc(app).settings.base_url
    found = Idp(base, f"{base}/t/acme/saml/metadata", meta, {}, tmp_path)
    config = pysaml2_config(found, PYSAML2_SP)
    with svc(app).db.session() as s:
        sps.add_sp(
            s, directory.require_tenant(s, "acme"), create_metadata_string(None, config=config)
        )
    return Saml2Client(config=pysaml2_config(found, PYSAML2_SP))


def local(app: Flask, url: str) -> str:
    """The path and query of one of our URLs, for the test client."""
    base = svc(app).settings.base_url
    assert url.startswith(base + "/"), url
    return url.removeprefix(base)


def test_pysaml2_signed_redirect_requests_are_accepted_and_end_the_session_at_once(
    app: Flask, client: FlaskClient, tenant: str, tmp_path: Path
) -> None:
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.xmldsig import SIG_RSA_SHA256

    sp = pysaml2_sp(app, client, tmp_path)
    req_id, info = sp.prepare_for_authenticate(
        entityid=f"{svc(app).settings.base_url}/t/acme/saml/metadata",
        binding=BINDING_HTTP_REDIRECT,
        relay_state="rs-5",
        sign=True,
        sigalg=SIG_RSA_SHA256,
    )
    url = local(app, dict(info["headers"])["Location"])
    # A second, unsigned SAMLRequest under an encoded name in front: refused outright.
    forged = url.replace("?SAMLRequest=", "?SAML%52equest=AAAA&SAMLRequest=", 1)
    assert client.get(forged).status_code == 400
    done = sign_in_at(client, client.get(url))
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    value = page.split('name="SAMLResponse" value="')[1].split('"')[0]
    parsed = sp.parse_authn_request_response(value, BINDING_HTTP_POST, outstanding={req_id: "/"})
    assert parsed is not None and parsed.get_identity()["uid"] == ["alice"]
    # pysaml2 signs its LogoutRequest (with its RelayState): no confirmation, the session ends.
    ((_, (binding, http_args)),) = sp.global_logout(
        parsed.name_id, sign=True, sign_alg=SIG_RSA_SHA256
    ).items()
    assert binding == BINDING_HTTP_REDIRECT
    back = client.get(local(app, dict(http_args["headers"])["Location"]))
    assert back.status_code == 302 and back.headers["Location"].startswith(
        "http://127.0.0.1:9/slo?"
    )
    answer = parse_qs(urlsplit(back.headers["Location"]).query)
    reply = sp.parse_logout_request_response(answer["SAMLResponse"][0], BINDING_HTTP_REDIRECT)
    assert reply is not None and reply.status_ok()
    assert not signed_in(client)


def test_a_confirmation_for_another_request_changes_nothing(
    client: FlaskClient, tenant: str
) -> None:
    html = unsigned_logout(client).get_data(as_text=True)
    for req in ("wrong", "é", ""):
        resp = client.post(
            "/t/acme/saml/slo/confirm",
            query_string={"req": req},
            data={"csrf_token": csrf_of(html), "action": "logout"},
        )
        assert resp.status_code == 400 and signed_in(client)


def test_a_captured_signed_logout_request_cannot_be_used_again(
    client: FlaskClient, sp_key: bytes
) -> None:
    """Found in review: a signed LogoutRequest was accepted again and again, at any age and
    to any Destination, so a captured URL signed the user out at will."""
    captured = signed_query(sp_key, logout_xml(SIGNED_SP, "_cap"))
    sign_in_with_signed_sp(client, sp_key)
    assert logout_answer(client.get("/t/acme/saml/slo?" + captured)).success
    sign_in_with_signed_sp(client, sp_key, "_in2")
    again = logout_answer(client.get("/t/acme/saml/slo?" + captured))
    assert not again.success and signed_in(client)
    stale = re.sub(r'IssueInstant="[^"]+"', 'IssueInstant="2001-01-01T00:00:00Z"',
                   logout_xml(SIGNED_SP, "_old"))  # fmt: skip
    elsewhere = logout_xml(SIGNED_SP, "_far", destination="https://elsewhere.example/slo")
    undirected = logout_xml(SIGNED_SP, "_nod", destination=None)
    for xml in (stale, elsewhere, undirected):
        reply = logout_answer(client.get("/t/acme/saml/slo?" + signed_query(sp_key, xml)))
        assert not reply.success and signed_in(client), xml
