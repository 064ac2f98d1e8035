"""Single Logout (SAML 2.0 core section 3.7; profiles section 4.4): LogoutRequest and
LogoutResponse, sent over HTTP-Redirect with the binding's query-string signature."""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from urllib.parse import quote_plus

from lxml import etree

from idp.saml.authn import parse_instant
from idp.saml.errors import STATUS, SamlError
from idp.saml.response import instant, new_id
from idp.saml.signatures import Signer, sign, sign_redirect
from idp.saml.xml import NS, parse, q, text_of

MAX_AGE = 300  # seconds a LogoutRequest stays acceptable, beyond the clock skew


@dataclass(frozen=True)
class LogoutRequest:
    id: str
    issuer: str
    name_id: str | None
    issue_instant: int = 0
    destination: str | None = None


@dataclass(frozen=True)
class LogoutResponse:
    in_response_to: str | None
    issuer: str
    success: bool


def _root(xml: bytes, tag: str) -> etree._Element:
    root = parse(xml)
    if root.tag != q("samlp", tag) or root.get("Version") != "2.0":
        raise SamlError(f"Not a SAML 2.0 samlp:{tag}.")
    return root


def parse_request(xml: bytes) -> LogoutRequest:
    """A LogoutRequest's ID, Issuer, NameID, IssueInstant and Destination (core 3.7.1)."""
    root = _root(xml, "LogoutRequest")
    request_id, issuer = root.get("ID", ""), text_of(root, "saml:Issuer")
    if not request_id or not issuer:
        raise SamlError("The logout request needs an ID and an Issuer.")
    return LogoutRequest(
        request_id,
        issuer,
        text_of(root, "saml:NameID"),
        parse_instant(root.get("IssueInstant")),
        root.get("Destination"),
    )


def parse_response(xml: bytes) -> LogoutResponse:
    """A LogoutResponse's InResponseTo, Issuer and whether it says Success (core 3.7.2)."""
    root = _root(xml, "LogoutResponse")
    issuer = text_of(root, "saml:Issuer")
    if not issuer:
        raise SamlError("The logout response has no Issuer.")
    code = root.find("samlp:Status/samlp:StatusCode", NS)
    ok = code is not None and code.get("Value") == STATUS + "Success"
    return LogoutResponse(root.get("InResponseTo"), issuer, ok)


def check_request(req: LogoutRequest, here: str, now: int, skew: int, signed: bool) -> None:
    """A LogoutRequest is for ``here``, our SLO endpoint (its Destination, which a signed one
    must carry: bindings 3.4.5.2 and 3.5.5.2), and recent (IssueInstant within the clock skew
    and five minutes of ``now``); else SamlError. The caller makes sure it is used once."""
    if req.destination != here and (signed or req.destination is not None):
        raise SamlError("The logout request is not addressed to this endpoint.")
    if abs(req.issue_instant - now) > skew + MAX_AGE:
        raise SamlError("The logout request is too old or from the future.")


def _message(tag: str, issuer: str, destination: str, now: int) -> etree._Element:
    root = etree.Element(q("samlp", tag), nsmap={"samlp": NS["samlp"], "saml": NS["saml"]})
    root.set("ID", new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", instant(now))
    root.set("Destination", destination)
    etree.SubElement(root, q("saml", "Issuer")).text = issuer
    return root


def build_request(
    issuer: str,
    destination: str,
    name_id: str,
    name_id_format: str,
    sp_entity: str,
    session_index: str,
    now: int,
) -> tuple[str, bytes]:
    root = _message("LogoutRequest", issuer, destination, now)
    nid = etree.SubElement(
        root,
        q("saml", "NameID"),
        Format=name_id_format,
        SPNameQualifier=sp_entity,
        NameQualifier=issuer,
    )
    nid.text = name_id
    etree.SubElement(root, q("samlp", "SessionIndex")).text = session_index
    return root.get("ID", ""), bytes(etree.tostring(root))


def build_response(
    issuer: str,
    destination: str,
    in_response_to: str,
    now: int,
    status: str = "Success",
    second: str | None = None,
) -> bytes:
    """A LogoutResponse with ``status`` and the nested ``second`` status code (core 3.2.2.2)."""
    root = _message("LogoutResponse", issuer, destination, now)
    root.set("InResponseTo", in_response_to)
    status_el = etree.SubElement(root, q("samlp", "Status"))
    code = etree.SubElement(status_el, q("samlp", "StatusCode"), Value=STATUS + status)
    if second:
        etree.SubElement(code, q("samlp", "StatusCode"), Value=STATUS + second)
    return bytes(etree.tostring(root))


def signed(xml: bytes, key_pem: bytes, cert_pem: str) -> bytes:
    """Our own message with an enveloped signature after its Issuer (for HTTP-POST)."""
    return bytes(etree.tostring(sign(etree.fromstring(xml), Signer(key_pem, cert_pem))))


def redirect_url(
    location: str, param: str, xml: bytes, relay_state: str | None, key_pem: bytes
) -> str:
    """HTTP-Redirect binding (SAML bindings 3.4.4.1): DEFLATE, base64, signed query."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    encoded = base64.b64encode(deflater.compress(xml) + deflater.flush()).decode()
    query = f"{param}={quote_plus(encoded)}"
    if relay_state is not None:
        query += f"&RelayState={quote_plus(relay_state)}"
    return location + ("&" if "?" in location else "?") + sign_redirect(query, key_pem)
