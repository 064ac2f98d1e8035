"""The Response and its Assertion (SAML 2.0 core sections 2 and 3.2; Web Browser SSO profile,
SAML 2.0 profiles section 4.1.4.2): the NameID and the attributes released to the SP, bearer
SubjectConfirmation, audience, short validity, AuthnStatement with the achieved context.

Everything an assertion states is built here; it is signed by ``idp.saml.signatures.sign``
(RSA-SHA256) and, when the SP asks, encrypted for it here too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from idp.profiles import full_name
from idp.saml.errors import STATUS
from idp.saml.metadata import NAMEID_FORMATS
from idp.saml.signatures import Signer, sign
from idp.saml.xml import NS, q
from idp.store.models import User

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
VALIDITY = 300
# What an SP may be released (``ServiceProvider.attributes``): (Name, FriendlyName), with the
# names of the X.500/LDAP schemas (RFC 4519, RFC 4524, inetOrgPerson RFC 2798) and eduPerson
# (isMemberOf) as the REFEDS and SAML V2.0 Attribute Profile (saml-profiles 8.2.3) use them.
# "email" and "mail" are one attribute under two keys (the first name stays for old settings).
ATTRIBUTES = {
    "username": ("urn:oid:0.9.2342.19200300.100.1.1", "uid"),
    "email": ("urn:oid:0.9.2342.19200300.100.1.3", "mail"),
    "role": ("urn:stepwise:attribute:role", "role"),
    "displayName": ("urn:oid:2.16.840.1.113730.3.1.241", "displayName"),
    "givenName": ("urn:oid:2.5.4.42", "givenName"),
    "sn": ("urn:oid:2.5.4.4", "sn"),
    "mail": ("urn:oid:0.9.2342.19200300.100.1.3", "mail"),
    "memberOf": ("urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "isMemberOf"),
}


def instant(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    return "_" + secrets.token_hex(20)  # an NCName: never starts with a digit


def name_id(fmt: str, user: User, sp_entity_id: str, pairwise_key: bytes) -> str:
    """The user's NameID for this SP in ``fmt`` (SAML 2.0 core 8.3). A persistent one is
    pairwise: an HMAC of the SP and the user's ``sub`` under ``pairwise_key``, stable for the
    SP and meaningless to any other (core 8.3.7)."""
    if fmt == NAMEID_FORMATS["email"]:
        return user.email
    if fmt == NAMEID_FORMATS["transient"]:
        return "_" + secrets.token_hex(16)
    if fmt == NAMEID_FORMATS["unspecified"]:
        return user.username
    digest = hmac.new(pairwise_key, f"{sp_entity_id}\n{user.sub}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def attributes(released: Iterable[str], user: User) -> list[tuple[str, str, list[str]]]:
    """The attributes the SP is released, as (Name, FriendlyName, values) (core 2.7.3): each
    Name once, and none without a value."""
    values = {
        "username": [user.username],
        "email": [user.email],
        "mail": [user.email],
        "role": [user.role],
        "displayName": [full_name(user)],
        "givenName": [user.given_name],
        "sn": [user.family_name],
        "memberOf": [user.role],  # the user's groups: their role
    }
    out: dict[str, tuple[str, str, list[str]]] = {}
    for key in released:
        if key in ATTRIBUTES and ATTRIBUTES[key][0] not in out:
            found = [v for v in values[key] if v]
            if found:
                out[ATTRIBUTES[key][0]] = (*ATTRIBUTES[key], found)
    return list(out.values())


@dataclass
class Grant:
    """Everything an assertion states."""

    issuer: str
    audience: str
    recipient: str  # the ACS URL
    in_response_to: str | None
    name_id: str
    name_id_format: str
    session_index: str
    authn_instant: int
    class_ref: str
    attributes: list[tuple[str, str, list[str]]] = field(default_factory=list)


def _response(
    issuer: str,
    recipient: str,
    in_response_to: str | None,
    now: int,
    status: str,
    sub: str | None = None,
    message: str | None = None,
) -> etree._Element:
    root = etree.Element(q("samlp", "Response"), nsmap={"samlp": NS["samlp"], "saml": NS["saml"]})
    root.set("ID", new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", instant(now))
    root.set("Destination", recipient)
    if in_response_to:
        root.set("InResponseTo", in_response_to)
    etree.SubElement(root, q("saml", "Issuer")).text = issuer
    status_el = etree.SubElement(root, q("samlp", "Status"))
    code = etree.SubElement(status_el, q("samlp", "StatusCode"), Value=STATUS + status)
    if sub:
        etree.SubElement(code, q("samlp", "StatusCode"), Value=STATUS + sub)
    if message:
        etree.SubElement(status_el, q("samlp", "StatusMessage")).text = message
    return root


def assertion(grant: Grant, now: int, skew: int) -> etree._Element:
    """The unsigned Assertion (core 2.3.3) stating ``grant``, valid from ``now - skew`` for
    ``VALIDITY`` seconds (profiles 4.1.4.2)."""
    a = etree.Element(
        q("saml", "Assertion"), nsmap={"saml": NS["saml"], "xs": NS["xs"], "xsi": NS["xsi"]}
    )
    a.set("ID", new_id())
    a.set("Version", "2.0")
    a.set("IssueInstant", instant(now))
    etree.SubElement(a, q("saml", "Issuer")).text = grant.issuer
    subject = etree.SubElement(a, q("saml", "Subject"))
    name_id = etree.SubElement(
        subject,
        q("saml", "NameID"),
        Format=grant.name_id_format,
        SPNameQualifier=grant.audience,
        NameQualifier=grant.issuer,
    )
    name_id.text = grant.name_id
    confirmation = etree.SubElement(subject, q("saml", "SubjectConfirmation"), Method=BEARER)
    data = etree.SubElement(
        confirmation,
        q("saml", "SubjectConfirmationData"),
        NotOnOrAfter=instant(now + VALIDITY),
        Recipient=grant.recipient,
    )
    if grant.in_response_to:
        data.set("InResponseTo", grant.in_response_to)
    conditions = etree.SubElement(
        a,
        q("saml", "Conditions"),
        NotBefore=instant(now - skew),
        NotOnOrAfter=instant(now + VALIDITY),
    )
    restriction = etree.SubElement(conditions, q("saml", "AudienceRestriction"))
    etree.SubElement(restriction, q("saml", "Audience")).text = grant.audience
    statement = etree.SubElement(
        a,
        q("saml", "AuthnStatement"),
        AuthnInstant=instant(grant.authn_instant),
        SessionIndex=grant.session_index,
    )
    context = etree.SubElement(statement, q("saml", "AuthnContext"))
    etree.SubElement(context, q("saml", "AuthnContextClassRef")).text = grant.class_ref
    if grant.attributes:
        attrs = etree.SubElement(a, q("saml", "AttributeStatement"))
        for name, friendly, values in grant.attributes:
            attr = etree.SubElement(
                attrs,
                q("saml", "Attribute"),
                Name=name,
                NameFormat=URI_FORMAT,
                FriendlyName=friendly,
            )
            for value in values:
                v = etree.SubElement(attr, q("saml", "AttributeValue"))
                v.set(f"{{{NS['xsi']}}}type", "xs:string")
                v.text = value
    return a


def success(
    grant: Grant,
    signer: Signer,
    now: int,
    skew: int,
    sign_response: bool,
    encrypt_for: str | None = None,
) -> bytes:
    """A Response with one signed Assertion (and a signed Response when asked); the assertion
    is encrypted for the SP's certificate ``encrypt_for`` when given."""
    signed = sign(assertion(grant, now, skew), signer)
    root = _response(grant.issuer, grant.recipient, grant.in_response_to, now, "Success")
    if encrypt_for:
        holder = etree.SubElement(root, q("saml", "EncryptedAssertion"))
        holder.append(signed)
        encrypt(signed, encrypt_for)
    else:
        root.append(signed)
    if sign_response:
        root = sign(root, signer)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def encrypt(element: etree._Element, cert_pem: str) -> None:
    """Replace ``element`` (in its tree) by its XML Encryption: AES-256-GCM content key,
    wrapped with RSA-OAEP for the SP's certificate (XML Encryption 1.1)."""
    import xmlsec

    template = xmlsec.template.encrypted_data_create(
        element,
        xmlsec.constants.TransformAes256Gcm,
        type=xmlsec.constants.TypeEncElement,
        ns="xenc",
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    wrapped = xmlsec.template.add_encrypted_key(info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(wrapped)
    manager = xmlsec.KeysManager()
    manager.add_key(
        xmlsec.Key.from_memory(cert_pem.encode(), xmlsec.constants.KeyDataFormatCertPem, None)
    )
    ctx = xmlsec.EncryptionContext(manager)
    ctx.key = xmlsec.Key.generate(
        xmlsec.constants.KeyDataAes, 256, xmlsec.constants.KeyDataTypeSession
    )
    ctx.encrypt_xml(template, element)


def failure(
    issuer: str,
    recipient: str,
    in_response_to: str | None,
    signer: Signer,
    now: int,
    status: str,
    sub: str | None,
    message: str,
) -> bytes:
    """A signed Response carrying only a non-success Status (no assertion)."""
    root = _response(issuer, recipient, in_response_to, now, status, sub, message)
    return bytes(etree.tostring(sign(root, signer), xml_declaration=True, encoding="UTF-8"))
