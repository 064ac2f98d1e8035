"""Safe XML for SAML: no DTDs, no entities, no network, bounded size (billion laughs, XXE).

Every document from outside is parsed here. A DOCTYPE is refused outright: SAML never needs
one (SAML 2.0 core section 1.3 forbids DTDs in messages), and refusing it closes entity
expansion and external entities whatever the parser would do.
"""

from __future__ import annotations

from lxml import etree

from idp.saml.errors import XmlError

MAX_BYTES = 256 * 1024
NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
    "xs": "http://www.w3.org/2001/XMLSchema",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_pis=True,
)


def parse(data: bytes) -> etree._Element:
    """The root of ``data``, parsed safely; XmlError (a SamlError) when it is no document."""
    if len(data) > MAX_BYTES:
        raise XmlError("The XML document is too large.")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise XmlError("XML documents with a DOCTYPE are not accepted.")
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError:
        raise XmlError("The XML document is not well-formed.") from None
    if root is None:
        raise XmlError("The XML document is empty.")
    return root


def q(prefix: str, name: str) -> str:
    """Clark notation: ``q("saml", "Issuer")`` -> ``{urn:...:assertion}Issuer``."""
    return f"{{{NS[prefix]}}}{name}"


def text_of(root: etree._Element, path: str) -> str | None:
    found = root.find(path, NS)
    return found.text.strip() if found is not None and found.text else None
