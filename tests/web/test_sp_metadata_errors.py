"""SP metadata with bad attributes (a non-numeric index, a boolean that is not one, an endpoint
without Location or Binding, a certificate that is not one) is refused with a precise message:
a form error in the console, one line and exit 2 from ``idp sp add``, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import directory
from idp.directory import DirectoryError
from idp.saml import sps
from testkit.html import csrf_of
from tests.cli_support import idp
from tests.conftest import PASSWORD, svc
from tests.mfa_helpers import MfaBrowser
from tests.web.test_saml_idp import SP_METADATA

ACS = '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"'
SLO = '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"'
SECOND_ACS = f'{ACS} Location="https://console.example/acs2" index="0"/>'


def variant(old: str, new: str) -> str:
    assert old in SP_METADATA
    return SP_METADATA.replace(old, new)


BAD = [
    (variant('index="0"', 'index="one"'), "An AssertionConsumerService index='one' is not a"),
    (variant('index="0"', 'index=""'), "An AssertionConsumerService index='' is not a"),
    (variant('index="0"', 'index="²"'), "An AssertionConsumerService index='²' is not a"),
    (variant('index="0"', 'index="-1"'), "index='-1' is not a number from 0 to 65535"),
    (variant('index="0"', 'index="65536"'), "index='65536' is not a number"),
    (variant('index="0"', 'index="' + "9" * 5000 + '"'), "is not a number from 0 to 65535"),
    (variant('index="0"', 'index="0" isDefault="yes"'), "isDefault='yes' is not true or false"),
    (
        variant("<md:SPSSODescriptor", '<md:SPSSODescriptor AuthnRequestsSigned="maybe"'),
        "A SPSSODescriptor AuthnRequestsSigned='maybe' is not true or false",
    ),
    (
        variant('Location="https://console.example/acs"', ""),
        "An AssertionConsumerService has no http(s) Location.",
    ),
    (
        variant('Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"', ""),
        "An AssertionConsumerService has no Binding.",
    ),
    (variant('index="0"/>', 'index="0"/>' + SECOND_ACS), "have the same index"),
    (
        variant("<md:AssertionConsumerService", SLO + "/><md:AssertionConsumerService"),
        "A SingleLogoutService has no http(s) Location.",
    ),
    (
        variant(
            "<md:AssertionConsumerService",
            SLO + ' Location="https://console.example/slo" ResponseLocation="javascript:x"/>'
            "<md:AssertionConsumerService",
        ),
        "A SingleLogoutService has no http(s) ResponseLocation.",
    ),
    (
        variant(
            "<md:AssertionConsumerService",
            '<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/'
            'xmldsig#"><ds:X509Data><ds:X509Certificate>bm90IGEgY2VydA==</ds:X509Certificate>'
            "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:AssertionConsumerService",
        ),
        "A KeyDescriptor's X509Certificate is not a certificate.",
    ),
    (
        variant('entityID="https://console.example/sp"', f'entityID="urn:{"x" * 1100}"'),
        "The entityID is longer than 1024 characters.",
    ),
]


@pytest.mark.parametrize(("metadata", "message"), BAD)
def test_bad_metadata_is_refused_with_a_precise_message(
    app: Flask, tenant: str, metadata: str, message: str
) -> None:
    with svc(app).db.session() as s, pytest.raises(DirectoryError) as refused:
        sps.add_sp(s, directory.require_tenant(s, "acme"), metadata.encode())
    assert str(refused.value).startswith("metadata: ") and message in str(refused.value)


def test_metadata_without_an_index_still_numbers_its_endpoints(app: Flask, tenant: str) -> None:
    """``index`` is required by the schema, but some SPs leave it out: their position."""
    metadata = variant(' index="0"', "").replace(
        "</md:SPSSODescriptor>",
        f'{ACS} Location="https://console.example/acs2" isDefault="1"/></md:SPSSODescriptor>',
    )
    with svc(app).db.session() as s:
        sp = sps.add_sp(s, directory.require_tenant(s, "acme"), metadata.encode())
        assert [(a["index"], a["default"]) for a in sp.acs] == [(0, False), (1, True)]
        assert sps.acs_for(sp, None, None) == "https://console.example/acs2"


def test_sp_add_with_a_bad_index_exits_2_with_one_line(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "sp.xml"
    for metadata, message in (BAD[0], BAD[-2]):
        bad.write_text(metadata)
        result = idp(cli_env, "sp", "add", "acme", "--metadata", str(bad))
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_console_shows_bad_metadata_as_a_form_error(client: FlaskClient, tenant: str) -> None:
    MfaBrowser(client, "acme").password("olivia", PASSWORD)
    page = client.get("/t/acme/admin/sps/new").get_data(as_text=True)
    bad = client.post(
        "/t/acme/admin/sps/new",
        data={"csrf_token": csrf_of(page), "metadata": BAD[0][0]},
    )
    assert bad.status_code == 400  # the form again, with the reason
    assert "index=&#39;one&#39; is not a number from 0 to 65535." in bad.get_data(as_text=True)


def test_encryption_needs_an_rsa_certificate(app: Flask, tenant: str) -> None:
    """Assertions are encrypted with RSA-OAEP: an EC certificate is refused at registration,
    not found out by a failing sign-in."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.interop.test_saml_sps import self_signed

    cert = self_signed(ec.generate_private_key(ec.SECP256R1()), "EC SP")
    body = "".join(cert.public_bytes(serialization.Encoding.PEM).decode().splitlines()[1:-1])
    metadata = variant(
        "<md:AssertionConsumerService",
        '<md:KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/'
        f'xmldsig#"><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data>'
        "</ds:KeyInfo></md:KeyDescriptor><md:AssertionConsumerService",
    )
    with svc(app).db.session() as s, pytest.raises(DirectoryError) as refused:
        sps.add_sp(s, directory.require_tenant(s, "acme"), metadata.encode(), encrypt=True)
    assert "--encrypt needs an RSA encryption certificate" in str(refused.value)
