"""Admin API: the tenant's account settings (the console's Accounts page)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from idp import account_settings as settings
from idp.admin.api.core import Body, Call, Reply, operation

LOW, HIGH = settings.PASSWORD_MIN_ALONE
Domain = Annotated[str, StringConstraints(min_length=1, max_length=settings.DOMAIN_MAX)]


class AccountSettings(BaseModel):
    """Sign-up, signing in by email, password length and remembered browsers."""

    signup_enabled: bool = Field(description="anyone may create an account, once their "
                                 "email address is verified")  # fmt: skip
    signup_domains: list[str] = Field(description="sign-up is open only to addresses at these "
                                      "domains (IDNA form); empty: any domain")  # fmt: skip
    login_by_email: bool = Field(description="users may sign in with their verified email "
                                 "address as well as their username")  # fmt: skip
    password_min_alone: int = Field(ge=LOW, le=HIGH, description="minimum password length "
                                    "when the password is the account's only factor")  # fmt: skip
    remember_days: int = Field(ge=0, le=settings.REMEMBER_DAYS_MAX, description="days a "
                               "browser is remembered after a second factor; 0: never")  # fmt: skip


class AccountSettingsChange(Body):
    """The fields to change; those left out keep their value. A domain that no email
    address could end in is refused with 422."""

    signup_enabled: bool | None = None
    signup_domains: list[Domain] | None = Field(None, max_length=settings.MAX_DOMAINS)
    login_by_email: bool | None = None
    password_min_alone: int | None = Field(None, ge=LOW, le=HIGH)
    remember_days: int | None = Field(None, ge=0, le=settings.REMEMBER_DAYS_MAX)


@operation("GET", "/account-settings", summary="Read the account settings", tag="policy",
           response=AccountSettings, etag=True)  # fmt: skip
def get_account_settings(call: Call) -> AccountSettings:
    return AccountSettings.model_validate(settings.settings_json(call.tenant))


@operation("PATCH", "/account-settings", summary="Change the account settings", tag="policy",
           body=AccountSettingsChange, response=AccountSettings, etag=True,
           errors=(412,))  # fmt: skip
def patch_account_settings(call: Call, body: AccountSettingsChange) -> Reply:
    call.if_match(AccountSettings.model_validate(settings.settings_json(call.tenant)))
    changes = body.model_dump(exclude_none=True)
    after = settings.set_settings(call.s, call.tenant, changes, call.actor)
    return Reply(AccountSettings.model_validate(after), etag=True)
