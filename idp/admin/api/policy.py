"""Admin API: the tenant's MFA policy (the console's policy page)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from idp.admin.api.core import Body, Call, Reply, operation
from idp.mfa import admin as mfa_admin

Factor = Literal["totp", "webauthn", "sms", "email"]


class Policy(BaseModel):
    """The tenant's MFA policy."""

    mode: Literal["off", "optional", "required"]
    scope: Literal["all", "admins"]
    apply: Literal["next_login", "immediate"]
    factors: list[Factor]
    reoffer_days: int = Field(ge=0, le=mfa_admin.MAX_REOFFER_DAYS)
    totp_two_codes: bool
    admins_phishing_resistant: bool
    webauthn_block_cloned: bool


class PolicyChange(Body):
    """The fields to change; those left out keep their value (PUT and PATCH alike)."""

    mode: Literal["off", "optional", "required"] | None = None
    scope: Literal["all", "admins"] | None = None
    apply: Literal["next_login", "immediate"] | None = None
    factors: list[Factor] | None = Field(None, min_length=1)
    reoffer_days: int | None = Field(None, ge=0, le=mfa_admin.MAX_REOFFER_DAYS)
    totp_two_codes: bool | None = None
    admins_phishing_resistant: bool | None = None
    webauthn_block_cloned: bool | None = None


@operation("GET", "/mfa-policy", summary="Read the MFA policy", tag="policy",
           response=Policy, etag=True)  # fmt: skip
def get_policy(call: Call) -> Policy:
    return Policy.model_validate(mfa_admin.policy_json(call.tenant))


def _change(call: Call, body: PolicyChange) -> Reply:
    call.if_match(Policy.model_validate(mfa_admin.policy_json(call.tenant)))
    changes = body.model_dump(exclude_none=True)
    after = mfa_admin.set_policy(call.s, call.tenant, changes, call.actor)
    return Reply(Policy.model_validate(after), etag=True)


@operation("PUT", "/mfa-policy", summary="Change the MFA policy", tag="policy",
           body=PolicyChange, response=Policy, etag=True, errors=(412,))  # fmt: skip
def put_policy(call: Call, body: PolicyChange) -> Reply:
    return _change(call, body)


@operation("PATCH", "/mfa-policy", summary="Change the MFA policy", tag="policy",
           body=PolicyChange, response=Policy, etag=True, errors=(412,))  # fmt: skip
def patch_policy(call: Call, body: PolicyChange) -> Reply:
    return _change(call, body)
