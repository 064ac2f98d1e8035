"""Encryption at rest: AES-256-GCM under the deployment's data key (IDP_DATA_KEY).

Every ciphertext is bound to its purpose with associated data (for example the table, tenant
and key id), so a value copied into another row does not decrypt there.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x01"


class DecryptionFailed(Exception):
    """The value was tampered with, moved, or encrypted under another data key."""


class DataCipher:
    def __init__(self, key_b64url: str) -> None:
        key = base64.urlsafe_b64decode(key_b64url + "=" * (-len(key_b64url) % 4))
        if len(key) != 32:
            raise ValueError("the data key must be 32 bytes")
        self._aead = AESGCM(key)
        self._key = key

    def derive(self, purpose: str) -> bytes:
        """A 256-bit key for ``purpose`` (HKDF-SHA256, RFC 5869), independent of the data key."""
        return HKDF(hashes.SHA256(), 32, salt=None, info=purpose.encode()).derive(self._key)

    def encrypt(self, plaintext: bytes, purpose: str) -> bytes:
        nonce = os.urandom(12)
        return VERSION + nonce + self._aead.encrypt(nonce, plaintext, purpose.encode())

    def decrypt(self, blob: bytes, purpose: str) -> bytes:
        if len(blob) < 29 or blob[:1] != VERSION:
            raise DecryptionFailed("unknown ciphertext format")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], purpose.encode())
        except InvalidTag:
            raise DecryptionFailed("ciphertext does not verify") from None
