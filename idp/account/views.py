"""The security page: who is signed in and how strongly, and the user's own second factors.

Every change here is a sensitive action (DESIGN.md): it needs re-authentication at the
account's level (the password and, when the user holds one, a second factor at the highest
level held) within the re-authentication window; the assurance authority decides. Adding a
factor runs the login flow's steps, so the binding rule is the same one. Each change is
audited and confirmed by email (idp.mfa.notify). Turning MFA off ends the session.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from factors import backup
from factors.errors import InvalidCode
from flows.policy import mfa_on, mfa_required
from flows.second_factor import enrolment_kinds
from flows.webauthn_steps import LABEL_MAX
from idp import assurance, clock
from idp.errors import HttpError
from idp.login import flow_store
from idp.login.guard import reauthenticate, reauthenticated, require_signed_in, sudo_request
from idp.mfa import credentials
from idp.mfa.notify import security_event
from idp.saml.sps import list_sps
from idp.services import services
from idp.signout import sign_out
from idp.store.models import Credential, User
from idp.tenancy import current_tenant, tenant_blueprint

bp = tenant_blueprint("account", __name__)


def _when(t: int | None) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC") if t else "-"


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for(".security"))


# Pages open signed out: the index redirects; an emailed link may be opened on any device.
PUBLIC = ("account.index", "account.verify_email", "account.confirm_email")


@bp.before_request
def _guard() -> Response | None:
    if request.endpoint in PUBLIC:
        return None
    return require_signed_in()


def _user(s: Session) -> User:
    user = s.get(User, int(current_user.get_id()))
    assert user is not None
    return user


def _confirm_first() -> Response:
    """Ask for what re-authentication needs, then come back to the security page."""
    return reauthenticate(url_for(".security"))


@bp.get("/account")
def security() -> ResponseReturnValue:
    tenant = current_tenant()
    with services().db.session() as s:
        user = _user(s)
        stored = assurance.session_context()
        assert stored is not None
        ctx, _cap = assurance.standing(tenant, user, stored)  # what still counts, only
        policy = assurance.tenant_policy(tenant)
        facts = assurance.user_facts(user)
        return render_template(
            "account/security.html",
            tenant=tenant,
            user=current_user,
            level=ctx.level(),
            amr=ctx.amr(),
            auth_time=_when(ctx.auth_time()),
            factors=[
                (credentials.choice_of(c), c, _when(c.last_used_at), _when(c.created_at))
                for c in credentials.enrolled(user)
            ],
            backup_left=credentials.remaining_backup_codes(s, user.id),
            low_backup=backup.LOW_WARNING,
            enrollable=enrolment_kinds(policy),
            mfa_on=mfa_on(policy, facts),
            required=mfa_required(policy, facts),
            confirmed=reauthenticated(s),
            apps=list_sps(s, current_tenant()),
        )


@bp.post("/account/add")
def add_factor() -> ResponseReturnValue:
    kind = request.form.get("factor", "")
    if kind not in enrolment_kinds(assurance.tenant_policy(current_tenant())):
        raise HttpError("That method is not available here.")
    state = flow_store.start(current_tenant(), sudo_request(), url_for(".security"), enrolling=kind)
    return redirect(url_for("login.login", flow=state.id))


@bp.post("/account/factors/remove")
def remove_factor() -> ResponseReturnValue:
    if not reauthenticated():
        return _confirm_first()
    tenant = current_tenant()
    with services().db.session() as s:
        user = _user(s)
        cred = _own_factor(s, user)
        if len(credentials.enrolled(user)) == 1:
            return _mfa_off_page(s, user)  # removing the last one turns MFA off
        label = cred.label
        user.credentials.remove(cred)
        s.delete(cred)
        security_event(s, services(), tenant, user, "mfa.factor_removed", ip=request.remote_addr,
                       actor=user.id, kind=cred.type, label=label)  # fmt: skip
    return redirect(url_for(".security"))


@bp.post("/account/factors/rename")
def rename_factor() -> ResponseReturnValue:
    if not reauthenticated():
        return _confirm_first()
    label = " ".join(request.form.get("label", "").split())[:LABEL_MAX]
    if not label:
        raise HttpError("Give the key a name.")
    with services().db.session() as s:
        user = _user(s)
        cred = _own_factor(s, user)
        old, cred.label = cred.label, label
        security_event(s, services(), current_tenant(), user, "mfa.factor_renamed",
                       ip=request.remote_addr, actor=user.id, old=old, label=label)  # fmt: skip
    return redirect(url_for(".security"))


def _own_factor(s: Session, user: User) -> Credential:
    try:
        return credentials.find(s, user.id, request.form.get("factor", ""))
    except InvalidCode:  # not one of this user's factors
        raise HttpError("There is no such sign-in method.", 404) from None


@bp.post("/account/backup-codes")
def regenerate_codes() -> ResponseReturnValue:
    if not reauthenticated():
        return _confirm_first()
    svc, tenant = services(), current_tenant()
    with svc.db.session() as s:
        user = _user(s)
        if not credentials.enrolled(user):
            raise HttpError("Set up a sign-in method first: backup codes come with it.")
        codes = credentials.new_backup_codes(s, svc.backup_key, user.id, clock.now())
        security_event(s, svc, tenant, user, "mfa.backup_codes_regenerated",
                       ip=request.remote_addr, actor=user.id)  # fmt: skip
    return render_template("account/backup_codes.html", tenant=tenant, codes=codes)


def _mfa_off_page(s: Session, user: User) -> ResponseReturnValue:
    policy = assurance.tenant_policy(current_tenant())
    required = mfa_required(policy, assurance.user_facts(user))
    return render_template("account/mfa_off.html", tenant=current_tenant(), required=required)


@bp.post("/account/mfa/off")
def mfa_off() -> ResponseReturnValue:
    if not reauthenticated():
        return _confirm_first()
    svc, tenant = services(), current_tenant()
    with svc.db.session() as s:
        user = _user(s)
        if request.form.get("action") != "confirm":
            return _mfa_off_page(s, user)
        removed = credentials.remove_all(s, user)
        user.mfa_enabled, user.updated_at = False, clock.now()
        security_event(s, svc, tenant, user, "mfa.disabled", ip=request.remote_addr,
                       actor=user.id, removed=removed)  # fmt: skip
        sign_out(s, tenant, "mfa_off")
    return render_template("account/mfa_turned_off.html", tenant=tenant)
