"""Signed AuthnRequests (SAML 2.0 bindings 3.4.4.1 and core 5): the HTTP-Redirect binding's
detached signature over the query string, and the HTTP-POST binding's enveloped XML signature.

Against signature wrapping, the POST check returns the element the signature actually covers
and insists that it is the message's root (by ID); the caller parses that element only.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from lxml import etree
from signxml.exceptions import InvalidInput
from signxml.exceptions import InvalidSignature as XmlInvalidSignature
from signxml.verifier import SignatureConfiguration, XMLVerifier

from idp.saml.authn import SamlError
from idp.saml.xml import parse

ALGORITHMS = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": hashes.SHA256(),
}


def _raw_params(query_string: bytes) -> dict[str, str]:
    """The query's parameters as sent (still URL-encoded), first value of each."""
    out: dict[str, str] = {}
    for pair in query_string.decode("ascii", "replace").split("&"):
        name, _, value = pair.partition("=")
        out.setdefault(name, value)
    return out


def verify_redirect(query_string: bytes, certs: list[str]) -> None:
    """Check ``Signature`` over ``SAMLRequest=..&RelayState=..&SigAlg=..`` as received."""
    raw = _raw_params(query_string)
    if "Signature" not in raw or "SigAlg" not in raw:
        raise SamlError(
            "This service provider must sign its requests.", "Requester", "RequestDenied"
        )
    alg = unquote_plus(raw["SigAlg"])
    if alg not in ALGORITHMS:
        raise SamlError(
            "The request's signature algorithm is not accepted.", "Requester", "RequestDenied"
        )
    signed = "&".join(
        f"{k}={raw[k]}" for k in ("SAMLRequest", "RelayState", "SigAlg") if k in raw
    ).encode()
    try:
        signature = base64.b64decode(unquote_plus(raw["Signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise SamlError(
            "The request's signature is not base64.", "Requester", "RequestDenied"
        ) from None
    for pem in certs:
        key = x509.load_pem_x509_certificate(pem.encode()).public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, signed, padding.PKCS1v15(), ALGORITHMS[alg])
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, signed, ec.ECDSA(ALGORITHMS[alg]))
            else:
                continue
            return
        except InvalidSignature:
            continue
    raise SamlError("The request's signature does not verify.", "Requester", "RequestDenied")


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
            raise SamlError(
                "The signature does not cover the request.", "Requester", "RequestDenied"
            )
        return bytes(etree.tostring(signed))
    raise SamlError("The request's signature does not verify.", "Requester", "RequestDenied")
