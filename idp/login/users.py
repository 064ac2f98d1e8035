"""The signed-in user as flask-login sees it."""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, redirect, request, session, url_for
from flask_login import LoginManager
from werkzeug.wrappers import Response

from flows.context import AuthContext
from idp.assurance import session_alive
from idp.services import services
from idp.store.models import User
from idp.untrusted import ascii_int


@dataclass(frozen=True)
class SignedInUser:
    id: int
    username: str
    email: str
    role: str

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @classmethod
    def of(cls, user: User) -> SignedInUser:
        return cls(user.id, user.username, user.email, user.role)


def install(manager: LoginManager) -> None:
    manager.session_protection = None  # the session id itself is rotated at every login

    @manager.unauthorized_handler
    def _unauthorized() -> Response:
        return redirect(url_for("login.login", return_to=request.full_path.rstrip("?")))

    @manager.user_loader
    def _load(user_id: str) -> SignedInUser | None:
        tenant = g.get("tenant")
        auth = session.get("auth") or {}
        if tenant is None or ascii_int(user_id) is None or auth.get("user_id") != int(user_id):
            return None
        with services().db.session() as s:
            user = s.get(User, int(user_id))
            if user is None or user.tenant_id != tenant.id:
                return None
            if not session_alive(user, AuthContext.from_json(auth)):
                return None  # disabled, locked, or signed out everywhere

            return SignedInUser.of(user)
