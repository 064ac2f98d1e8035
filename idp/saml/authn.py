"""AuthnRequest (SAML 2.0 core section 3.4) over the HTTP-Redirect and HTTP-POST bindings
(SAML 2.0 bindings sections 3.4 and 3.5): decoded with size limits, parsed safely, checked."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from idp.saml.contexts import COMPARISONS, Requested
from idp.saml.errors import SamlError
from idp.saml.xml import NS, parse, q, text_of
from idp.untrusted import ascii_int

MAX_ENCODED = 64 * 1024
MAX_INFLATED = 256 * 1024


@dataclass
class AuthnRequest:
    id: str
    issuer: str
    issue_instant: int
    acs_url: str | None = None
    acs_index: int | None = None
    force_authn: bool = False
    is_passive: bool = False
    refs: list[str] = field(default_factory=list)
    comparison: str = "exact"
    nameid_format: str | None = None
    relay_state: str | None = None
    binding: str = "redirect"
    key: str = ""  # our handle while the user signs in

    @property
    def requested(self) -> Requested:
        return Requested(tuple(self.refs), self.comparison)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> AuthnRequest:
        data: dict[str, Any] = json.loads(raw)
        return cls(**data)


def decode(value: str, deflated: bool) -> bytes:
    """The XML of a ``SAMLRequest``: base64, and raw DEFLATE for HTTP-Redirect, bounded."""
    if len(value) > MAX_ENCODED:
        raise SamlError("The SAML request is too large.")
    try:
        raw = base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        raise SamlError("The SAML request is not base64.") from None
    if not deflated:
        if raw.lstrip()[:1] == b"<":
            return raw
        # Some SPs (node-saml) DEFLATE over HTTP-POST too, against bindings 3.5.4: accept it.
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(raw, MAX_INFLATED)
    except zlib.error:
        raise SamlError("The SAML request is not DEFLATE-compressed.") from None
    if inflater.unconsumed_tail:
        raise SamlError("The SAML request is too large.")
    return out


def parse_instant(value: str | None) -> int:
    """An ``xs:dateTime`` IssueInstant (core 1.3.3) in seconds since the epoch, UTC if unzoned."""
    if not value:
        raise SamlError("The request has no IssueInstant.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SamlError("IssueInstant is not a date and time.") from None
    return int(parsed.replace(tzinfo=parsed.tzinfo or UTC).timestamp())


def parse_authn_request(xml: bytes, now: int, skew: int, binding: str) -> AuthnRequest:
    """Parse and check an AuthnRequest, sent at most ``skew`` + 5 minutes from ``now``; the SP
    and its ACS are checked by the caller. SamlError (or its XmlError) says what is wrong."""
    root = parse(xml)
    if root.tag != q("samlp", "AuthnRequest"):
        raise SamlError("Not a samlp:AuthnRequest.")
    if root.get("Version") != "2.0":
        raise SamlError("Only SAML 2.0 requests.", "version_mismatch")
    request_id, issuer = root.get("ID", ""), text_of(root, "saml:Issuer")
    if not request_id or not issuer or len(request_id) > 256 or len(issuer) > 1024:
        raise SamlError("The request needs an ID and an Issuer.")
    instant = parse_instant(root.get("IssueInstant"))
    if abs(instant - now) > skew + 300:
        raise SamlError("The request is too old or from the future.")
    req = AuthnRequest(id=request_id, issuer=issuer, issue_instant=instant, binding=binding)
    req.acs_url = root.get("AssertionConsumerServiceURL")
    index = root.get("AssertionConsumerServiceIndex")
    if index is not None:
        req.acs_index = ascii_int(index, 5)
        if req.acs_index is None:
            raise SamlError("AssertionConsumerServiceIndex is not a number.")
    req.force_authn = root.get("ForceAuthn") in ("true", "1")
    req.is_passive = root.get("IsPassive") in ("true", "1")
    policy = root.find("samlp:NameIDPolicy", NS)
    if policy is not None:
        req.nameid_format = policy.get("Format")
    context = root.find("samlp:RequestedAuthnContext", NS)
    if context is not None:
        req.comparison = context.get("Comparison", "exact")
        if req.comparison not in COMPARISONS:
            raise SamlError("Unknown RequestedAuthnContext Comparison.")
        req.refs = [
            r.text.strip() for r in context.findall("saml:AuthnContextClassRef", NS) if r.text
        ][:10]
    return req
