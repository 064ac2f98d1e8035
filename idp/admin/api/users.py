"""Admin API: users and their MFA (the console's user pages, action for action)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from factors.password import MAX_LENGTH, MIN_LENGTH
from flows.steps import USERNAME_MAX
from idp import audit_log, clock, directory, profiles, remembered, user_sessions
from idp.admin.api.core import (
    Body,
    Call,
    Page,
    Query,
    Reply,
    not_found,
    operation,
    page_of,
    paginate,
)
from idp.devices import label as device_of
from idp.directory import UserFilter, find_user
from idp.mfa import admin as mfa_admin
from idp.store.models import RememberedBrowser, User, UserSession

# What idp.directory accepts, in JSON Schema terms (a little stricter: no C1 controls, and
# Python's and ECMAScript's \s differ there).
USERNAME_PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f/\\]+$"
_EMAIL_PART = r"[^@\s\x00-\x1f\x7f-\x9f]+"
EMAIL_PATTERN = rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$"
RoleName = Literal["member", "admin", "owner"]
StatusName = Literal["active", "disabled", "locked"]
MfaState = Literal["on", "enrolled", "none"]


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


class UserItem(BaseModel):
    """A user as lists show them. ``mfa``: on (enabled or required), enrolled (a second
    factor but not on) or none."""

    username: str
    email: str
    role: RoleName
    status: StatusName
    mfa: MfaState
    mfa_required: bool
    mfa_enabled: bool
    has_password: bool
    created_at: int
    updated_at: int
    last_login_at: int | None


class SignIn(BaseModel):
    """A live browser session of the user."""

    signed_in_at: int
    last_seen_at: int
    ip: str | None
    user_agent: str
    level: int
    amr: list[str]


class Profile(BaseModel):
    """What the user keeps in their profile (read-only here; the user edits it). Empty
    strings: not set. ``contact_phone``: the contact number, masked."""

    display_name: str
    given_name: str
    family_name: str
    locale: str
    email_verified: bool
    contact_phone: str | None


class UserDetail(UserItem):
    """Everything the console's user page shows (never a secret)."""

    profile: Profile
    factors: list[Factor]
    backup_codes_left: int
    sessions: list[SignIn]
    recent_events: list[audit_log.Recent]  # as the audit log names actors


class UserCreated(UserItem):
    """``set_password_link`` is given only when it could not be emailed (no mail sender, or
    the mail server refused it): then it is the caller's to hand over, and shown only now."""

    set_password_link: str | None = None


class NewUser(Body):
    """A new user; without ``password`` they get a set-password link."""

    username: str = Field(min_length=1, max_length=USERNAME_MAX, pattern=USERNAME_PATTERN)
    email: str = Field(min_length=5, max_length=254, pattern=EMAIL_PATTERN)
    role: RoleName = "member"
    password: str | None = Field(
        None,
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        description=f"{MIN_LENGTH} to {MAX_LENGTH} characters after Unicode NFKC normalisation",
    )


class UserChange(Body):
    """The fields to change; ``status`` active on a locked user unlocks them."""

    role: RoleName | None = None
    status: Literal["active", "disabled"] | None = None


class UserQuery(Query):
    q: str | None = Field(None, max_length=254, description="part of the username or email")
    role: RoleName | None = None
    status: StatusName | None = None
    mfa: MfaState | None = None


class UserPage(Page[UserItem]):
    """One page of users, in the order they were created."""


class SignedOut(BaseModel):
    sessions_ended: int


class LiveSession(SignIn):
    """A live browser session; ``device`` is read from the user agent (e.g. "Firefox 133 on
    Linux"), a hint only."""

    device: str


class KnownBrowser(BaseModel):
    """A remembered browser: it satisfies the tenant policy's second factor at every login,
    never an application's level, until ``expires_at`` (or until forgotten)."""

    device: str
    user_agent: str
    ip: str | None
    created_at: int
    last_used_at: int | None
    expires_at: int


class UserSessions(BaseModel):
    """Where the user is signed in, and the browsers remembered for them, newest first."""

    sessions: list[LiveSession]
    remembered_browsers: list[KnownBrowser]


class LinkSent(BaseModel):
    emailed: bool
    set_password_link: str | None


def user_of(call: Call, username: str) -> User:
    user = find_user(call.s, call.tenant, username)
    if user is None:
        raise not_found(f"user {username!r}")
    return user


def _item(user: User, state: str) -> dict[str, Any]:
    return {
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "status": user.status,
        "mfa": state,
        "mfa_required": user.mfa_required,
        "mfa_enabled": user.mfa_enabled,
        "has_password": user.password_hash is not None,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "last_login_at": user.last_login_at,
    }


def _one(call: Call, user: User) -> UserItem:
    return UserItem.model_validate(_item(user, directory.mfa_states(call.s, [user])[user.id]))


@operation("GET", "/users", summary="List users", tag="users", query=UserQuery,
           response=UserPage, errors=(400,))  # fmt: skip
def list_users(call: Call, query: UserQuery) -> dict[str, Any]:
    f = UserFilter(q=query.q or "", role=query.role or "", status=query.status or "",
                   mfa=query.mfa or "")  # fmt: skip
    rows, cursor = paginate(call.s, directory.users_matching(call.tenant, f), User.id, query)
    states = directory.mfa_states(call.s, rows)
    return page_of(rows, cursor, lambda u: UserItem.model_validate(_item(u, states[u.id])))


