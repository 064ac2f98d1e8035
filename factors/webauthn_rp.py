"""WebAuthn (W3C Web Authentication Level 3) on top of py_webauthn: security keys and passkeys.

The relying party's side only: options for ``navigator.credentials.create()`` / ``.get()``,
and verification of what the browser returns (challenge, origin, rp.id, signature, flags).
Attestation is ``none`` (privacy; no vendor lists to maintain). A *passkey* is a discoverable
credential created with user verification required; a *security key* is a second factor
whose user verification is only preferred.

amr values (RFC 8176 section 2): ``hwk`` for a device-bound key, ``swk`` for a synced one
(backup eligible), ``user`` (presence test), ``pin`` when the authenticator verified the user,
and ``mfa`` then too: possession plus PIN or biometric is two factors on its own.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from factors.errors import InvalidCredentials

ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
TIMEOUT_MS = 120_000
MAX_RESPONSE = 16_384  # bytes of JSON from the browser


class InvalidAssertion(InvalidCredentials):
    """The browser's response did not verify; ``reason`` says why (for the audit log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RelyingParty:
    """This site as WebAuthn sees it: ``id`` is the host, ``origin`` the scheme://host:port."""

    id: str
    name: str
    origin: str


@dataclass(frozen=True)
class NewCredential:
    credential_id: str  # base64url
    public_key: bytes  # COSE
    sign_count: int
    aaguid: str
    user_verified: bool
    synced: bool


@dataclass(frozen=True)
class Assertion:
    credential_id: str
    sign_count: int
    user_verified: bool
    synced: bool
    cloned: bool  # the sign count went backwards: a copy of the key may exist

    def amr(self) -> tuple[str, ...]:
        return amr_for(self.synced, self.user_verified)


def amr_for(synced: bool, user_verified: bool) -> tuple[str, ...]:
    key = "swk" if synced else "hwk"
    return (key, "user", "pin", "mfa") if user_verified else (key, "user")


def new_challenge() -> bytes:
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class Nonce:
    """A challenge handed to the browser and not yet answered (kept in the flow state).

    It is taken out of the flow before the answer is checked, so each is used at most once.
    """

    value: bytes

    @classmethod
    def new(cls) -> Nonce:
        return cls(new_challenge())

    def to_json(self) -> str:
        return bytes_to_base64url(self.value)

    @classmethod
    def from_json(cls, text: str) -> Nonce:
        return cls(base64url_to_bytes(text))


def enroll_begin(
    rp: RelyingParty,
    user_handle: bytes,
    username: str,
    exclude: list[str],
    passkey: bool,
    challenge: bytes,
) -> str:
    """``PublicKeyCredentialCreationOptions`` as JSON for the browser."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=user_handle,
        user_name=username,
        user_display_name=username,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=(
                ResidentKeyRequirement.REQUIRED if passkey else ResidentKeyRequirement.DISCOURAGED
            ),
            user_verification=(
                UserVerificationRequirement.REQUIRED
                if passkey
                else UserVerificationRequirement.PREFERRED
            ),
        ),
        exclude_credentials=[_descriptor(c) for c in exclude],
        supported_pub_key_algs=ALGORITHMS,
    )
    return str(options_to_json(options))


def _descriptor(credential_id: str) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(credential_id))


def _parse(response: str) -> dict[str, object]:
    if len(response) > MAX_RESPONSE:
        raise InvalidAssertion("response too large")
    try:
        data = json.loads(response)
    except ValueError:
        raise InvalidAssertion("response is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidAssertion("response is not an object")
    return data


def enroll_finish(
    rp: RelyingParty, response: str, challenge: bytes, passkey: bool
) -> NewCredential:
    """Verify a registration; raise :class:`InvalidAssertion` with the reason."""
    try:
        found = verify_registration_response(
            credential=_parse(response),
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=passkey,
            supported_pub_key_algs=ALGORITHMS,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise InvalidAssertion(str(exc)[:200] or exc.__class__.__name__) from None
    return NewCredential(
        credential_id=bytes_to_base64url(found.credential_id),
        public_key=found.credential_public_key,
        sign_count=found.sign_count,
        aaguid=str(found.aaguid),
        user_verified=found.user_verified,
        synced=found.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
    )


def challenge(rp: RelyingParty, allow: list[str], user_verification: bool, nonce: bytes) -> str:
    """``PublicKeyCredentialRequestOptions`` as JSON; ``allow=[]`` for a discoverable login."""
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=nonce,
        timeout=TIMEOUT_MS,
        allow_credentials=[_descriptor(c) for c in allow],
        user_verification=(
            UserVerificationRequirement.REQUIRED
            if user_verification
            else UserVerificationRequirement.PREFERRED
        ),
    )
    return str(options_to_json(options))


def credential_id_of(response: str) -> str:
    """The credential id a response names (to find its public key), or raise."""
    data = _parse(response)
    raw = data.get("rawId") or data.get("id")
    if not isinstance(raw, str) or not 0 < len(raw) <= 1400:
        raise InvalidAssertion("no credential id")
    return raw


def user_handle_of(response: str) -> str | None:
    data = _parse(response)
    inner = data.get("response")
    handle = inner.get("userHandle") if isinstance(inner, dict) else None
    return handle if isinstance(handle, str) and handle else None


def verify(
    rp: RelyingParty,
    response: str,
    nonce: bytes,
    public_key: bytes,
    sign_count: int,
    require_uv: bool,
) -> Assertion:
    """Verify an assertion against the stored key; raise :class:`InvalidAssertion`.

    A sign count that does not increase (when either side is non-zero) is reported as
    ``cloned`` rather than refused here: the caller's policy decides (WebAuthn L3 6.1.1).
    """
    try:
        found = verify_authentication_response(
            credential=_parse(response),
            expected_challenge=nonce,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=public_key,
            credential_current_sign_count=0,
            require_user_verification=require_uv,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise InvalidAssertion(str(exc)[:200] or exc.__class__.__name__) from None
    new = found.new_sign_count
    return Assertion(
        credential_id=bytes_to_base64url(found.credential_id),
        sign_count=new,
        user_verified=found.user_verified,
        synced=found.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
        cloned=(new > 0 or sign_count > 0) and new <= sign_count,
    )
