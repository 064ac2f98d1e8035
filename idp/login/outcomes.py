"""Sign-ins and step-ups counted in Prometheus (idp.metrics SIGN_INS and STEP_UPS).

Label values are fixed names: the step comes from the form, so a step that names no factor
kind counts as ``other``, and the number of series stays bounded.
"""

from __future__ import annotations

from factors.kinds import KINDS
from flows.errors import AccountLocked
from flows.steps import Outcome, StepResult
from idp.metrics import SIGN_INS, STEP_UPS


def factor_of_step(step: str) -> str:
    """The factor kind a login step checks (``verify_totp`` -> ``totp``)."""
    if step in ("identify", "password"):
        return "password"
    kind = step.removeprefix("verify_").removeprefix("enroll_")
    return kind if kind in KINDS else "other"


def answered(tenant: str, step: str, result: StepResult | None, refused: bool) -> None:
    """An answer that did not go on: ``locked`` when brute-force protection refused it
    unchecked (``refused``: the throttle said so; or the account is locked), ``failure``
    for a wrong password or code or a sign-in refused (a disabled account)."""
    if result is None:
        return
    if refused or result.message == AccountLocked.message:
        SIGN_INS.labels(tenant, "locked", factor_of_step(step)).inc()
    elif result.rejected or result.outcome is Outcome.FAIL:
        SIGN_INS.labels(tenant, "failure", factor_of_step(step)).inc()


def signed_in(tenant: str, kinds: list[str], stepped_up: bool) -> None:
    """A sign-in completed with the factor ``kinds`` this flow verified, in order (e.g.
    ``password+totp``); ``stepped_up``: it raised an application's session to a higher
    level (the step-up that OIDC or SAML requested is met)."""
    SIGN_INS.labels(tenant, "success", "+".join(dict.fromkeys(kinds)) or "none").inc()
    if stepped_up:
        STEP_UPS.labels(tenant, "met").inc()


def step_up_requested(tenant: str) -> None:
    """An application asked more than the signed-in session holds; a login flow starts."""
    STEP_UPS.labels(tenant, "requested").inc()
