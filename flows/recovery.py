"""Account recovery (a forgotten password): which second-factor step still stands between an
emailed reset link and the new password.

The link proves the mailbox only. A user who holds a second factor must verify one, in the
same flow, at the highest level they hold: a WebAuthn credential when they have one, else
any of their second factors or a backup code (DESIGN.md "Binding rule", NIST SP 800-63B-4
section 4.2 on account recovery). A user whose factors cannot be verified here raises
:class:`NoUsableFactor`: only an administrator can help, there is no self-service bypass.
Only this flow's factors count; the steps are the login's (flows.second_factor,
flows.webauthn_steps).
"""

from __future__ import annotations

from collections.abc import Sequence

from factors.kinds import PHISHING_RESISTANT
from flows.context import VerifiedFactor
from flows.errors import NoUsableFactor
from flows.plan import choices, chosen
from flows.policy import UserFacts, kind_of

SECOND_FACTORS = frozenset({"totp", "sms", "email", "webauthn", "backup"})


def proves(user: UserFacts, factor: VerifiedFactor) -> bool:
    """Whether ``factor`` is a second factor at the highest level ``user`` holds."""
    if user.holds_phishing_resistant:
        return factor.kind in PHISHING_RESISTANT
    return factor.kind in SECOND_FACTORS


def plan(user: UserFacts, verified: Sequence[VerifiedFactor], choice: str = "") -> list[str]:
    """The steps missing before a new password may be set; ``[]`` when none are.

    ``verified``: the factors this recovery flow has verified; ``choice``: the factor the
    user picked (``kind:id`` or ``backup``).
    """
    if not user.has_second_factor:
        return []  # the password is the only factor: the emailed link is the recovery
    if any(proves(user, f) for f in verified):
        return []
    if user.holds_phishing_resistant:
        if any(kind_of(c) in PHISHING_RESISTANT for c in user.enrolled):
            return ["verify_webauthn"]
        raise NoUsableFactor()
    if not user.held:
        return ["verify_backup"]  # backup codes left without a factor: one of them will do
    picked = chosen(user, choice)
    if picked:
        return [f"verify_{kind_of(picked)}"]
    if choices(user):
        return ["choose"]
    raise NoUsableFactor()
