"""The HTTP-Redirect binding's query string (SAML 2.0 bindings 3.4.4.1), read once.

The detached signature covers the parameters' bytes exactly as the sender encoded them, and
the endpoint processes their decoded values. Both come from this one parse, so the message
whose signature is checked is the message that is processed. Names are decoded too
(``SAML%52equest`` is ``SAMLRequest``), and a name that occurs twice refuses the whole query:
one copy signed and another one read is exactly the ambiguity an attacker needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from idp.saml.errors import SamlError

MESSAGES = ("SAMLRequest", "SAMLResponse")
MAX_NAME = 64


@dataclass(frozen=True)
class Param:
    """One query parameter: its value as received (still percent-encoded) and decoded."""

    encoded: bytes
    value: str


@dataclass(frozen=True)
class RedirectQuery:
    """The parameters of an HTTP-Redirect binding query, each name at most once."""

    params: dict[str, Param]

    def get(self, name: str) -> str | None:
        """The decoded value of ``name``, or None when the query does not carry it."""
        param = self.params.get(name)
        return param.value if param is not None else None

    def values(self) -> dict[str, str]:
        """Every parameter's decoded value, by decoded name."""
        return {name: param.value for name, param in self.params.items()}

    def signed_octets(self) -> bytes:
        """``SAMLRequest=..[&RelayState=..]&SigAlg=..`` (or ``SAMLResponse=``), the values
        exactly as received: what ``Signature`` covers (SAML bindings 3.4.4.1)."""
        names = [m for m in MESSAGES if m in self.params] + ["RelayState", "SigAlg"]
        return b"&".join(
            name.encode() + b"=" + self.params[name].encoded
            for name in names
            if name in self.params
        )


def _decode(part: bytes) -> str:
    """application/x-www-form-urlencoded: ``+`` is a space, then percent-decoding, UTF-8."""
    try:
        return unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise SamlError("The request's query string is not UTF-8 text.") from None


def parse_query(query_string: bytes) -> RedirectQuery:
    """Split the raw query on ``&`` and ``=``; refuse a name seen twice (after decoding) and a
    query carrying both a SAMLRequest and a SAMLResponse."""
    params: dict[str, Param] = {}
    for pair in query_string.split(b"&"):
        if not pair:
            continue
        raw_name, _, encoded = pair.partition(b"=")
        name = _decode(raw_name)
        if name in params:
            shown = name if len(name) <= MAX_NAME else name[:MAX_NAME] + "..."
            raise SamlError(f"The request carries the parameter {shown!r} more than once.")
        params[name] = Param(encoded, _decode(encoded))
    if all(m in params for m in MESSAGES):
        raise SamlError("The request carries both a SAMLRequest and a SAMLResponse.")
    return RedirectQuery(params)