@operation("POST", "/users", summary="Create a user", tag="users", body=NewUser,
           response=UserCreated, status=201, errors=(400, 403, 409))  # fmt: skip
def create_user(call: Call, body: NewUser) -> Reply:
    user = directory.create_user(call.s, call.svc.passwords, call.tenant, body.username,
                                 body.email, body.role, body.password, call.actor)  # fmt: skip
    link = None
    if body.password is None:
        sent = directory.send_set_password_link(call.s, call.svc, call.tenant, user, call.actor)
        link = None if sent.emailed else sent.url
    created = {**_one(call, user).model_dump(), "set_password_link": link}
    return Reply(UserCreated.model_validate(created), status=201)


@operation("GET", "/users/<username>", summary="Read a user", tag="users",
           response=UserDetail, errors=(404,))  # fmt: skip
def get_user(call: Call, username: str) -> UserDetail:
    user = user_of(call, username)
    settings = call.svc.settings
    sessions = [
        {"signed_in_at": x.created_at, "last_seen_at": x.last_seen_at, "ip": x.ip,
         "user_agent": x.user_agent, "level": x.level, "amr": list(x.amr)}
        for x in directory.live_sessions(call.s, user, settings.session_absolute_timeout,
                                         settings.session_idle_timeout)
    ]  # fmt: skip
    mfa = mfa_admin.user_mfa_json(call.s, user)
    return UserDetail.model_validate({
        **_one(call, user).model_dump(),
        "profile": _profile(user),
        "factors": mfa["factors"],
        "backup_codes_left": mfa["backup_codes_left"],
        "sessions": sessions,
        "recent_events": [e.__dict__ for e in audit_log.recent(call.s, call.tenant.id, user.id)],
    })  # fmt: skip


def _profile(user: User) -> Profile:
    contact = profiles.contact_credential(user)
    return Profile(display_name=user.display_name, given_name=user.given_name,
                   family_name=user.family_name, locale=user.locale,
                   email_verified=user.email_verified,
                   contact_phone=contact.label if contact else None)  # fmt: skip


@operation("PATCH", "/users/<username>", summary="Change a user's role or status",
           tag="users", body=UserChange, response=UserItem, errors=(403, 404, 409))  # fmt: skip
def patch_user(call: Call, username: str, body: UserChange) -> UserItem:
    user = user_of(call, username)
    if body.role is not None:
        directory.set_role(call.s, call.tenant, user, body.role, call.actor)
    if body.status == "active" and user.status == "locked":
        directory.unlock_user(call.s, call.tenant, user, call.actor)
    elif body.status is not None and body.status != user.status:
        directory.set_status(call.s, call.tenant, user, body.status, call.actor)
    return _one(call, user)


@operation("DELETE", "/users/<username>", summary="Delete a user", tag="users",
           status=204, errors=(400, 403, 404))  # fmt: skip
def delete_user(call: Call, username: str) -> None:
    directory.delete_user(call.s, call.tenant, user_of(call, username), call.actor)


@operation("POST", "/users/<username>/unlock", summary="Unlock a user", tag="users",
           response=UserItem, errors=(403, 404, 409))  # fmt: skip
def unlock_user(call: Call, username: str) -> UserItem:
    user = user_of(call, username)
    directory.unlock_user(call.s, call.tenant, user, call.actor)
    return _one(call, user)


@operation("POST", "/users/<username>/sign-out", summary="Sign a user out everywhere",
           tag="users", response=SignedOut, errors=(403, 404))  # fmt: skip
def sign_out_user(call: Call, username: str) -> SignedOut:
    """Every session and token family ends, and every remembered browser is forgotten."""
    user = user_of(call, username)
    lifetime = call.svc.settings.session_absolute_timeout
    ended = directory.sign_out_everywhere(call.s, call.tenant, user, call.actor, lifetime)
    return SignedOut(sessions_ended=ended)


@operation("GET", "/users/<username>/sessions", summary="List a user's sessions and remembered "
           "browsers", tag="users", response=UserSessions, errors=(404,))  # fmt: skip
def get_user_sessions(call: Call, username: str) -> UserSessions:
    user = user_of(call, username)
    settings, now = call.svc.settings, clock.now()
    rows = user_sessions.live(call.s, user, now, settings.session_absolute_timeout,
                              settings.session_idle_timeout)  # fmt: skip
    return UserSessions(
        sessions=[_live_session(x) for x in rows],
        remembered_browsers=[_known_browser(b) for b in remembered.live(call.s, user, now)],
    )


def _live_session(x: UserSession) -> LiveSession:
    return LiveSession(signed_in_at=x.created_at, last_seen_at=x.last_seen_at, ip=x.ip,
                       user_agent=x.user_agent, device=device_of(x.user_agent), level=x.level,
                       amr=list(x.amr))  # fmt: skip


def _known_browser(b: RememberedBrowser) -> KnownBrowser:
    return KnownBrowser(device=device_of(b.user_agent), user_agent=b.user_agent, ip=b.ip,
                        created_at=b.created_at, last_used_at=b.last_used_at,
                        expires_at=b.expires_at)  # fmt: skip


@operation("POST", "/users/<username>/set-password-link", summary="Send a new set-password link",
           tag="users", response=LinkSent, errors=(403, 404, 409))  # fmt: skip
def send_link(call: Call, username: str) -> LinkSent:
    sent = directory.send_set_password_link(call.s, call.svc, call.tenant,
                                            user_of(call, username), call.actor)  # fmt: skip
    return LinkSent(emailed=sent.emailed, set_password_link=None if sent.emailed else sent.url)


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
