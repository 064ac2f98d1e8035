"""Bad and hostile SAML requests get an error page or a SAML status, never a 500 and never an
assertion: XXE, entity expansion, unlisted ACS URLs, replayed IDs, junk encodings."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from idp.saml import sps
from testkit.html import csrf_of
from tests.conftest import PASSWORD, svc

SP = "https://sp.example/saml"
ACS = "https://sp.example/acs"
METADATA = f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
  entityID="{SP}"><md:SPSSODescriptor
  protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    Location="{ACS}" index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>"""


def authn_request(
    req_id: str = "_r1", acs: str | None = ACS, prefix: str = "", extra: str = ""
) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    acs_attr = f' AssertionConsumerServiceURL="{acs}"' if acs else ""
    return (
        f'{prefix}<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{req_id}" Version="2.0" '
        f'IssueInstant="{now}"{acs_attr}{extra}><saml:Issuer>{SP}</saml:Issuer>'
        f"</samlp:AuthnRequest>"
    )


def redirect_value(xml: str) -> str:
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(raw.compress(xml.encode()) + raw.flush()).decode()


@pytest.fixture
def sp_app(app: Flask, tenant: str) -> Flask:
    with svc(app).db.session() as s:
        sps.add_sp(s, directory.require_tenant(s, "acme"), METADATA.encode())
    return app


def sign_in_at(client: FlaskClient, resp: object) -> Any:
    """Follow ``resp`` to the login page and answer it as alice with her password."""
    login = client.get(resp.headers["Location"])  # type: ignore[attr-defined]
    html = login.get_data(as_text=True)
    return client.post(
        login.request.url,
        data={
            "csrf_token": csrf_of(html),
            "step": "identify",
            "username": "alice",
            "password": PASSWORD,
        },
    )


def get_sso(client: FlaskClient, xml: str) -> object:
    return client.get("/t/acme/saml/sso", query_string={"SAMLRequest": redirect_value(xml)})


XXE = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
)


# Each request is made when its test runs: its IssueInstant must be fresh then, however long
# the suite took to get there (it was made at collection, and went stale in a slow run).
HOSTILE: list[tuple[str, Callable[[], str], str]] = [
    (
        "xxe",
        lambda: authn_request(prefix=XXE, extra=' ProviderName="&x;"'),
        "DOCTYPE are not accepted",
    ),
    (
        "laughs",
        lambda: authn_request(prefix=LAUGHS, extra=' ProviderName="&b;"'),
        "DOCTYPE are not accepted",
    ),
    (
        "foreign-acs",
        lambda: authn_request(acs="https://evil.example/acs"),
        "is not in the SP&#39;s metadata",
    ),
    (
        "unknown-sp",
        lambda: authn_request().replace(SP, "https://unknown.example"),
        "not registered here",
    ),
    ("not-xml", lambda: "<not-xml", "not well-formed"),
    (
        "saml-1.1",
        lambda: authn_request().replace('Version="2.0"', 'Version="1.1"'),
        "Only SAML 2.0",
    ),
    (
        "logout",
        lambda: authn_request().replace("AuthnRequest", "LogoutRequest"),
        "Not a samlp:AuthnRequest",
    ),
]


