"""The tenant's SAML metadata, signing-key rotation, and SP registration errors."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from signxml.verifier import XMLVerifier

from idp import directory
from idp.saml import keys
from tests.cli_support import idp
from tests.conftest import svc

DS = "{http://www.w3.org/2000/09/xmldsig#}"
MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"


def certs_in(xml: bytes) -> list[str]:
    """The signing certificates the metadata lists (KeyDescriptor), in order."""
    root = etree.fromstring(xml)
    found = [d.find(f".//{DS}X509Certificate") for d in root.iter(MD + "KeyDescriptor")]
    return ["".join((c.text or "").split()) for c in found if c is not None]


def pem(body: str) -> str:
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


def test_metadata_is_signed_and_lists_the_next_key_before_it_signs(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    first = client.get("/t/acme/saml/metadata")
    assert first.status_code == 200 and first.mimetype == "application/samlmetadata+xml"
    (current,) = certs_in(first.data)
    XMLVerifier().verify(first.data, x509_cert=pem(current))  # raises unless it verifies
    with svc(app).db.session() as s:
        assert keys.rotate(s, svc(app).cipher, directory.require_tenant(s, "acme")) == "next"
    announced = client.get("/t/acme/saml/metadata").data
    listed = certs_in(announced)
    assert listed[0] == current and len(listed) == 2
    XMLVerifier().verify(announced, x509_cert=pem(current))  # still signed with the old key
    with svc(app).db.session() as s:
        assert keys.rotate(s, svc(app).cipher, directory.require_tenant(s, "acme")) == "active"
    switched = client.get("/t/acme/saml/metadata").data
    assert certs_in(switched) == [listed[1]]
    XMLVerifier().verify(switched, x509_cert=pem(listed[1]))


def test_sp_add_errors_are_one_line_with_status_2(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    for content, message in [
        ("<not xml", "metadata: The XML document is not well-formed."),
        ('<!DOCTYPE x [<!ENTITY e "x">]><x/>', "DOCTYPE are not accepted"),
        (
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="e"/>',
            "no SPSSODescriptor",
        ),
    ]:
        bad.write_text(content)
        result = idp(cli_env, "sp", "add", "acme", "--metadata", str(bad))
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    missing = idp(cli_env, "sp", "add", "acme", "--metadata", str(tmp_path / "nope.xml"))
    assert missing.returncode == 2 and "No such file" in missing.stderr
    rotated = idp(cli_env, "saml", "rotate-key", "acme")
    assert rotated.returncode == 0 and "next SAML certificate published" in rotated.stdout
    good = tmp_path / "sp.xml"
    good.write_text(SP_METADATA)
    assert (
        idp(
            cli_env,
            "sp",
            "add",
            "acme",
            "--metadata",
            str(good),
            "--min-level",
            "2",
            "--attributes",
            "email",
        ).returncode
        == 0
    )
    listed = idp(cli_env, "sp", "list", "acme").stdout
    assert "https://console.example/sp" in listed and "min_level=2" in listed
    again = idp(cli_env, "sp", "add", "acme", "--metadata", str(good))
    assert again.returncode == 2 and "already exists" in again.stderr
    wrong = idp(cli_env, "sp", "add", "acme", "--metadata", str(good), "--attributes", "salary")
    assert wrong.returncode == 2 and "--attributes must be among" in wrong.stderr
    assert idp(cli_env, "sp", "delete", "acme", "https://console.example/sp").returncode == 0
    gone = idp(cli_env, "sp", "delete", "acme", "https://console.example/sp")
    assert gone.returncode == 2 and "no service provider" in gone.stderr


SP_METADATA = """<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
 entityID="https://console.example/sp"><md:SPSSODescriptor
 protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
 <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
  Location="https://console.example/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"""


def test_console_adds_a_service_provider_from_pasted_metadata(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    from testkit.html import csrf_of
    from tests.conftest import PASSWORD
    from tests.mfa_helpers import MfaBrowser

    MfaBrowser(client, "acme").password("olivia", PASSWORD)
    assert "/t/acme/saml/metadata" in client.get("/t/acme/admin/applications").get_data(
        as_text=True
    )
    page = client.get("/t/acme/admin/sps/new").get_data(as_text=True)
    bad = client.post(
        "/t/acme/admin/sps/new",
        data={"csrf_token": csrf_of(page), "metadata": "<oops"},
        follow_redirects=True,
    )
    assert "The XML document is not well-formed." in bad.get_data(as_text=True)
    done = client.post(
        "/t/acme/admin/sps/new",
        data={
            "csrf_token": csrf_of(page),
            "metadata": SP_METADATA,
            "nameid": "email",
            "min_level": "2",
        },
        follow_redirects=True,
    )
    text = done.get_data(as_text=True)
    assert "Service provider https://console.example/sp added." in text
    listed = client.get("/t/acme/admin/applications").get_data(as_text=True)
    assert "<td>2</td>" in listed  # its minimum level
    # The user's application list now links to IdP-initiated sign-in for it.
    account = client.get("/t/acme/account").get_data(as_text=True)
    assert "idp-init?sp=https://console.example/sp" in account.replace("%3A", ":").replace(
        "%2F", "/"
    )
