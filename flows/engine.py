"""The engine: advances a :class:`FlowState` by running the current step on the user's answer.

After a step passes, the engine keeps going while the answer also holds the next step's
fields, so one form can carry username and password together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flows.context import merge
from flows.state import FlowState
from flows.steps import Env, Outcome, Step, StepResult

Planner = Callable[[FlowState], list[str]]


@dataclass(frozen=True)
class Progress:
    """Where a flow stands after a submission."""

    remaining: list[str]
    result: StepResult | None = None

    @property
    def finished(self) -> bool:
        return not self.remaining and (self.result is None or self.result.outcome is Outcome.OK)

    @property
    def failed(self) -> bool:
        return self.result is not None and self.result.outcome is Outcome.FAIL


class Engine:
    """Runs steps from a registry in the order the planner gives."""

    def __init__(self, steps: Mapping[str, Step], planner: Planner) -> None:
        self.steps, self.planner = steps, planner

    def remaining(self, state: FlowState) -> list[str]:
        return self.planner(state)

    def submit(
        self, state: FlowState, step_name: str, answer: dict[str, str], env: Env
    ) -> Progress:
        """Run ``step_name`` (the current step) and those after it whose answers are given."""
        remaining = self.planner(state)
        if not remaining or remaining[0] != step_name:
            return Progress(remaining)  # a stale or replayed form: show the current step again
        while remaining:
            step = self.steps[remaining[0]]
            result = step.run(state, answer, env)
            if result.outcome is not Outcome.OK:
                return Progress(self.planner(state), result)  # a step may change the plan
            if result.factor is not None:
                state.verified = merge(state.verified, result.factor)
            remaining = self.planner(state)
            following = self.steps[remaining[0]].fields if remaining else ()
            # Go on only with fields this step did not take: a code or a key's response is
            # never handed on to the step after it (verify, then enrol, both take ``code``).
            if not following or set(following) & set(step.fields):
                return Progress(remaining, result)
            if not all(answer.get(f) for f in following):
                return Progress(remaining, result)
        return Progress(remaining)
