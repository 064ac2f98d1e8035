"""Every step of the flow engine by name (the engine's registry)."""

from __future__ import annotations

from collections.abc import Callable

from flows.policy import TenantPolicy
from flows.second_factor import (
    BackupCodesStep,
    ChooseStep,
    EnrollEmailStep,
    EnrollPhishingResistantStep,
    EnrollSmsStep,
    EnrollStep,
    EnrollTotpStep,
    OfferStep,
    VerifyBackupStep,
    VerifyEmailStep,
    VerifySmsStep,
    VerifyTotpStep,
)
from flows.state import FlowState
from flows.steps import PasswordStep, Step
from flows.webauthn_steps import EnrollWebauthnStep, PasskeyIdentifyStep, VerifyWebauthnStep


def registry(policy: Callable[[FlowState], TenantPolicy]) -> dict[str, Step]:
    """Every step by name; ``policy`` gives the tenant policy of a flow."""
    steps: list[Step] = [
        PasskeyIdentifyStep(policy),
        PasswordStep(),
        ChooseStep(),
        VerifyTotpStep(),
        VerifySmsStep(),
        VerifyEmailStep(),
        VerifyBackupStep(),
        VerifyWebauthnStep(),
        EnrollStep(policy),
        OfferStep(policy),
        EnrollPhishingResistantStep(policy),
        EnrollTotpStep(policy),
        EnrollSmsStep(),
        EnrollEmailStep(),
        EnrollWebauthnStep(),
        BackupCodesStep(),
    ]
    return {s.name: s for s in steps}
