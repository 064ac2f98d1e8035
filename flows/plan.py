"""The planner: compares what is required with what the session has, and lists missing steps.

It never decides more than the user has earned the right to see: until the password (or
another first factor) has passed, it plans only up to that step, so the plan reveals nothing
about an account's policy to someone who does not know its password.
"""

from __future__ import annotations

from collections.abc import Sequence

from flows.context import LEVEL_ONE_FACTOR, VerifiedFactor, level_of
from flows.errors import UnmetAuthenticationRequirements
from flows.policy import Request, TenantPolicy, UserFacts, required_level


def plan(
    request: Request,
    policy: TenantPolicy,
    user: UserFacts | None,
    identified: bool,
    achieved: Sequence[VerifiedFactor],
    second_factor_steps: Sequence[str] = (),
) -> list[str]:
    """Return the steps still missing, in order; ``[]`` when the login is complete.

    ``achieved`` holds the session's factors and this flow's, newest per kind.
    ``second_factor_steps`` names the steps that could raise this user's level.
    """
    if not identified:
        return ["identify", "password"]
    counting = tuple(f for f in achieved if f.at >= (request.not_before() or 0))
    if level_of(counting) < LEVEL_ONE_FACTOR:
        return ["password"]
    need = required_level(policy, user, request)
    if level_of(counting) >= need:
        return []
    if not second_factor_steps:
        raise UnmetAuthenticationRequirements()
    return [second_factor_steps[0]]
