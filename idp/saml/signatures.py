"""SAML signatures, both ways (SAML 2.0 core 5; bindings 3.4.4.1 and 3.5).

- :func:`sign`: our enveloped XML signature over an assertion, a Response, a LogoutRequest or
  LogoutResponse, or the metadata; :func:`sign_redirect`: our HTTP-Redirect query signature.
- :func:`verify_redirect` and :func:`verify_post`: an SP's signed AuthnRequest or
  LogoutRequest, the detached signature over the query string (as parsed once by
  ``idp.saml.query``) or the enveloped XML signature.

Against signature wrapping, the POST check returns the element the signature actually covers
and insists that it is the message's root (by ID); the caller parses that element only.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import quote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from lxml import etree
from signxml.exceptions import InvalidInput
from signxml.exceptions import InvalidSignature as XmlInvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from idp.saml.errors import SignatureInvalid
from idp.saml.query import RedirectQuery
from idp.saml.xml import NS, parse, q

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


@dataclass(frozen=True)
class Signer:
    """A tenant's SAML signing key (PEM, decrypted) and its certificate (``idp.saml.keys``)."""

    key_pem: bytes
    cert_pem: str


def sign(element: etree._Element, signer: Signer, at: int = 1) -> etree._Element:
    """``element`` with an enveloped RSA-SHA256 signature over it, referenced by its ID and
    exclusively canonicalised (SAML core 5.4.1 to 5.4.4). The ``ds:Signature`` is its child
    number ``at``: after the Issuer in an assertion or a protocol message (core 2.3.3, 3.2.1,
    3.2.2), first in metadata (metadata 2.3.2)."""
    element.insert(
        at, etree.Element(q("ds", "Signature"), nsmap={"ds": NS["ds"]}, Id="placeholder")
    )
    xml_signer = XMLSigner(
        signature_algorithm="rsa-sha256", digest_algorithm="sha256", c14n_algorithm=EXC_C14N
    )
    return xml_signer.sign(
        element, key=signer.key_pem, cert=signer.cert_pem, reference_uri=element.get("ID")
    )


def sign_redirect(query: str, key_pem: bytes) -> str:
    """``query`` (``SAMLRequest=..[&RelayState=..]``, values URL-encoded) with ``SigAlg`` and
    the RSA-SHA256 ``Signature`` over all of it appended (SAML bindings 3.4.4.1)."""
    query += f"&SigAlg={quote_plus(RSA_SHA256)}"
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("SAML signing keys are RSA keys")
    signature = key.sign(query.encode(), padding.PKCS1v15(), hashes.SHA256())
    return query + f"&Signature={quote_plus(base64.b64encode(signature).decode())}"


# SigAlg -> (key type, digest): the key of the certificate must be of the named type.
ALGORITHMS: dict[str, tuple[type, hashes.HashAlgorithm]] = {
    RSA_SHA256: (rsa.RSAPublicKey, hashes.SHA256()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": (rsa.RSAPublicKey, hashes.SHA384()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": (rsa.RSAPublicKey, hashes.SHA512()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": (
        ec.EllipticCurvePublicKey,
        hashes.SHA256(),
    ),
}


def verify_redirect(query: RedirectQuery, certs: list[str]) -> None:
    """Check ``Signature`` over ``SAMLRequest=..&RelayState=..&SigAlg=..`` exactly as received
    (SAML bindings 3.4.4.1); the caller then processes the same query's decoded values."""
    encoded_signature, alg = query.get("Signature"), query.get("SigAlg")
    if encoded_signature is None or alg is None:
        raise SignatureInvalid("This service provider must sign its requests.")
    if alg not in ALGORITHMS:
        raise SignatureInvalid("The request's signature algorithm is not accepted.")
    try:
        signature = base64.b64decode(encoded_signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("The request's signature is not base64.") from None
    signed = query.signed_octets()
    key_type, digest = ALGORITHMS[alg]
    for pem in certs:
        if _verifies(pem, signature, signed, key_type, digest):
            return
    raise SignatureInvalid("The request's signature does not verify.")


def _verifies(
    pem: str, signature: bytes, data: bytes, key_type: type, digest: hashes.HashAlgorithm
) -> bool:
    """Whether ``signature`` over ``data`` verifies with the key of ``pem``, when that key is
    of ``key_type`` (no RSA algorithm with an EC key, nor the reverse)."""
    try:
        key = x509.load_pem_x509_certificate(pem.encode()).public_key()
        if not isinstance(key, key_type):
            return False
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(digest))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_post(xml: bytes, certs: list[str]) -> bytes:
    """The XML the enveloped signature covers, when it is the whole message; else raise."""
    root = parse(xml)
    root_id = root.get("ID")
    for pem in certs:
        try:
            result = XMLVerifier().verify(
                root,
                x509_cert=pem,
                expect_config=SignatureConfiguration(location="./"),
                ignore_ambiguous_key_info=True,
            )
        except (XmlInvalidSignature, InvalidInput):
            continue
        signed = result.signed_xml if not isinstance(result, list) else None
        if signed is None or signed.get("ID") != root_id or signed.tag != root.tag:
            raise SignatureInvalid("The signature does not cover the request.")
        return bytes(etree.tostring(signed))
    raise SignatureInvalid("The request's signature does not verify.")
