import secrets

import pytest

from idp.crypto import DataCipher, DecryptionFailed


def test_round_trip_and_binding_to_purpose() -> None:
    c = DataCipher(secrets.token_urlsafe(32))
    blob = c.encrypt(b"top secret", "totp:1")
    assert b"top secret" not in blob
    assert c.decrypt(blob, "totp:1") == b"top secret"
    with pytest.raises(DecryptionFailed):
        c.decrypt(blob, "totp:2")  # moved to another row
    with pytest.raises(DecryptionFailed):
        c.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), "totp:1")
    with pytest.raises(DecryptionFailed):
        DataCipher(secrets.token_urlsafe(32)).decrypt(blob, "totp:1")
    with pytest.raises(DecryptionFailed):
        c.decrypt(b"\x02short", "totp:1")


def test_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        DataCipher(secrets.token_urlsafe(16))
