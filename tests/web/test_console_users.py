"""The console's user pages: search, filters and pages; one user's page; every action, with
its confirmation page, and who may do what (issue 14: Users)."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import directory
from idp.directory import Actor
from idp.store.models import AuditEvent, BackupCode, Credential, Grant, User, UserSession
from testkit.html import csrf_of
from tests.cli_support import idp
from tests.conftest import PASSWORD, svc
from tests.mfa_helpers import MfaBrowser, logout

BASE = "/t/acme/admin/users"
ROW = re.compile(r'<tr id="user-([^"]+)">')


def add(app: Flask, username: str, role: str = "member", **fields: object) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        user = directory.create_user(s, svc(app).passwords, t, username,
                                     f"{username}@acme.test", role, PASSWORD)  # fmt: skip
        for name, value in fields.items():
            setattr(user, name, value)


def user_of(app: Flask, username: str) -> User | None:
    with svc(app).db.session() as s:
        user = directory.find_user(s, directory.require_tenant(s, "acme"), username)
        if user is not None:
            s.expunge(user)
        return user


def events(app: Flask) -> list[tuple[str, int | None, dict[str, object]]]:
    with svc(app).db.session() as s:
        rows = s.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [(e.event, e.actor_id, dict(e.details)) for e in rows]


def post(client: FlaskClient, url: str, **data: str) -> tuple[int, str]:
    """GET ``url`` (its form or confirmation page) for a CSRF token, then POST to it."""
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    resp = client.post(url, data={"csrf_token": csrf_of(page.get_data(as_text=True)), **data},
                       follow_redirects=True)  # fmt: skip
    return resp.status_code, resp.get_data(as_text=True)


def listed(html: str) -> list[str]:
    return ROW.findall(html)


def test_search_filters_and_keyset_pages_over_sixty_users(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        for i in range(60):
            u = directory.create_user(s, svc(app).passwords, t, f"user{i:02d}",
                                      f"person{i:02d}@Example.test",
                                      "admin" if i % 10 == 0 else "member")  # fmt: skip
            u.status = "disabled" if i % 15 == 1 else "active"
            u.mfa_enabled = i % 20 == 2
            if i % 20 == 3:
                s.add(Credential(user_id=u.id, type="totp", created_at=1, data={}))
    mb.password("olivia", PASSWORD)
    first = client.get(BASE).get_data(as_text=True)
    names = listed(first)
    assert len(names) == 50 and names == sorted(names) and names[0] == "alice"
    assert "Previous" not in first
    next_url = re.search(r'href="([^"]+)" rel="next"', first)
    assert next_url
    second = client.get(next_url.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert listed(second) == [f"user{i:02d}" for i in range(48, 60)]
    assert 'rel="next"' not in second
    prev_url = re.search(r'href="([^"]+)" rel="prev"', second)
    assert prev_url
    back = client.get(prev_url.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert listed(back) == names

    def find(**query: str) -> list[str]:
        resp = client.get(BASE, query_string=query)
        assert resp.status_code == 200
        return listed(resp.get_data(as_text=True))

    assert find(q="USER1") == [f"user{i}" for i in range(10, 20)]
    assert find(q="person07@example") == ["user07"]  # email, any case
    assert find(q="%") == [] and find(q="_") == []  # LIKE wildcards are literal
    assert find(role="admin") == ["user00", "user10", "user20", "user30", "user40", "user50"]
    assert find(role="owner") == ["olivia"]
    assert find(status="disabled") == ["user01", "user16", "user31", "user46"]
    assert find(mfa="on") == ["user02", "user22", "user42"]
    assert find(mfa="enrolled") == ["user03", "user23", "user43"]
    assert len(find(mfa="none")) == 50  # of 56: the rest are on the next page
    assert find(role="admin", q="user1") == ["user10"]
    assert find(status="nonsense") == find()[:50]  # an unknown filter value is ignored
    # Filters stay on the next page's link.
    page = client.get(BASE, query_string={"mfa": "none"}).get_data(as_text=True)
    link = re.search(r'href="([^"]+)" rel="next"', page)
    assert link and "mfa=none" in link.group(1)
    rest = listed(client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True))
    assert len(rest) == 6 and "user02" not in rest


def test_the_user_page_shows_profile_factors_codes_sessions_and_events(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    with svc(app).db.session() as s:
        t = directory.require_tenant(s, "acme")
        alice = directory.require_user(s, t, "alice")
        alice.mfa_enabled = True
        s.add(Credential(user_id=alice.id, type="totp", label="Phone app", created_at=86400,
                         last_used_at=2 * 86400, data={}))  # fmt: skip
        for n in range(3):
            s.add(BackupCode(user_id=alice.id, digest=f"d{n}", created_at=1))
        now = directory.now()
        s.add(UserSession(tenant_id=t.id, user_id=alice.id, sid="sid-1", ip="198.51.100.7",
                          user_agent="Firefox/128", level=2, amr=["pwd", "otp"],
                          created_at=now - 60, last_seen_at=now))  # fmt: skip
    mb.password("olivia", PASSWORD)
    token = csrf_of(client.get(f"{BASE}/alice").get_data(as_text=True))
    required = client.post(f"{BASE}/alice/mfa", data={"csrf_token": token, "action": "require"})
    assert required.status_code == 303
    page = client.get(f"{BASE}/alice").get_data(as_text=True)
    assert '<dd id="email">alice@acme.test</dd>' in page
    assert '<dd id="role-now">member</dd>' in page and '<dd id="status-now">active</dd>' in page
    assert "<td>totp</td><td>Phone app</td><td>1970-01-02 00:00 UTC</td>" in page
    assert "1970-01-03 00:00 UTC" in page  # last used
    assert "Backup codes left: 3" in page
    assert "198.51.100.7" in page and "Firefox/128" in page and "pwd, otp" in page
    assert "<td>user.mfa_required</td><td>success</td>" in page
    assert re.search(r"user\.mfa_required</td><td>success</td>\s*<td>olivia</td>", page)
    assert client.get(f"{BASE}/nobody").status_code == 404


def test_creating_a_user_with_a_password_and_bad_input(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    mb.password("olivia", PASSWORD)
    fields = {"username": "bob", "email": "bob@acme.test", "password": "a long passphrase"}
    status, page = post(client, "/t/acme/admin/new-user", role="admin", **fields)
    assert status == 200 and "User bob created." in page and '<dd id="role-now">admin</dd>' in page
    made = user_of(app, "bob")
    assert made is not None and made.password_hash and made.role == "admin"
    created = [e for e in events(app) if e[0] == "user.created"][-1]
    assert created[1] is not None and created[2]["role"] == "admin"  # the acting owner
    for fields, message in (
        ({"username": "bob", "email": "b@acme.test"}, "already exists"),
        ({"username": "carl", "email": "not-an-email"}, "not an email address"),
        ({"username": "carl", "email": "c@acme.test", "password": "short"}, "at least 15"),
        (
            {"username": "carl", "email": "c@acme.test", "password": "1qaz2wsx3edc4rfv"},
            "too common",
        ),
        ({"username": "a b", "email": "c@acme.test"}, "without spaces"),
        ({"username": "carl", "email": "c@acme.test", "role": "king"}, "role must be"),
    ):
        form = client.get("/t/acme/admin/new-user").get_data(as_text=True)
        resp = client.post("/t/acme/admin/new-user", data={"csrf_token": csrf_of(form), **fields})
        assert resp.status_code == 400 and message in resp.get_data(as_text=True), fields
    assert user_of(app, "carl") is None


def test_without_mail_the_set_password_link_is_shown_to_the_admin_once(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    mb.password("olivia", PASSWORD)
    status, page = post(client, "/t/acme/admin/new-user", username="dora",
                        email="dora@acme.test", role="member")  # fmt: skip
    assert status == 200 and "this server has no mail sender configured" in page
    link = re.search(r'id="set-password-link" type="text" readonly value="([^"]+)"', page)
    assert link and "/t/acme/set-password?token=" in link.group(1)
    # A new link replaces it; the first stops working.
    status, again = post(client, f"{BASE}/dora/set-password-link", confirm="yes")
    second = re.search(r'readonly value="([^"]+)"', again)
    assert status == 200 and second and second.group(1) != link.group(1)
    path = link.group(1).split("localhost", 1)[-1]
    assert "not valid any more" in client.get(path).get_data(as_text=True)
    assert client.get(second.group(1).split("localhost", 1)[-1]).status_code == 200
    # A user who has a password gets no link.
    status, refused = post(client, f"{BASE}/alice/set-password-link", confirm="yes")
    assert "already has a password" in refused


def test_disable_and_enable_go_through_the_confirmation_page(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    with svc(app).db.session() as s:
        alice = directory.require_user(s, directory.require_tenant(s, "acme"), "alice")
        now = directory.now()
        for n in range(3):
            s.add(UserSession(tenant_id=alice.tenant_id, user_id=alice.id, sid=f"s{n}", ip=None,
                              user_agent="", level=1, amr=["pwd"], created_at=now - 10,
                              last_seen_at=now))  # fmt: skip
    mb.password("olivia", PASSWORD)
    confirm = client.get(f"{BASE}/alice/disable").get_data(as_text=True)
    assert "alice can no longer sign in." in confirm and "3 sessions end at once" in confirm
    # A POST without the confirmation page's button only shows that page.
    resp = client.post(f"{BASE}/alice/disable", data={"csrf_token": csrf_of(confirm)})
    assert resp.status_code == 200 and "What will happen" in resp.get_data(as_text=True)
    assert user_of(app, "alice").status == "active"  # type: ignore[union-attr]
    status, page = post(client, f"{BASE}/alice/disable", confirm="yes")
    assert status == 200 and "alice is disabled." in page
    assert user_of(app, "alice").status == "disabled"  # type: ignore[union-attr]
    status, page = post(client, f"{BASE}/alice/enable")
    assert "alice is enabled." in page and user_of(app, "alice").status == "active"  # type: ignore[union-attr]
    names = [e[0] for e in events(app)]
    assert "user.disabled" in names and "user.enabled" in names


def test_unlock(app: Flask, mb: MfaBrowser, client: FlaskClient) -> None:
    add(app, "lou", status="locked")
    mb.password("olivia", PASSWORD)
    assert "Unlock lou" in client.get(f"{BASE}/lou").get_data(as_text=True)
    _, page = post(client, f"{BASE}/lou/unlock")
    assert "lou is unlocked." in page
    lou = user_of(app, "lou")
    assert lou is not None and lou.status == "active" and lou.unlocked_at is not None
    post(client, f"{BASE}/lou/disable", confirm="yes")
    _, page = post(client, f"{BASE}/lou/unlock")
    assert "is disabled, not locked" in page


def test_role_changes_raise_at_once_and_lower_after_confirmation(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    mb.password("olivia", PASSWORD)
    page = client.get(f"{BASE}/alice").get_data(as_text=True)
    resp = client.post(f"{BASE}/alice/role", data={"csrf_token": csrf_of(page), "role": "admin"},
                       follow_redirects=True)  # fmt: skip
    assert "alice is now an admin." in resp.get_data(as_text=True)
    lower = client.post(f"{BASE}/alice/role", data={"csrf_token": csrf_of(page), "role": "member"})
    text = lower.get_data(as_text=True)
    assert lower.status_code == 200 and "lose access to this console" in text
    assert user_of(app, "alice").role == "admin"  # type: ignore[union-attr]
    _, done = post(client, f"{BASE}/alice/role?role=member", role="member", confirm="yes")
    assert "alice is now a member." in done and user_of(app, "alice").role == "member"  # type: ignore[union-attr]
    changed = [e for e in events(app) if e[0] == "user.role_changed"]
    assert [e[2]["role"] for e in changed] == ["admin", "member"]
    _, bad = post(client, f"{BASE}/alice/role?role=admin", role="emperor")
    assert "role must be" in bad


def test_sign_out_everywhere_ends_sessions_and_token_families(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    other = app.test_client()
    alice = MfaBrowser(other, "acme")
    alice.password("alice", PASSWORD)
    assert other.get("/t/acme/account").status_code == 200
    with svc(app).db.session() as s:
        user = directory.require_user(s, directory.require_tenant(s, "acme"), "alice")
        s.add(Grant(gid="g" * 43, tenant_id=user.tenant_id, client_id="c", user_id=user.id,
                    scope="openid", acr="", amr=[], auth_time=1, sid="x",
                    created_at=1))  # fmt: skip
    mb.password("olivia", PASSWORD)
    confirm = client.get(f"{BASE}/alice/sign-out").get_data(as_text=True)
    assert "alice&#39;s 1 session ends in every browser." in confirm
    _, page = post(client, f"{BASE}/alice/sign-out", confirm="yes")
    assert "alice is signed out everywhere (1 session ended)." in page
    account = other.get("/t/acme/account")
    assert account.status_code == 302 and "/login" in account.headers["Location"]
    with svc(app).db.session() as s:
        assert s.scalars(select(Grant.revoked_at)).one() is not None
        ended = s.scalars(select(UserSession.ended_at).where(UserSession.user_id == user.id))
        assert [e is not None for e in ended] == [True]
    assert "No live session." in client.get(f"{BASE}/alice").get_data(as_text=True)
    assert "user.signed_out_everywhere" in [e[0] for e in events(app)]


def test_reset_mfa_says_what_is_removed_and_needs_confirmation(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    with svc(app).db.session() as s:
        alice = directory.require_user(s, directory.require_tenant(s, "acme"), "alice")
        s.add(Credential(user_id=alice.id, type="totp", created_at=1, data={}))
        s.add(Credential(user_id=alice.id, type="sms", created_at=1, data={}))
        for n in range(8):
            s.add(BackupCode(user_id=alice.id, digest=f"d{n}", created_at=1))
    mb.password("olivia", PASSWORD)
    confirm = client.get(f"{BASE}/alice/reset-mfa").get_data(as_text=True)
    assert "alice&#39;s 2 sign-in methods and 8 backup codes are removed." in confirm
    assert "sets up two-step sign-in again at their next sign-in" in confirm
    # Re-authentication sends the admin to the GET of what they posted, with their choice.
    resent = client.get(f"{BASE}/alice/mfa?action=reset").get_data(as_text=True)
    assert "2 sign-in methods and 8 backup codes are removed." in resent
    assert "at every login" in client.get(f"{BASE}/alice/mfa?action=require").get_data(as_text=True)
    prefilled = client.get("/t/acme/admin/new-user?username=zed&email=z%40acme.test")
    assert 'value="zed"' in prefilled.get_data(as_text=True)
    unconfirmed = client.post(f"{BASE}/alice/mfa",
                              data={"csrf_token": csrf_of(confirm), "action": "reset"})  # fmt: skip
    assert unconfirmed.status_code == 200 and "What will happen" in unconfirmed.get_data(
        as_text=True
    )
    with svc(app).db.session() as s:
        assert len(list(s.scalars(select(Credential)))) == 2
    confirmed = {"csrf_token": csrf_of(confirm), "action": "reset", "confirm": "yes"}
    resp = client.post(f"{BASE}/alice/mfa", data=confirmed, follow_redirects=True)
    assert "MFA reset for alice: 2 method(s) removed." in resp.get_data(as_text=True)
    with svc(app).db.session() as s:
        assert list(s.scalars(select(Credential))) == []
        assert list(s.scalars(select(BackupCode))) == []


def test_delete(app: Flask, mb: MfaBrowser, client: FlaskClient) -> None:
    mb.password("olivia", PASSWORD)
    confirm = client.get(f"{BASE}/alice/delete").get_data(as_text=True)
    assert "deleted for good" in confirm and "cannot be undone" in confirm
    status, page = post(client, f"{BASE}/alice/delete", confirm="yes")
    assert status == 200 and "User alice deleted." in page and 'id="user-alice"' not in page
    assert user_of(app, "alice") is None
    deleted = [e for e in events(app) if e[0] == "user.deleted"]
    assert deleted and deleted[0][2]["username"] == "alice" and deleted[0][1] is not None
    # Nobody deletes themself; the page offers no such link either.
    assert "Delete olivia" not in client.get(f"{BASE}/olivia").get_data(as_text=True)
    status, page = post(client, f"{BASE}/olivia/delete", confirm="yes")
    assert "you cannot delete your own account" in page
    assert user_of(app, "olivia") is not None


def test_an_admin_may_not_act_on_an_owner_nor_make_one(
    app: Flask, mb: MfaBrowser, client: FlaskClient
) -> None:
    add(app, "adam", "admin")
    mb.password("adam", PASSWORD)
    page = client.get(f"{BASE}/olivia").get_data(as_text=True)
    token = csrf_of(page)
    for path, fields in (
        ("disable", {"confirm": "yes"}),
        ("delete", {"confirm": "yes"}),
        ("sign-out", {"confirm": "yes"}),
        ("role", {"role": "member", "confirm": "yes"}),
        ("mfa", {"action": "reset"}),
    ):
        resp = client.post(f"{BASE}/olivia/{path}", data={"csrf_token": token, **fields})
        assert resp.status_code == 403, path
        assert "only an owner" in resp.get_data(as_text=True)
    olivia = user_of(app, "olivia")
    assert olivia is not None and (olivia.role, olivia.status) == ("owner", "active")
    promote = client.post(f"{BASE}/alice/role",
                          data={"csrf_token": token, "role": "owner"})  # fmt: skip
    assert promote.status_code == 403 and user_of(app, "alice").role == "member"  # type: ignore[union-attr]
    made = client.post("/t/acme/admin/new-user", data={"csrf_token": token, "username": "oscar",
                       "email": "o@acme.test", "role": "owner"})  # fmt: skip
    assert made.status_code == 403 and user_of(app, "oscar") is None
    # Members are the admin's to manage.
    _, text = post(client, f"{BASE}/alice/disable", confirm="yes")
    assert "alice is disabled." in text


def test_the_last_active_owner_stays(app: Flask, mb: MfaBrowser, client: FlaskClient) -> None:
    mb.password("olivia", PASSWORD)
    for path, fields in (("role", {"role": "admin"}), ("disable", {})):
        status, page = post(client, f"{BASE}/olivia/{path}?role=admin", confirm="yes", **fields)
        assert status == 403 and "last active owner" in page, path
    add(app, "owen", "owner")
    status, page = post(client, f"{BASE}/owen/role?role=admin", role="admin", confirm="yes")
    assert "owen is now an admin." in page


def test_members_get_403_and_posts_need_csrf(mb: MfaBrowser, client: FlaskClient) -> None:
    mb.password("alice", PASSWORD)
    for url in (BASE, f"{BASE}/olivia", f"{BASE}/olivia/delete", "/t/acme/admin/new-user"):
        assert client.get(url).status_code == 403, url
    token = csrf_of(client.get("/t/acme/account").get_data(as_text=True))
    resp = client.post(f"{BASE}/olivia/delete", data={"csrf_token": token, "confirm": "yes"})
    assert resp.status_code == 403
    logout(client)
    mb.password("olivia", PASSWORD)
    for url in (f"{BASE}/alice/delete", f"{BASE}/alice/disable", "/t/acme/admin/new-user"):
        resp = client.post(url, data={"confirm": "yes", "username": "x", "email": "x@a.test"})
        assert resp.status_code == 400 and "Form expired" in resp.get_data(as_text=True), url
    assert user_of(mb.client.application, "alice") is not None


def test_another_tenants_user_is_not_found(app: Flask, mb: MfaBrowser, client: FlaskClient) -> None:
    with svc(app).db.session() as s:
        other = directory.create_tenant(s, "globex")
        directory.create_user(s, svc(app).passwords, other, "gina", "g@globex.test",
                              "member", PASSWORD, Actor())  # fmt: skip
    mb.password("olivia", PASSWORD)
    page = client.get(f"{BASE}/olivia").get_data(as_text=True)
    assert client.get(f"{BASE}/gina").status_code == 404
    for path in ("disable", "delete", "sign-out", "mfa"):
        sent = {"csrf_token": csrf_of(page), "confirm": "yes", "action": "reset"}
        resp = client.post(f"{BASE}/gina/{path}", data=sent)
        assert resp.status_code == 404, path
    assert client.get("/t/globex/admin/users").status_code in (302, 403)  # not their admin


def test_the_cli_invites_sets_roles_signs_out_and_deletes(cli_env: dict[str, str]) -> None:
    invited = idp(cli_env, "user", "invite", "acme", "nina", "--email", "nina@acme.test",
                  "--role", "owner")  # fmt: skip
    assert invited.returncode == 0, invited.stderr
    assert "no mail sender" in invited.stdout and "/t/acme/set-password?token=" in invited.stdout
    again = idp(cli_env, "user", "invite", "acme", "nina", "--email", "other@acme.test")
    assert again.returncode == 2 and "exists with another email" in again.stderr
    assert (
        idp(cli_env, "user", "invite", "acme", "nina", "--email", "NINA@acme.test").returncode == 0
    )
    assert idp(cli_env, "user", "create", "acme", "otto", "--email", "o@acme.test").returncode == 0
    last = idp(cli_env, "user", "set-role", "acme", "nina", "member")
    assert last.returncode == 2 and len(last.stderr.strip().splitlines()) == 1
    assert "last active owner" in last.stderr and "Traceback" not in last.stderr
    assert idp(cli_env, "user", "set-role", "acme", "otto", "owner").returncode == 0
    demoted = idp(cli_env, "user", "set-role", "acme", "nina", "admin")
    assert demoted.returncode == 0 and "role admin" in demoted.stdout
    out = idp(cli_env, "user", "sign-out", "acme", "nina")
    assert out.returncode == 0 and "signed out everywhere (0 session(s) ended)" in out.stdout
    assert idp(cli_env, "user", "delete", "acme", "nina").returncode == 0
    gone = idp(cli_env, "user", "delete", "acme", "nina")
    assert gone.returncode == 2 and "no user 'nina'" in gone.stderr
    owner = idp(cli_env, "user", "delete", "acme", "otto")
    assert owner.returncode == 2 and "last active owner" in owner.stderr
    listed = idp(cli_env, "user", "list", "acme").stdout
    assert "nina\t" not in listed and "otto\to@acme.test\towner\tactive" in listed
