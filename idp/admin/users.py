"""Console: users (the list, one user's page, and the actions on a user).

Every action is an operation of idp.directory or idp.mfa.admin, shared with the admin API and
the CLI. Destructive ones (disable, reset MFA, sign out everywhere, delete, a role change
that lowers rights) show a confirmation page first that says what will happen; their POST
acts only with ``confirm=yes``, which that page sends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from idp import audit_log, directory, remembered
from idp.admin.console import Confirmation, actor, back_to, bp, confirm, done
from idp.devices import label as device_label
from idp.directory import MFA_STATES, ROLE_RANK, STATUS_EVENTS, DirectoryError, UserFilter
from idp.mfa import admin as mfa_admin
from idp.mfa import credentials
from idp.services import services
from idp.store.models import Tenant, User
from idp.tenancy import current_tenant, tenant_in

PAGE = 50
MFA_LABELS = {"on": "On", "enrolled": "Enrolled, not on", "none": "None"}


@bp.app_template_filter("device")
def device(user_agent: str) -> str:
    """A user agent as the device it names (idp.devices), e.g. "Firefox 133 on Linux"."""
    return device_label(user_agent)


@bp.app_template_filter("when")
def when(ts: int | None) -> str:
    """A stored time (epoch seconds) as the console shows it, in UTC."""
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _filter() -> UserFilter:
    args = request.args
    try:
        return UserFilter(
            q=args.get("q", "")[:254],
            role=args.get("role", ""),
            status=args.get("status", ""),
            mfa=args.get("mfa", ""),
        ).check()
    except DirectoryError:
        return UserFilter(q=args.get("q", "")[:254])


@bp.get("/users")
def users() -> ResponseReturnValue:
    """The tenant's users matching the filters, 50 a page in username order (keyset: the
    page after ``after`` or before ``before``, never an OFFSET)."""
    tenant = current_tenant()
    f = _filter()
    after, before = request.args.get("after", "")[:150], request.args.get("before", "")[:150]
    stmt = directory.users_matching(tenant, f)
    key = User.username_norm
    if before:
        stmt = stmt.where(key < before).order_by(key.desc())
    else:
        stmt = stmt.where(key > after).order_by(key) if after else stmt.order_by(key)
    with services().db.session() as s:
        rows = list(s.scalars(stmt.limit(PAGE + 1)))
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        if before:
            rows.reverse()
        states = directory.mfa_states(s, rows)
        kept: dict[str, Any] = {k: v for k, v in (("q", f.q), ("role", f.role),
                                ("status", f.status), ("mfa", f.mfa)) if v}  # fmt: skip
        # Forward: a next page when one more row came back, a previous one after a key.
        # Backward: the other way round.
        has_next, has_prev = (True, more) if before else (more, bool(after))
        next_url = prev_url = None
        if rows and has_next:
            next_url = url_for(".users", after=rows[-1].username_norm, **kept)
        if rows and has_prev:
            prev_url = url_for(".users", before=rows[0].username_norm, **kept)
        return render_template(
            "admin/users.html",
            rows=rows,
            states=states,
            f=f,
            labels=MFA_LABELS,
            roles=tuple(ROLE_RANK),
            statuses=tuple(STATUS_EVENTS),
            mfa_states=MFA_STATES,
            next_url=next_url,
            prev_url=prev_url,
        )


def _user(s: Session, tenant: Tenant, username: str) -> User:
    """The tenant's user named ``username``, or 404 (another tenant's user is not found)."""
    user = directory.find_user(s, tenant, username)
    if user is None:
        abort(404)
    return user


def _page_url(user: User) -> str:
    return url_for(".user_page", username=user.username)


@bp.get("/users/<username>")
def user_page(username: str) -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        user = _user(s, tenant, username)
        me = int(actor().user_id or 0)
        return render_template(
            "admin/user.html",
            user=user,
            state=directory.mfa_states(s, [user])[user.id],
            labels=MFA_LABELS,
            factors=credentials.enrolled(user),
            codes_left=credentials.remaining_backup_codes(s, user.id),
            sessions=directory.live_sessions(
                s, user, svc.settings.session_absolute_timeout, svc.settings.session_idle_timeout
            ),
            browsers=remembered.live(s, user, directory.now()),
            events=audit_log.recent(s, tenant.id, user.id),
            roles=tuple(ROLE_RANK),
            awaits_password=directory.awaits_password(user),
            is_me=user.id == me,
        )


# --- Create, and set-password links ----------------------------------------------------------


@bp.route("/new-user", methods=["GET", "POST"])
def new_user() -> ResponseReturnValue:
    """Create a user; with no password, the user gets an emailed set-password link."""
    form = request.form
    if request.method == "GET":  # args: the choices sent again after re-authentication
        return render_template("admin/user_new.html", roles=tuple(ROLE_RANK), form=request.args)
    back_to(url_for(".new_user"))
    svc = services()
    password = form.get("password", "")
    with svc.db.session() as s:
        tenant = tenant_in(s)
        try:
            user = directory.create_user(
                s, svc.passwords, tenant, form.get("username", "")[:200],
                form.get("email", "")[:300], form.get("role", "member"), password or None,
                actor(),
            )  # fmt: skip
        except DirectoryError as exc:
            if isinstance(exc, directory.Forbidden):
                raise
            s.rollback()
            return render_template(
                "admin/user_new.html", roles=tuple(ROLE_RANK), form=form, message=exc.message
            ), 400
        if password:
            return done(f"User {user.username} created.", _page_url(user))
        link = directory.send_set_password_link(s, svc, tenant, user, actor())
        return _link_sent(user, link, created=True)


def _link_sent(user: User, link: directory.SetPasswordLink, created: bool) -> ResponseReturnValue:
    what = f"User {user.username} created" if created else "New set-password link made"
    if link.emailed:
        return done(f"{what}: a set-password link was emailed to {user.email}.", _page_url(user))
    return render_template(
        "admin/user_link.html", user=user, link=link, what=what, mail=services().mail is not None
    )


@bp.route("/users/<username>/set-password-link", methods=["GET", "POST"])
def user_link(username: str) -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        user = _user(s, tenant, username)
        back_to(_page_url(user))
        _may_act(s, tenant, user)
        if request.method == "GET" or request.form.get("confirm") != "yes":
            where = f"emailed to {user.email}" if svc.mail else "shown to you once"
            return confirm(Confirmation(
                title=f"Send {user.username} a new set-password link",
                consequences=[f"A new link to choose a password is {where}; it works once, for "
                              "7 days.", "Any earlier link for this account stops working."],
                button="Send the link", action=request.path, cancel=_page_url(user),
                danger=False,
            ))  # fmt: skip
        link = directory.send_set_password_link(s, svc, tenant, user, actor())
        return _link_sent(user, link, created=False)


# --- Status, role, sessions, deletion --------------------------------------------------------


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _live(s: Session, user: User) -> int:
    return len(directory.live_sessions(s, user, services().settings.session_absolute_timeout))


@bp.route("/users/<username>/disable", methods=["GET", "POST"])
def user_disable(username: str) -> ResponseReturnValue:
    with services().db.session() as s:
        tenant = tenant_in(s)
        user = _user(s, tenant, username)
        back_to(_page_url(user))
        _may_act(s, tenant, user)  # a 403 before the confirmation page, not after
        if request.method == "GET" or request.form.get("confirm") != "yes":
            return confirm(Confirmation(
                title=f"Disable {user.username}",
                consequences=[f"{user.username} can no longer sign in.",
                              f"{_count(_live(s, user), 'session ends', 'sessions end')} at once, "
                              "and every token issued to applications for them stops working.",
                              "You can enable the account again later; nothing is deleted."],
                button="Disable", action=request.path, cancel=_page_url(user),
            ))  # fmt: skip
        directory.set_status(s, tenant, user, "disabled", actor())
        return done(f"{user.username} is disabled.", _page_url(user))


@bp.route("/users/<username>/enable", methods=["GET", "POST"])
def user_enable(username: str) -> ResponseReturnValue:
    with services().db.session() as s:
        tenant = tenant_in(s)
        user = _user(s, tenant, username)
        back_to(_page_url(user))
        _may_act(s, tenant, user)
        if request.method == "GET":
            return confirm(Confirmation(
                title=f"Enable {user.username}", button="Enable", danger=False,
                consequences=[f"{user.username} can sign in again."],
                action=request.path, cancel=_page_url(user),
            ))  # fmt: skip
        directory.set_status(s, tenant, user, "active", actor())
        return done(f"{user.username} is enabled.", _page_url(user))


@bp.route("/users/<username>/unlock", methods=["GET", "POST"])
def user_unlock(username: str) -> ResponseReturnValue:
    with services().db.session() as s:
        tenant = tenant_in(s)
        user = _user(s, tenant, username)
        back_to(_page_url(user))
        _may_act(s, tenant, user)
        if request.method == "GET":
            return confirm(Confirmation(
                title=f"Unlock {user.username}", button="Unlock", danger=False,
                consequences=[f"{user.username} can try to sign in again; the count of failed "
                              "attempts starts over."],
                action=request.path, cancel=_page_url(user),
            ))  # fmt: skip
        directory.unlock_user(s, tenant, user, actor())
        return done(f"{user.username} is unlocked.", _page_url(user))


@bp.route("/users/<username>/role", methods=["GET", "POST"])
def user_role(username: str) -> ResponseReturnValue:
    """A raise takes effect at once; a lowering goes through the confirmation page."""
    source = request.form if request.method == "POST" else request.args
    role = source.get("role", "")
    with services().db.session() as s:
        tenant = tenant_in(s)
        user = _user(s, tenant, username)
        back_to(_page_url(user))
        if role not in ROLE_RANK:
            if request.method == "POST":
                raise DirectoryError("role must be member, admin or owner")
            return redirect(_page_url(user), 303)
        _may_act(s, tenant, user, role)
        lowers = ROLE_RANK[role] < ROLE_RANK.get(user.role, 0)
        if request.method == "GET" or (lowers and request.form.get("confirm") != "yes"):
            lines = [f"{user.username} becomes {_article(role)} {role} instead of "
                     f"{_article(user.role)} {user.role}."]  # fmt: skip
            if lowers:
                lines.append(_lost_rights(user.role, role))
            return confirm(Confirmation(
                title=f"Change {user.username}'s role", consequences=lines,
                button=f"Make {user.username} {_article(role)} {role}", action=request.path,
                cancel=_page_url(user), fields=[("role", role)], danger=lowers,
            ))  # fmt: skip
        directory.set_role(s, tenant, user, role, actor())
        return done(f"{user.username} is now {_article(role)} {role}.", _page_url(user))


def _may_act(s: Session, tenant: Tenant, user: User, role: str | None = None) -> None:
    """The owner rules (idp.directory), checked before a confirmation page is shown:
    only an owner acts on an owner or makes one (Forbidden, a 403 page)."""
    directory.check_may_manage(s, tenant, actor(), user)
    if role == "owner":
        directory.require_owner(s, tenant, actor(), "only an owner can make an owner")


def _article(role: str) -> str:
    return "an" if role[:1] in "aeiou" else "a"


def _lost_rights(old: str, new: str) -> str:
    if new == "member":
        return "They lose access to this console and the admin tasks in it."
    return "They can no longer manage owners or make new ones."


@bp.route("/users/<username>/sign-out", methods=["GET", "POST"])
def user_sign_out(username: str) -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        user = _user(s, tenant, username)
        back_to(_page_url(user))
        _may_act(s, tenant, user)  # a 403 before the confirmation page, not after
        if request.method == "GET" or request.form.get("confirm") != "yes":
            return confirm(Confirmation(
                title=f"Sign {user.username} out everywhere",
                consequences=[f"{user.username}'s "
                              f"{_count(_live(s, user), 'session ends', 'sessions end')} "
                              "in every browser.",
                              "Every token issued to applications for them stops working; "
                              "they sign in again to continue.",
                              "Their remembered browsers are forgotten: the second step is "
                              "asked again at their next sign-in on each."],
                button="Sign out everywhere", action=request.path, cancel=_page_url(user),
            ))  # fmt: skip
        ended = directory.sign_out_everywhere(
            s, tenant, user, actor(), svc.settings.session_absolute_timeout
        )
        ended_text = _count(ended, "session", "sessions")
        message = f"{user.username} is signed out everywhere ({ended_text} ended)."
        return done(message, _page_url(user))


@bp.route("/users/<username>/delete", methods=["GET", "POST"])
def user_delete(username: str) -> ResponseReturnValue:
    with services().db.session() as s:
        tenant = tenant_in(s)
        user = _user(s, tenant, username)
        back_to(_page_url(user))
        _may_act(s, tenant, user)  # a 403 before the confirmation page, not after
        if request.method == "GET" or request.form.get("confirm") != "yes":
            factors = len(credentials.enrolled(user))
            return confirm(Confirmation(
                title=f"Delete {user.username}",
                consequences=[f"The account {user.username} ({user.email}) is deleted for good, "
                              f"with its {_count(factors, 'sign-in method', 'sign-in methods')} "
                              "and backup codes.",
                              f"Its {_count(_live(s, user), 'session ends', 'sessions end')}, and "
                              "every token issued to applications for it stops working.",
                              "The audit log keeps its events. This cannot be undone."],
                button="Delete", action=request.path, cancel=_page_url(user),
            ))  # fmt: skip
        name = user.username
        directory.delete_user(s, tenant, user, actor())
    return done(f"User {name} deleted.", url_for(".users"))


# --- MFA -------------------------------------------------------------------------------------


def _reset_confirmation(s: Session, user: User, action: str) -> ResponseReturnValue:
    factors = len(credentials.enrolled(user))
    codes = credentials.remaining_backup_codes(s, user.id)
    return confirm(Confirmation(
        title=f"Reset {user.username}'s two-step sign-in",
        consequences=[f"{user.username}'s {_count(factors, 'sign-in method', 'sign-in methods')} "
                      f"and {_count(codes, 'backup code', 'backup codes')} are removed.",
                      f"{user.username} sets up two-step sign-in again at their next sign-in, "
                      "and is told so by email."],
        button="Reset MFA", action=action, cancel=_page_url(user), fields=[("action", "reset")],
    ))  # fmt: skip


@bp.route("/users/<username>/reset-mfa", methods=["GET"])
def user_reset_mfa(username: str) -> ResponseReturnValue:
    with services().db.session() as s:
        tenant = tenant_in(s)
        user = _user(s, tenant, username)
        _may_act(s, tenant, user)
        return _reset_confirmation(s, user, url_for(".user_mfa", username=user.username))


@bp.route("/users/<username>/mfa", methods=["GET", "POST"])
def user_mfa(username: str) -> ResponseReturnValue:
    """``action`` = require, unrequire or reset (reset acts only with ``confirm=yes``)."""
    source = request.form if request.method == "POST" else request.args
    action = source.get("action", "")
    svc = services()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        user = _user(s, tenant, username)
        back_to(_page_url(user))
        _may_act(s, tenant, user)
        if request.method == "GET":  # after re-authentication: confirm what was chosen
            if action == "reset":
                return _reset_confirmation(s, user, request.path)
            if action in ("require", "unrequire"):
                return confirm(Confirmation(
                    title=f"Two-step sign-in for {user.username}", danger=False,
                    consequences=[f"{user.username} must use two-step sign-in at every login."
                                  if action == "require" else f"{user.username} follows the "
                                  "tenant's policy alone again."],
                    button="Confirm", action=request.path, cancel=_page_url(user),
                    fields=[("action", action)],
                ))  # fmt: skip
            return redirect(_page_url(user), 303)
        if action in ("require", "unrequire"):
            mfa_admin.require_for_user(s, tenant, user, action == "require", actor())
            what = "required" if action == "require" else "no longer required for this user alone"
            message = f"MFA {what}: {user.username}."
        elif action == "reset":
            if request.form.get("confirm") != "yes":
                return _reset_confirmation(s, user, request.path)
            removed = mfa_admin.reset_user(s, svc, tenant, user, actor())
            message = f"MFA reset for {user.username}: {removed} method(s) removed."
        else:
            raise DirectoryError("Unknown action.")
    return done(message, _page_url(user))
