"""A software WebAuthn authenticator for server-side tests: it answers the options a page
offers as a browser with a security key would, and can be told to lie (another origin,
another rp.id, an old sign count), so the server's checks can be seen to hold."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

OPTIONS = re.compile(r'<script type="application/json" id="webauthn-options">(.*?)</script>', re.S)
UP, UV, AT = 0x01, 0x04, 0x40


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def options_in(html: str) -> dict[str, Any]:
    found = OPTIONS.search(html)
    assert found, "no WebAuthn options on the page"
    return dict(json.loads(found.group(1)))


class SoftKey:
    """One ES256 credential on a pretend authenticator."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.user_handle: bytes | None = None

    def _cose(self) -> bytes:
        nums = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: nums.x.to_bytes(32, "big"), -3: nums.y.to_bytes(32, "big")}
        )

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    def register(self, options: dict[str, Any], origin: str, uv: bool = True) -> str:
        """The JSON a browser posts after ``navigator.credentials.create()``."""
        self.user_handle = unb64(options["user"]["id"])
        rp_hash = hashlib.sha256(options["rp"]["id"].encode()).digest()
        attested = (
            b"\0" * 16
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose()
        )
        flags = UP | AT | (UV if uv else 0)
        auth_data = rp_hash + bytes([flags]) + struct.pack(">I", self.sign_count) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client = self._client_data("webauthn.create", options["challenge"], origin)
        return json.dumps(
            {
                "id": b64(self.credential_id),
                "rawId": b64(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64(client),
                    "attestationObject": b64(attestation),
                    "transports": ["usb"],
                },
                "clientExtensionResults": {},
            }
        )

    def sign(
        self,
        options: dict[str, Any],
        origin: str,
        uv: bool = True,
        rp_id: str | None = None,
        count: int | None = None,
    ) -> str:
        """The JSON a browser posts after ``navigator.credentials.get()``."""
        self.sign_count = self.sign_count + 1 if count is None else count
        rp_hash = hashlib.sha256((rp_id or options["rpId"]).encode()).digest()
        auth_data = rp_hash + bytes([UP | (UV if uv else 0)]) + struct.pack(">I", self.sign_count)
        client = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256())
        )
        response: dict[str, Any] = {
            "clientDataJSON": b64(client),
            "authenticatorData": b64(auth_data),
            "signature": b64(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64(self.user_handle)
        return json.dumps(
            {
                "id": b64(self.credential_id),
                "rawId": b64(self.credential_id),
                "type": "public-key",
                "response": response,
                "clientExtensionResults": {},
            }
        )
