"""Only owners change an owner, the last active owner stays, and disabling a user ends their
token families (issue 12: roles; disabled users).

The console and the admin API are driven over the Flask test client, the operator's commands
through the real ``idp`` script.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from idp import directory
from idp.app import create_app
from idp.directory import Actor, DirectoryError
from idp.store.models import AuditEvent, Credential, Grant, User
from testkit.html import csrf_of
from testkit.servers import add_user, create_database
from tests.cli_support import idp
from tests.conftest import PASSWORD, make_app, svc
from tests.mfa_helpers import MfaBrowser
from tests.web.oidc_helpers import Rp, code_flow, exchange, register, token
from tests.web.test_mfa_policy import admin_token

FORBIDDEN = "only an owner can change the owner &#39;olivia&#39;"


def add(app: Flask, username: str, role: str) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        directory.create_user(
            s, svc(app).passwords, t, username, f"{username}@acme.test", role, PASSWORD
        )


def with_totp(app: Flask, username: str) -> None:
    """``username`` has MFA required and one enrolled factor."""
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), username)
        user.mfa_required = True
        s.add(Credential(user_id=user.id, type="totp", created_at=1, data={}))


def mfa_state(app: Flask, username: str) -> tuple[bool, int, int | None]:
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), username)
        return user.mfa_required, len(user.credentials), user.mfa_reset_at


def events(app: Flask) -> list[str]:
    with svc(app).db.session() as s:
        return list(s.scalars(select(AuditEvent.event).order_by(AuditEvent.id)))


def console_action(client: FlaskClient, username: str, action: str, status: int = 200) -> str:
    page = client.get(f"/t/acme/admin/users/{username}")
    assert page.status_code == 200
    resp = client.post(
        f"/t/acme/admin/users/{username}/mfa",
        data={
            "csrf_token": csrf_of(page.get_data(as_text=True)),
            "action": action,
            "confirm": "yes",
        },
        follow_redirects=True,
    )
    assert resp.status_code == status
    return str(resp.get_data(as_text=True))


def test_an_admin_cannot_reset_unrequire_or_change_an_owners_mfa_in_the_console(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    add(app, "adam", "admin")
    with_totp(app, "olivia")
    mb.password("adam", PASSWORD)
    assert mb.finished
    for action in ("reset", "unrequire", "require"):
        assert FORBIDDEN in console_action(client, "olivia", action, 403), action
    assert mfa_state(app, "olivia") == (True, 1, None)
    assert not {"mfa.reset", "user.mfa_not_required"} & set(events(app))
    with_totp(app, "alice")  # members are still the admin's to manage
    assert "MFA reset for alice: 1 method(s) removed." in console_action(client, "alice", "reset")


def test_an_owner_may_change_another_owner_in_the_console(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    add(app, "owen", "owner")
    with_totp(app, "owen")
    mb.password("olivia", PASSWORD)
    assert "MFA reset for owen: 1 method(s) removed." in console_action(client, "owen", "reset")
    assert "no longer required" in console_action(client, "owen", "unrequire")
    assert mfa_state(app, "owen")[:2] == (False, 0)
    unknown = console_action(client, "owen", "promote")
    assert "Unknown action." in unknown


def test_the_admin_api_may_not_change_an_owner(
    app: Flask, client: FlaskClient, tenant: str
) -> None:
    with_totp(app, "olivia")
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    base = "/t/acme/admin/api/users"
    for resp in (
        client.put(f"{base}/olivia/mfa", headers=bearer, json={"required": False}),
        client.patch(f"{base}/olivia/mfa", headers=bearer, json={"required": True}),
        client.post(f"{base}/olivia/mfa/reset", headers=bearer),
    ):
        body = resp.get_json()
        assert resp.status_code == 403 and body["error"] == "forbidden", body
        assert "only an owner can change the owner 'olivia'" in body["error_description"]
    assert mfa_state(app, "olivia") == (True, 1, None)
    assert client.get(f"{base}/olivia/mfa", headers=bearer).status_code == 200  # reading is fine
    alice = client.put(f"{base}/alice/mfa", headers=bearer, json={"required": True})
    assert alice.status_code == 200 and alice.get_json()["mfa_required"] is True


def test_status_changes_follow_the_same_rule(app: Flask, tenant: str) -> None:
    add(app, "adam", "admin")
    add(app, "owen", "owner")
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        adam, owen, olivia = (directory.require_user(s, t, n) for n in ("adam", "owen", "olivia"))
        for actor in (Actor(user_id=adam.id), Actor(client_id="ops")):
            with pytest.raises(DirectoryError, match="only an owner"):
                directory.set_status(s, t, olivia, "disabled", actor)
        directory.set_status(s, t, olivia, "disabled", Actor(user_id=owen.id))
        with pytest.raises(DirectoryError, match="last active owner"):
            directory.set_status(s, t, owen, "disabled")  # the operator too
        directory.set_status(s, t, owen, "locked")  # the throttle still locks the last owner
        directory.set_status(s, t, owen, "active")
        directory.set_status(s, t, adam, "disabled", Actor(user_id=owen.id))
        assert (olivia.status, owen.status, adam.status) == ("disabled", "active", "disabled")


def cli_owner(env: dict[str, str], username: str) -> None:
    made = idp(env, "user", "create", "acme", username, "--email", f"{username}@acme.test",
               "--role", "owner")  # fmt: skip
    assert made.returncode == 0, made.stderr


def one_line_error(result: Any, message: str) -> bool:
    lines = result.stderr.strip().splitlines()
    return bool(
        result.returncode == 2
        and len(lines) == 1
        and message in lines[0]
        and "Traceback" not in result.stderr
    )


def test_the_cli_acts_on_owners_but_keeps_the_last_active_one(cli_env: dict[str, str]) -> None:
    cli_owner(cli_env, "olivia")
    for command in ("require-mfa", "unrequire-mfa", "reset-mfa"):
        done = idp(cli_env, "user", command, "acme", "olivia")
        assert done.returncode == 0, (command, done.stderr)
    last = idp(cli_env, "user", "disable", "acme", "olivia")
    assert one_line_error(last, "'olivia' is the last active owner of tenant 'acme'"), last.stderr
    cli_owner(cli_env, "owen")
    assert idp(cli_env, "user", "disable", "acme", "olivia").returncode == 0
    assert one_line_error(idp(cli_env, "user", "disable", "acme", "owen"), "last active owner")
    assert idp(cli_env, "user", "enable", "acme", "olivia").returncode == 0
    assert idp(cli_env, "user", "disable", "acme", "owen").returncode == 0
    listed = idp(cli_env, "user", "list", "acme").stdout
    assert "olivia@acme.test\towner\tactive" in listed
    assert "owen@acme.test\towner\tdisabled" in listed


def test_disable_ends_the_users_sessions_and_token_families(cli_env: dict[str, str]) -> None:
    add_user(cli_env, "acme", "alice", PASSWORD)
    app = create_app({"env": "development", "instance_path": cli_env["IDP_INSTANCE_PATH"]})
    client = app.test_client()
    rp: Rp = register(app)
    issued = []
    for scope in ("openid", "openid offline_access"):
        query, verifier = code_flow(client, rp, scope=scope)
        issued.append(exchange(client, rp, query["code"], verifier).get_json())
    assert client.get("/t/acme/account").status_code == 200  # signed in
    before = int(time.time())
    assert idp(cli_env, "user", "disable", "acme", "alice").returncode == 0
    assert idp(cli_env, "user", "enable", "acme", "alice").returncode == 0  # back, but not them
    account = client.get("/t/acme/account")  # the browser session ended too (idp.assurance)
    assert account.status_code == 302 and "/login" in account.headers["Location"]
    auth = (rp.client_id, rp.secret)
    for body in issued:
        again = token(client, rp, grant_type="refresh_token", refresh_token=body["refresh_token"])
        assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
        for kind in ("access_token", "refresh_token"):
            seen = client.post("/t/acme/introspect", data={"token": body[kind]}, auth=auth)
            assert seen.get_json() == {"active": False}, kind
    with svc(app).db.session() as s:
        alice = s.scalars(select(User).where(User.username_norm == "alice")).one()
        assert alice.sessions_revoked_at is not None and alice.sessions_revoked_at >= before
        assert all(g.revoked_at is not None for g in s.scalars(select(Grant)))
    assert "oauth.grants_revoked" in events(app)


def test_only_an_owner_relaxes_the_policy_owners_sign_in_under(
    app: Flask, client: FlaskClient, tenant: str, mb: MfaBrowser
) -> None:
    """Found in review: per-user changes were guarded, but an admin (or an API client) could
    drop every owner's level through the tenant policy instead."""
    add(app, "adam", "admin")
    s_ = svc(app)
    with s_.db.session() as s:
        t = directory.require_tenant(s, "acme")
        t.admins_phishing_resistant = True  # owners and admins need level 3
    bearer = {"Authorization": f"Bearer {admin_token(app, client)}"}
    relax = client.put("/t/acme/admin/api/mfa-policy", headers=bearer,
                       json={"admins_phishing_resistant": False})  # fmt: skip
    assert relax.status_code == 403 and relax.get_json()["error"] == "forbidden"
    tighten = client.put("/t/acme/admin/api/mfa-policy", headers=bearer, json={"mode": "optional"})
    assert tighten.status_code == 200  # what does not lower an owner's level stays open
    from idp.mfa import admin as mfa_admin

    with s_.db.session() as s:
        t = directory.require_tenant(s, "acme")
        adam = directory.require_user(s, t, "adam")
        with pytest.raises(directory.Forbidden):
            mfa_admin.set_policy(s, t, {"admins_phishing_resistant": False}, Actor(user_id=adam.id))
        s.rollback()
    with s_.db.session() as s:
        t = directory.require_tenant(s, "acme")
        assert t.admins_phishing_resistant is True
        olivia = directory.require_user(s, t, "olivia")
        mfa_admin.set_policy(s, t, {"admins_phishing_resistant": False}, Actor(user_id=olivia.id))
    with s_.db.session() as s:
        assert directory.require_tenant(s, "acme").admins_phishing_resistant is False


