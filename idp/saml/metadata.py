"""SAML 2.0 metadata (SAML 2.0 metadata spec): this tenant's IdP descriptor, signed, and the
parsing of a service provider's descriptor."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from lxml import etree

from idp.saml.errors import XmlError
from idp.saml.keys import cert_body
from idp.saml.signatures import Signer, sign
from idp.saml.xml import NS, parse, q

REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
NAMEID_FORMATS = {
    "email": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "transient": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
}
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
MAX_INDEX = 65535
MAX_URL = 2048
MAX_ENTITY_ID = 1024  # the column's size


def idp_document(entity_id: str, sso: str, slo: str, signer: Signer, certs: list[str]) -> bytes:
    """The IdP's EntityDescriptor, signed by ``signer`` (SAML 2.0 metadata sections 2.3.2 and
    3); ``certs`` are the signing certificates to list (the current one and the next)."""
    E = etree.Element
    root = E(q("md", "EntityDescriptor"), nsmap={"md": NS["md"], "ds": NS["ds"]})
    root.set("entityID", entity_id)
    root.set("ID", "_md" + cert_body(signer.cert_pem)[-16:].replace("/", "_").replace("+", "-"))
    idp = etree.SubElement(root, q("md", "IDPSSODescriptor"))
    idp.set("protocolSupportEnumeration", NS["samlp"])
    idp.set("WantAuthnRequestsSigned", "false")
    for pem in certs:
        descriptor = etree.SubElement(idp, q("md", "KeyDescriptor"), use="signing")
        info = etree.SubElement(descriptor, q("ds", "KeyInfo"))
        data = etree.SubElement(info, q("ds", "X509Data"))
        etree.SubElement(data, q("ds", "X509Certificate")).text = cert_body(pem)
    for binding in (REDIRECT, POST):
        etree.SubElement(idp, q("md", "SingleLogoutService"), Binding=binding, Location=slo)
    for fmt in NAMEID_FORMATS.values():
        etree.SubElement(idp, q("md", "NameIDFormat")).text = fmt
    for binding in (REDIRECT, POST):
        etree.SubElement(idp, q("md", "SingleSignOnService"), Binding=binding, Location=sso)
    signed = sign(root, signer, at=0)
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


@dataclass
class SpDescriptor:
    entity_id: str
    acs: list[dict[str, object]] = field(default_factory=list)
    slo: list[dict[str, str]] = field(default_factory=list)
    signing_certs: list[str] = field(default_factory=list)
    encryption_cert: str | None = None
    authn_requests_signed: bool = False
    want_assertions_signed: bool = False
    nameid_formats: list[str] = field(default_factory=list)


def _pem(body: str) -> str:
    body = "".join(body.split())
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def _certificate(body: str) -> str:
    """A KeyDescriptor's X509Certificate as PEM, when it is one (checked now: a bad one would
    otherwise fail only when a signature is checked or an assertion encrypted)."""
    pem = _pem(body)
    try:
        x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise XmlError("A KeyDescriptor's X509Certificate is not a certificate.") from None
    return pem


def _boolean(element: etree._Element, name: str) -> bool:
    """An xs:boolean attribute (XML Schema 2, 3.2.2): true, false, 1 or 0; absent is false."""
    value = element.get(name)
    if value is None:
        return False
    if value.strip() not in BOOLEANS:
        raise XmlError(f"{_where(element)} {name}={value[:40]!r} is not true or false.")
    return BOOLEANS[value.strip()]


def _index(element: etree._Element, position: int) -> int:
    """An IndexedEndpointType's index, an xs:unsignedShort (SAML 2.0 metadata 2.2.3); when
    absent (as some SPs send it), the endpoint's position."""
    value = element.get("index")
    if value is None:
        return position
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 5 or int(text) > MAX_INDEX:
        raise XmlError(f"{_where(element)} index={value[:40]!r} is not a number from 0 to 65535.")
    return int(text)


def _location(element: etree._Element, name: str = "Location") -> str:
    """An endpoint's http(s) URL (SAML 2.0 metadata 2.2.2)."""
    value = element.get(name, "").strip()
    if not value.startswith(("https://", "http://")) or len(value) > MAX_URL:
        raise XmlError(f"{_where(element)} has no http(s) {name}.")
    return value


def _binding(element: etree._Element) -> str:
    binding = element.get("Binding", "").strip()
    if not binding:
        raise XmlError(f"{_where(element)} has no Binding.")
    return binding


def _where(element: etree._Element) -> str:
    """``An AssertionConsumerService`` etc., for messages."""
    name = etree.QName(element).localname
    return ("An " if name[:1] in "AEIOU" else "A ") + name


def _endpoints(sp: etree._Element) -> tuple[list[dict[str, object]], list[dict[str, str]]]:
    """The SP's AssertionConsumerServices and SingleLogoutServices (SAML 2.0 metadata 2.4.4,
    2.4.2); an ACS index is unique."""
    acs: list[dict[str, object]] = []
    for position, element in enumerate(sp.findall("md:AssertionConsumerService", NS)):
        acs.append(
            {
                "binding": _binding(element),
                "location": _location(element),
                "index": _index(element, position),
                "default": _boolean(element, "isDefault"),
            }
        )
    indexes = [a["index"] for a in acs]
    if len(set(indexes)) != len(indexes):
        raise XmlError("Two AssertionConsumerServices have the same index.")
    slo: list[dict[str, str]] = []
    for element in sp.findall("md:SingleLogoutService", NS):
        response = element.get("ResponseLocation")
        slo.append(
            {
                "binding": _binding(element),
                "location": _location(element),
                "response_location": ""
                if response is None
                else _location(element, "ResponseLocation"),
            }
        )
    return acs, slo


def parse_sp(data: bytes) -> SpDescriptor:
    """A service provider's EntityDescriptor (SAML 2.0 metadata 2.3.2, 2.4.4); XmlError with
    the precise reason when anything in it is unusable."""
    root = parse(data)
    if root.tag != q("md", "EntityDescriptor"):
        raise XmlError("Not an md:EntityDescriptor.")
    sp = root.find("md:SPSSODescriptor", NS)
    entity_id = root.get("entityID", "").strip()
    if sp is None or not entity_id:
        raise XmlError("The metadata has no entityID or no SPSSODescriptor.")
    if len(entity_id) > MAX_ENTITY_ID:
        raise XmlError("The entityID is longer than 1024 characters.")
    out = SpDescriptor(entity_id=entity_id)
    out.authn_requests_signed = _boolean(sp, "AuthnRequestsSigned")
    out.want_assertions_signed = _boolean(sp, "WantAssertionsSigned")
    for kd in sp.findall("md:KeyDescriptor", NS):
        cert = kd.find(".//ds:X509Certificate", NS)
        if cert is None or not cert.text:
            continue
        use = kd.get("use")
        if use in (None, "signing"):
            out.signing_certs.append(_certificate(cert.text))
        if use in (None, "encryption") and out.encryption_cert is None:
            out.encryption_cert = _certificate(cert.text)
    out.acs, out.slo = _endpoints(sp)
    if not out.acs:
        raise XmlError("The metadata has no AssertionConsumerService.")
    out.nameid_formats = [n.text.strip() for n in sp.findall("md:NameIDFormat", NS) if n.text]
    return out
