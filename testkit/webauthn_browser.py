"""A WebAuthn authenticator in Chromium, through the DevTools protocol (CDP's WebAuthn domain):
ctap2, built in, with resident keys and user verification, answering without a touch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page


def virtual_authenticator(page: Page) -> dict[str, Any]:
    """Add one to ``page``'s browser; returns its CDP session and authenticator id."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    found = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return {"cdp": cdp, "id": found["authenticatorId"]}
