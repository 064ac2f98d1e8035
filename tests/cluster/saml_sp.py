"""The SAML service provider of the cluster test: python3-saml (OneLogin), strict, wanting
signed messages and assertions; its ACS is never contacted (the test posts the response to
the SP object itself)."""

from __future__ import annotations

from typing import Any

ENTITY = "http://sp.example/cluster"
ACS = "http://127.0.0.1:9/acs"
POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
REFEDS_MFA = "https://refeds.org/profile/mfa"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"


def settings(base: str, idp_cert: str = "", contexts: list[str] | None = None) -> dict[str, Any]:
    """python3-saml's settings for tenant ``acme`` at ``base``; ``contexts`` go into the
    AuthnRequest's RequestedAuthnContext (exact)."""
    return {
        "strict": True,
        "sp": {
            "entityId": ENTITY,
            "assertionConsumerService": {"url": ACS, "binding": POST_BINDING},
            "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        },
        "idp": {
            "entityId": f"{base}/t/acme/saml/metadata",
            "singleSignOnService": {"url": f"{base}/t/acme/saml/sso", "binding": REDIRECT_BINDING},
            "x509cert": idp_cert,
        },
        "security": {
            "wantAssertionsSigned": True,
            "wantMessagesSigned": True,
            "requestedAuthnContext": contexts or False,
            "requestedAuthnContextComparison": "exact",
        },
    }


def metadata(base: str) -> str:
    """The SP's metadata, for ``idp sp add``."""
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

    found: str | bytes = OneLogin_Saml2_Settings(
        settings(base), sp_validation_only=True
    ).get_sp_metadata()
    return found.decode() if isinstance(found, bytes) else found


def request_data(post: dict[str, str] | None = None) -> dict[str, Any]:
    """The ACS request as python3-saml reads it (the form the IdP's page posts)."""
    return {
        "https": "off",
        "http_host": "127.0.0.1:9",
        "script_name": "/acs",
        "get_data": {},
        "post_data": post or {},
    }


def idp_certificate(metadata_xml: str) -> str:
    """The signing certificate in the IdP's metadata (base64 DER, no spaces)."""
    from lxml import etree

    found = etree.fromstring(metadata_xml.encode()).find(
        ".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate"
    )
    assert found is not None and found.text
    return "".join(found.text.split())