@pytest.mark.parametrize(("make", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_requests_get_an_error_page(
    sp_app: Flask, client: FlaskClient, make: Callable[[], str], message: str
) -> None:
    resp = get_sso(client, make())
    assert resp.status_code == 400  # type: ignore[attr-defined]
    text = resp.get_data(as_text=True)  # type: ignore[attr-defined]
    assert message in text and "SAMLResponse" not in text


@pytest.mark.parametrize(
    "value", ["%%%", "AAAA", base64.b64encode(b"x" * 10).decode(), "A" * 70000]
)
def test_junk_encodings_get_an_error_page(sp_app: Flask, client: FlaskClient, value: str) -> None:
    resp = client.get("/t/acme/saml/sso", query_string={"SAMLRequest": value})
    assert resp.status_code == 400


def test_a_replayed_request_id_gets_a_status_not_an_assertion(
    sp_app: Flask, client: FlaskClient
) -> None:
    first = get_sso(client, authn_request("_same"))
    assert first.status_code == 302  # type: ignore[attr-defined]
    again = get_sso(client, authn_request("_same"))
    page = again.get_data(as_text=True)  # type: ignore[attr-defined]
    value = page.split('name="SAMLResponse" value="')[1].split('"')[0]
    xml = base64.b64decode(value)
    assert b"RequestDenied" in xml and b"Assertion" not in xml
    assert f'action="{ACS}"' in page


def test_force_authn_asks_for_the_password_again(sp_app: Flask, client: FlaskClient) -> None:
    resp = get_sso(client, authn_request("_a1"))
    done = sign_in_at(client, resp)
    final = client.get(done.headers["Location"])
    assert "SAMLResponse" in final.get_data(as_text=True)
    forced = get_sso(client, authn_request("_a2", extra=' ForceAuthn="true"'))
    assert "/login?flow=" in forced.headers["Location"]  # type: ignore[attr-defined]
    page = client.get(forced.headers["Location"]).get_data(as_text=True)  # type: ignore[attr-defined]
    assert 'name="step" value="password"' in page
    plain = get_sso(client, authn_request("_a3"))
    assert "SAMLResponse" in plain.get_data(as_text=True)  # type: ignore[attr-defined]


@pytest.mark.parametrize("prefix", [XXE, LAUGHS])
def test_hostile_logout_requests_get_an_error_page(
    sp_app: Flask, client: FlaskClient, prefix: str
) -> None:
    xml = authn_request(prefix=prefix).replace("AuthnRequest", "LogoutRequest")
    resp = client.get("/t/acme/saml/slo", query_string={"SAMLRequest": redirect_value(xml)})
    assert resp.status_code == 400 and "DOCTYPE are not accepted" in resp.get_data(as_text=True)
    post = client.post(
        "/t/acme/saml/slo",
        data={"SAMLRequest": base64.b64encode(xml.encode())},
        follow_redirects=True,
    )
    assert post.status_code == 400 and "DOCTYPE are not accepted" in post.get_data(as_text=True)


def test_the_sps_minimum_level_applies_when_the_request_asks_nothing(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    with svc(app).db.session() as s:
        sps.add_sp(s, directory.require_tenant(s, "acme"), METADATA.encode(), min_level=2)
    resp = get_sso(client, authn_request("_m1"))
    page = sign_in_at(client, resp)
    # After the password, a second factor is asked (enrolment: alice has none), not a response.
    assert 'name="step" value="enroll"' in page.get_data(as_text=True)


def add_sp_with_slo(app: Flask) -> None:
    """The test SP, with an HTTP-Redirect SingleLogoutService."""
    slo = (
        '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"'
        ' Location="https://sp.example/slo"/>'
    )
    metadata = METADATA.replace(
        "<md:AssertionConsumerService", slo + "<md:AssertionConsumerService"
    )
    with svc(app).db.session() as s:
        sps.add_sp(s, directory.require_tenant(s, "acme"), metadata.encode())


def test_idp_initiated_logout_asks_each_sp_then_ends_the_session(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    add_sp_with_slo(app)
    resp = get_sso(client, authn_request("_l1"))
    done = sign_in_at(client, resp)
    assert "SAMLResponse" in client.get(done.headers["Location"]).get_data(as_text=True)
    account = client.get("/t/acme/account").get_data(as_text=True)
    out = client.post("/t/acme/saml/logout", data={"csrf_token": csrf_of(account)})
    assert out.status_code == 302 and out.headers["Location"].startswith(
        "https://sp.example/slo?SAMLRequest="
    )
    assert "Signature=" in out.headers["Location"]
    # The SP answers; Stepwise ends the session and shows it.
    from urllib.parse import parse_qs, urlsplit

    from idp.saml import logout as saml_logout

    sent = parse_qs(urlsplit(out.headers["Location"]).query)["SAMLRequest"][0]
    request_id = saml_logout.parse_request(zlib.decompress(base64.b64decode(sent), -15)).id
    xml = saml_logout.build_response(SP, "http://localhost/t/acme/saml/slo", request_id, 0)
    final = client.get(
        "/t/acme/saml/slo", query_string={"SAMLResponse": redirect_value(xml.decode())}
    )
    assert "You have signed out" in final.get_data(as_text=True)
    assert client.get("/t/acme/account").status_code == 302


def test_saml_endpoints_never_answer_5xx(sp_app: Flask, client: FlaskClient) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = st.text(max_size=300) | st.sampled_from(
        [redirect_value(authn_request("_f")), base64.b64encode(b"<x/>").decode(), "", "=="]
    )
    fields = st.dictionaries(
        st.sampled_from(["SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature", "sp"]),
        values,
        max_size=4,
    )

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        data=fields, path=st.sampled_from(["sso", "slo", "idp-init", "resume"]), post=st.booleans()
    )
    def check(data: dict[str, str], path: str, post: bool) -> None:
        url = f"/t/acme/saml/{path}"
        resp = client.post(url, data=data) if post else client.get(url, query_string=data)
        assert resp.status_code < 500, (path, data, resp.status_code)

    check()


def test_an_sp_cannot_sign_out_a_session_it_is_not_part_of(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    from urllib.parse import parse_qs, urlsplit

    from idp.saml import logout as saml_logout
    from tests.conftest import Browser

    add_sp_with_slo(app)
    assert Browser(client, "acme").login("alice", PASSWORD).status_code == 302
    xml = authn_request("_lo").replace("AuthnRequest", "LogoutRequest")
    answer = client.get("/t/acme/saml/slo", query_string={"SAMLRequest": redirect_value(xml)})
    assert answer.status_code == 302
    sent = parse_qs(urlsplit(answer.headers["Location"]).query)["SAMLResponse"][0]
    reply = saml_logout.parse_response(zlib.decompress(base64.b64decode(sent), -15))
    assert reply.in_response_to == "_lo" and not reply.success
    assert client.get("/t/acme/account").status_code == 200  # still signed in


def test_a_cross_site_post_request_reaches_the_existing_session(
    sp_app: Flask, client: FlaskClient
) -> None:
    """SameSite=Lax keeps the session cookie off an SP's cross-site POST: the request is parked
    and read back by a same-site GET, and no second session is started over the first."""
    from tests.conftest import Browser

    assert Browser(client, "acme").login("alice", PASSWORD).status_code == 302
    xml = authn_request("_cross").encode()
    posted = client.post(
        "/t/acme/saml/sso", data={"SAMLRequest": base64.b64encode(xml), "RelayState": "r"}
    )
    assert posted.status_code == 303 and "Set-Cookie" not in posted.headers
    answer = client.get(posted.headers["Location"])
    page = answer.get_data(as_text=True)
    assert "SAMLResponse" in page and 'name="RelayState" value="r"' in page  # SSO: no login
    again = client.get(posted.headers["Location"])  # a parked message is used once
    assert again.status_code == 400
