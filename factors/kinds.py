"""Every kind of factor, declared once (DESIGN.md "Factor").

What a tenant may allow, the labels pages show, the ``amr`` values a verification reports,
which kinds need a sender and which resist phishing: each list elsewhere is derived from
:data:`KINDS`, so they cannot drift apart. A kind's ``name`` is its value in forms
(``name="factor"``), in choices (``kind:id``) and in storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from factors import codes
from factors import webauthn_rp as wa

# What a flow keeps between handing out a challenge and checking the answer.
ChallengeState = type[codes.Challenge] | type[wa.Nonce]


@dataclass(frozen=True)
class Kind:
    """One kind of authenticator.

    ``amr``: every value (RFC 8176 section 2) a verification of this kind may report.
    ``allowable``: a second factor a tenant can allow (backup codes come with any of them).
    ``needs_sender``: its codes go out by SMS or mail, so the deployment needs that sender;
    ``contact_field`` names the form input where the user types the target.
    ``challenge``: the class of the flow's challenge state for this kind, if any.
    ``variant_of``: the kind it is stored as (a passkey is a WebAuthn credential).
    """

    name: str
    amr: tuple[str, ...]
    label: str
    phishing_resistant: bool = False
    allowable: bool = False
    needs_sender: bool = False
    contact_field: str = ""
    challenge: ChallengeState | None = None
    variant_of: str = ""

    def __post_init__(self) -> None:
        if not (self.name and self.amr and self.label):
            raise ValueError(f"factor kind {self.name!r} needs a name, amr values and a label")
        if self.needs_sender != bool(self.contact_field):
            raise ValueError(f"factor kind {self.name!r}: a sent code needs a contact field")
        if self.needs_sender and self.challenge is not codes.Challenge:
            raise ValueError(f"factor kind {self.name!r}: a sent code keeps a codes.Challenge")


_WEBAUTHN_AMR = ("hwk", "swk", "user", "pin", "mfa")  # see webauthn_rp.amr_for

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("password", ("pwd",), "Password"),
        Kind("totp", ("otp",), "Authenticator app", allowable=True),
        Kind(
            "webauthn",
            _WEBAUTHN_AMR,
            "Security key",
            phishing_resistant=True,
            allowable=True,
            challenge=wa.Nonce,
        ),
        Kind(
            "passkey",
            _WEBAUTHN_AMR,
            "Passkey",
            phishing_resistant=True,
            challenge=wa.Nonce,
            variant_of="webauthn",
        ),
        Kind(
            "sms",
            ("sms",),
            "Text message",
            allowable=True,
            needs_sender=True,
            contact_field="phone",
            challenge=codes.Challenge,
        ),
        Kind(
            "email",
            ("otp",),
            "Email",
            allowable=True,
            needs_sender=True,
            contact_field="email",
            challenge=codes.Challenge,
        ),
        Kind("backup", ("otp",), "Backup code"),
    )
}

# The second factors a tenant can allow, in the order the console lists them.
ALLOWABLE = tuple(k.name for k in KINDS.values() if k.allowable)
# Allowable kinds that reach level 3 (DESIGN.md "Assurance levels").
PHISHING_RESISTANT = tuple(k for k in ALLOWABLE if KINDS[k].phishing_resistant)


def enrolment_choices(kind: str) -> tuple[str, ...]:
    """What a user may pick to set up an allowed ``kind``: itself and its variants."""
    return tuple(k.name for k in KINDS.values() if kind in (k.name, k.variant_of))


def stored_as(name: str) -> str:
    """The kind a choice is enrolled and stored as (``passkey`` -> ``webauthn``)."""
    return KINDS[name].variant_of or name
