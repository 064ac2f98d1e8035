"""Admin API: users and their MFA (the console's user pages)."""

from __future__ import annotations

from pydantic import BaseModel

from idp.admin.api.core import Body, Call, not_found, operation
from idp.directory import find_user
from idp.mfa import admin as mfa_admin
from idp.store.models import User


class Factor(BaseModel):
    kind: str
    label: str
    created_at: int
    last_used_at: int | None


class UserMfa(BaseModel):
    """A user's MFA state (never a secret)."""

    username: str
    role: str
    mfa_required: bool
    mfa_enabled: bool
    factors: list[Factor]
    backup_codes_left: int


class MfaReset(UserMfa):
    removed: int


class MfaRequirement(Body):
    required: bool


def user_of(call: Call, username: str) -> User:
    user = find_user(call.s, call.tenant, username)
    if user is None:
        raise not_found(f"user {username!r}")
    return user


@operation("GET", "/users/<username>/mfa", summary="Read a user's MFA", tag="users",
           response=UserMfa, errors=(404,))  # fmt: skip
def get_user_mfa(call: Call, username: str) -> UserMfa:
    return UserMfa.model_validate(mfa_admin.user_mfa_json(call.s, user_of(call, username)))


def _require(call: Call, username: str, body: MfaRequirement) -> UserMfa:
    user = user_of(call, username)
    mfa_admin.require_for_user(call.s, call.tenant, user, body.required, call.actor)
    return UserMfa.model_validate(mfa_admin.user_mfa_json(call.s, user))


@operation("PUT", "/users/<username>/mfa", summary="Require MFA for one user, or stop",
           tag="users", body=MfaRequirement, response=UserMfa, errors=(404,))  # fmt: skip
def put_user_mfa(call: Call, username: str, body: MfaRequirement) -> UserMfa:
    return _require(call, username, body)


@operation("PATCH", "/users/<username>/mfa", summary="Require MFA for one user, or stop",
           tag="users", body=MfaRequirement, response=UserMfa, errors=(404,))  # fmt: skip
def patch_user_mfa(call: Call, username: str, body: MfaRequirement) -> UserMfa:
    return _require(call, username, body)


@operation("POST", "/users/<username>/mfa/reset", summary="Reset a user's MFA", tag="users",
           response=MfaReset, errors=(404,))  # fmt: skip
def reset_user_mfa(call: Call, username: str) -> MfaReset:
    user = user_of(call, username)
    removed = mfa_admin.reset_user(call.s, call.svc, call.tenant, user, call.actor)
    return MfaReset.model_validate({**mfa_admin.user_mfa_json(call.s, user), "removed": removed})
