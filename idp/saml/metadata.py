"""SAML 2.0 metadata (SAML 2.0 metadata spec): this tenant's IdP descriptor, signed, and the
parsing of a service provider's descriptor."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree
from signxml.signer import XMLSigner

from idp.saml.keys import cert_body
from idp.saml.xml import NS, XmlError, parse, q

REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
NAMEID_FORMATS = {
    "email": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "transient": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
}
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def signer() -> XMLSigner:
    """RSA-SHA256 with exclusive canonicalisation, as SAML 2.0 profiles expect."""
    return XMLSigner(
        signature_algorithm="rsa-sha256", digest_algorithm="sha256", c14n_algorithm=EXC_C14N
    )


def sign(element: etree._Element, key_pem: bytes, cert_pem: str) -> etree._Element:
    """Enveloped signature over ``element`` (by its ID), placed where its placeholder is."""
    return signer().sign(element, key=key_pem, cert=cert_pem, reference_uri=element.get("ID"))


def idp_document(
    entity_id: str, sso: str, slo: str, cert_pem: str, key_pem: bytes, certs: list[str]
) -> bytes:
    """The IdP's EntityDescriptor, signed with ``cert_pem``'s key (SAML 2.0 metadata section
    3); ``certs`` are the signing certificates to list (the current one and the next)."""
    E = etree.Element
    root = E(q("md", "EntityDescriptor"), nsmap={"md": NS["md"], "ds": NS["ds"]})
    root.set("entityID", entity_id)
    root.set("ID", "_md" + cert_body(cert_pem)[-16:].replace("/", "_").replace("+", "-"))
    etree.SubElement(root, q("ds", "Signature"), Id="placeholder")
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
    return bytes(
        etree.tostring(sign(root, key_pem, cert_pem), xml_declaration=True, encoding="UTF-8")
    )


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


def parse_sp(data: bytes) -> SpDescriptor:
    """A service provider's EntityDescriptor; XmlError with the reason when unusable."""
    root = parse(data)
    if root.tag != q("md", "EntityDescriptor"):
        raise XmlError("Not an md:EntityDescriptor.")
    sp = root.find("md:SPSSODescriptor", NS)
    entity_id = root.get("entityID", "")
    if sp is None or not entity_id:
        raise XmlError("The metadata has no entityID or no SPSSODescriptor.")
    out = SpDescriptor(entity_id=entity_id)
    out.authn_requests_signed = sp.get("AuthnRequestsSigned", "false") in ("true", "1")
    out.want_assertions_signed = sp.get("WantAssertionsSigned", "false") in ("true", "1")
    for kd in sp.findall("md:KeyDescriptor", NS):
        cert = kd.find(".//ds:X509Certificate", NS)
        if cert is None or not cert.text:
            continue
        use = kd.get("use")
        if use in (None, "signing"):
            out.signing_certs.append(_pem(cert.text))
        if use in (None, "encryption") and out.encryption_cert is None:
            out.encryption_cert = _pem(cert.text)
    for i, acs in enumerate(sp.findall("md:AssertionConsumerService", NS)):
        location = acs.get("Location", "")
        if not location.startswith(("https://", "http://")):
            raise XmlError("An AssertionConsumerService has no http(s) Location.")
        out.acs.append(
            {
                "binding": acs.get("Binding", POST),
                "location": location,
                "index": int(acs.get("index", i)),
                "default": acs.get("isDefault") in ("true", "1"),
            }
        )
    if not out.acs:
        raise XmlError("The metadata has no AssertionConsumerService.")
    for slo in sp.findall("md:SingleLogoutService", NS):
        out.slo.append(
            {
                "binding": slo.get("Binding", ""),
                "location": slo.get("Location", ""),
                "response_location": slo.get("ResponseLocation", ""),
            }
        )
    out.nameid_formats = [n.text.strip() for n in sp.findall("md:NameIDFormat", NS) if n.text]
    return out
