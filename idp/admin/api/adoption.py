"""Admin API: MFA adoption (the console's overview; the figures and their definitions are
:mod:`idp.adoption`'s)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from factors import backup
from idp import adoption as figures
from idp.admin.api.core import Call, operation
from idp.clock import now


class States(BaseModel):
    """Users by MFA state; disabled users are counted only in ``disabled``."""

    on: int = Field(ge=0, description="asked for a second factor at every login")
    enrolled: int = Field(ge=0, description="hold a second factor, MFA not on")
    none: int = Field(ge=0, description="no second factor, MFA not on")
    on_without_factor: int = Field(ge=0, description="of `on`: no factor yet")
    disabled: int = Field(ge=0)
    total: int = Field(ge=0, description="on + enrolled + none")


class KindFigure(BaseModel):
    """Users (not disabled) holding at least one factor of the kind, and how many factors."""

    kind: Literal["totp", "sms", "email", "webauthn", "passkey"]
    label: str
    users: int = Field(ge=0)
    factors: int = Field(ge=0)


class BackupCodes(BaseModel):
    """Users (not disabled) by unused backup codes left."""

    none_left: int = Field(ge=0, description="users with a second factor and no unused code")
    low: int = Field(ge=0, description="1 to low_threshold left")
    plenty: int = Field(ge=0, description="more than low_threshold left")
    low_threshold: int = Field(ge=0)


class AdminWithoutMfa(BaseModel):
    """An admin or owner who can sign in without a second factor."""

    username: str
    role: Literal["admin", "owner"]
    mfa_on: bool
    enrolled: bool


class EnrolmentDay(BaseModel):
    """One UTC day: second factors added (audit log) and how many of them still exist."""

    day: str = Field(description="YYYY-MM-DD (UTC)")
    added: int = Field(ge=0)
    still_enrolled: int = Field(ge=0)


class Adoption(BaseModel):
    """MFA adoption at a glance, counted from the tenant's tables when asked."""

    states: States
    kinds: list[KindFigure]
    backup_codes: BackupCodes
    admins_without_mfa: list[AdminWithoutMfa] = Field(
        description=f"owners first, at most {figures.ADMIN_LIST_LIMIT}"
    )
    admins_without_mfa_total: int = Field(ge=0)
    enrolments: list[EnrolmentDay] = Field(
        description=f"the last {figures.WINDOW_DAYS} days, oldest first, ending today (UTC)"
    )
    generated_at: int = Field(ge=0, description="Unix seconds")


def adoption_of(a: figures.Adoption) -> Adoption:
    s = a.states
    return Adoption(
        states=States(
            on=s.on,
            enrolled=s.enrolled,
            none=s.none,
            on_without_factor=s.on_without_factor,
            disabled=s.disabled,
            total=s.total,
        ),
        kinds=[KindFigure.model_validate(k, from_attributes=True) for k in a.kinds],
        backup_codes=BackupCodes(
            none_left=a.backup_codes.none_left,
            low=a.backup_codes.low,
            plenty=a.backup_codes.plenty,
            low_threshold=backup.LOW_WARNING,
        ),
        admins_without_mfa=[
            AdminWithoutMfa.model_validate(g, from_attributes=True) for g in a.admins_without_mfa
        ],
        admins_without_mfa_total=a.admins_without_mfa_total,
        enrolments=[EnrolmentDay(day=figures.day_iso(d.start), added=d.added,
                                 still_enrolled=d.still_enrolled) for d in a.enrolments],
        generated_at=a.generated_at,
    )  # fmt: skip


@operation("GET", "/adoption", summary="Read MFA adoption figures", tag="adoption",
           response=Adoption)  # fmt: skip
def get_adoption(call: Call) -> Adoption:
    return adoption_of(figures.adoption(call.s, call.tenant, now()))