def test_two_owners_demoting_each_other_at_once_leave_one(
    tmp_path: Path, postgres_url: str
) -> None:
    """On PostgreSQL, with the two changes in parallel transactions: the second waits for the
    first and then sees the last owner (review finding: both went through, leaving none)."""
    app = make_app(tmp_path, database_url=create_database(postgres_url, f"t_{uuid.uuid4().hex}"))
    db = svc(app).db
    with db.session() as s:
        t = directory.create_tenant(s, "acme", "Acme")
        ids = {
            name: directory.create_user(s, svc(app).passwords, t, name, f"{name}@a.test",
                                        "owner", PASSWORD).id
            for name in ("olivia", "oscar")
        }  # fmt: skip
    first_done, outcome = threading.Event(), {}

    def demote(by: str, target: str, hold: threading.Event | None) -> None:
        try:
            with app.app_context(), db.session() as s:
                t = directory.require_tenant(s, "acme")
                user = directory.require_user(s, t, target)
                directory.set_role(s, t, user, "admin", Actor(user_id=ids[by]))
                if hold is not None:
                    first_done.set()
                    hold.wait(5)  # keep the transaction open while the other one starts
            outcome[by] = "done"
        except DirectoryError as exc:
            outcome[by] = str(exc)

    release = threading.Event()
    a = threading.Thread(target=demote, args=("olivia", "oscar", release))
    a.start()
    assert first_done.wait(5)
    b = threading.Thread(target=demote, args=("oscar", "olivia", None))
    b.start()
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                   " AND datname = current_database()")  # fmt: skip
    with db.engine.connect() as watch:  # it waits on the tenant's row (before the fix: not)
        for _ in range(250):
            if watch.execute(waiting).scalar() or not b.is_alive():
                break
            time.sleep(0.02)
    release.set()
    a.join(10)
    b.join(10)
    assert outcome["olivia"] == "done"
    assert "last active owner" in outcome["oscar"] or "only an owner" in outcome["oscar"]
    with db.session() as s:
        assert directory.active_owners(s, directory.require_tenant(s, "acme")) == [ids["olivia"]]
    db.engine.dispose()


def test_an_admin_sees_403_not_a_confirmation_page_for_an_owner(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    add(app, "adam", "admin")
    mb.password("adam", PASSWORD)
    for path in ("olivia/disable", "olivia/delete", "olivia/sign-out", "olivia/role?role=admin",
                 "alice/role?role=owner", "olivia/enable", "olivia/unlock", "olivia/reset-mfa",
                 "olivia/set-password-link", "olivia/mfa?action=reset"):  # fmt: skip
        resp = client.get(f"/t/acme/admin/users/{path}")
        assert resp.status_code == 403, path
        assert 'id="confirm"' not in resp.get_data(as_text=True), path
    assert client.get("/t/acme/admin/users/alice/disable").status_code == 200  # a member
