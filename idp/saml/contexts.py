"""SAML authentication context class references and assurance levels (DESIGN.md table), and
RequestedAuthnContext comparison (SAML 2.0 core section 3.3.2.2.1)."""

from __future__ import annotations

from dataclasses import dataclass

from idp.saml.errors import Unsatisfiable

PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
REFEDS_SFA = "https://refeds.org/profile/sfa"
REFEDS_MFA = "https://refeds.org/profile/mfa"
LOA3 = "urn:stepwise:loa:3"
LEVELS = {PPT: 1, REFEDS_SFA: 1, REFEDS_MFA: 2, LOA3: 3}
DEFAULT = {1: PPT, 2: REFEDS_MFA, 3: LOA3}
COMPARISONS = ("exact", "minimum", "better", "maximum")
UNSUPPORTED = "The requested authentication context is not supported."


@dataclass(frozen=True)
class Requested:
    """A RequestedAuthnContext: class refs and how the achieved one must compare."""

    refs: tuple[str, ...] = ()
    comparison: str = "exact"

    def needed_level(self) -> int:
        """The lowest level that can satisfy the request (0: nothing asked)."""
        known = [LEVELS[r] for r in self.refs if r in LEVELS]
        if not self.refs:
            return 0
        if not known:
            raise Unsatisfiable(UNSUPPORTED)  # no requested class is one we know
        if self.comparison == "better":
            if min(known) >= 3:
                raise Unsatisfiable(UNSUPPORTED)  # nothing is better than the strongest
            return min(known) + 1
        if self.comparison == "maximum":
            return 1
        return min(known)  # exact and minimum: the weakest acceptable

    def class_ref(self, achieved: int) -> str:
        """The class to state for ``achieved``; Unsatisfiable when it does not fit."""
        known = [(r, LEVELS[r]) for r in self.refs if r in LEVELS]
        if not self.refs:
            return DEFAULT[max(1, min(achieved, 3))]
        if self.comparison == "exact":
            for ref, level in known:
                if level <= achieved:
                    return ref
        elif self.comparison == "minimum":
            if achieved >= min(level for _, level in known):
                return DEFAULT[max(1, min(achieved, 3))]
        elif self.comparison == "better":
            if achieved > min(level for _, level in known):
                return DEFAULT[max(1, min(achieved, 3))]
        else:  # maximum: the strongest we reached that is not above the maximum
            ceiling = max(level for _, level in known)
            if achieved >= 1:
                return DEFAULT[min(achieved, ceiling)]
        raise Unsatisfiable()  # the authentication does not meet the requested context
