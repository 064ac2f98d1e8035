"""Flow state: plain JSON (never pickle), kept server-side with a TTL by the web layer.

A challenge the flow handed out has a typed slot per class (factors.kinds declares which
class each kind uses). A flow stored before these slots existed kept both challenges in one
``challenge`` dict: that key is ignored, so such a flow loads with nothing pending and the
user is asked to send a new code or use the key again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from factors.codes import Challenge
from factors.webauthn_rp import Nonce
from flows.context import VerifiedFactor
from flows.policy import Request

T = TypeVar("T")


def _optional(load: Callable[[Any], T], value: Any) -> T | None:
    return None if value is None else load(value)


@dataclass
class FlowState:
    """One sign-in in progress."""

    id: str
    tenant: str
    request: Request
    created_at: int
    return_to: str
    identified: bool = False
    reauth: bool = False  # identified by the session: the username cannot change
    username: str | None = None
    user_id: int | None = None
    verified: list[VerifiedFactor] = field(default_factory=list)
    # Where the browser goes after ``return_to`` (an application's redirect URI), so the web
    # layer can allow it as a form target; empty for flows that stay on this site.
    continue_to: str = ""
    # Second-factor progress. Secrets (``secret``, ``contact``, ``codes``) are sealed by the
    # web layer (encrypted under the data key) before they are put here.
    choice: str = ""  # the factor chosen to verify, ``kind:id`` or ``backup``
    enrolling: str = ""  # the kind being enrolled
    passkey: bool = False  # enrolling WebAuthn as a passkey (discoverable, UV required)
    secret: str = ""  # a TOTP secret being set up
    contact: str = ""  # a phone number or email address being verified
    sent_code: Challenge | None = None  # the code sent last, by SMS or email
    webauthn_challenge: Nonce | None = None  # made when a page asks for a key
    codes: str = ""  # new backup codes, until the user has seen them
    offer_skipped: bool = False
    # "Don't ask again on this browser" was ticked on a second-factor page of this flow.
    remember: bool = False

    def forget_challenges(self) -> None:
        """Drop the code sent and the WebAuthn challenge: neither may answer a later step."""
        self.sent_code = self.webauthn_challenge = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "tenant": self.tenant,
                "request": self.request.to_json(),
                "created_at": self.created_at,
                "return_to": self.return_to,
                "identified": self.identified,
                "reauth": self.reauth,
                "username": self.username,
                "user_id": self.user_id,
                "verified": [f.to_json() for f in self.verified],
                "continue_to": self.continue_to,
                "choice": self.choice,
                "enrolling": self.enrolling,
                "passkey": self.passkey,
                "secret": self.secret,
                "contact": self.contact,
                "sent_code": self.sent_code.to_json() if self.sent_code else None,
                "webauthn_challenge": (
                    self.webauthn_challenge.to_json() if self.webauthn_challenge else None
                ),
                "codes": self.codes,
                "offer_skipped": self.offer_skipped,
                "remember": self.remember,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> FlowState:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            id=str(data["id"]),
            tenant=str(data["tenant"]),
            request=Request.from_json(data["request"]),
            created_at=int(data["created_at"]),
            return_to=str(data["return_to"]),
            identified=bool(data["identified"]),
            reauth=bool(data.get("reauth", False)),
            username=data.get("username"),
            user_id=data.get("user_id"),
            verified=[VerifiedFactor.from_json(f) for f in data.get("verified", [])],
            continue_to=str(data.get("continue_to", "")),
            choice=str(data.get("choice", "")),
            enrolling=str(data.get("enrolling", "")),
            passkey=bool(data.get("passkey", False)),
            secret=str(data.get("secret", "")),
            contact=str(data.get("contact", "")),
            sent_code=_optional(Challenge.from_json, data.get("sent_code")),
            webauthn_challenge=_optional(Nonce.from_json, data.get("webauthn_challenge")),
            codes=str(data.get("codes", "")),
            offer_skipped=bool(data.get("offer_skipped", False)),
            remember=bool(data.get("remember", False)),
        )
