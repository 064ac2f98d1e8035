"""Server-side sessions in the ephemeral store (the cookie holds only a random id).

The cookie is HttpOnly, SameSite=Lax, Secure behind https, and scoped to the tenant's path
(``/t/{slug}/``), so each tenant has its own session. The id is rotated at login and after
step-up (:meth:`ServerSession.rotate`); idle and absolute timeouts are enforced here. The
same once-a-minute touch that renews the idle timeout writes the sign-in's "last seen"
(idp.user_sessions.seen), so the account page's list costs one UPDATE per session a minute.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from idp import clock, user_sessions
from idp.ephemeral import EphemeralStore, EphemeralUnavailable
from idp.services import services
from idp.user_sessions import ENDED_SID, SEEN_EVERY

COOKIE = "stepwise_session"
TENANT_PATH = re.compile(r"^/t/([a-z0-9][a-z0-9-]{0,62})/")
TOUCH_EVERY = SEEN_EVERY  # seconds between idle-timeout refreshes (and "last seen")


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """A dict stored server-side under a random id."""

    def __init__(self, initial: dict[str, Any] | None, sid: str | None) -> None:
        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = sid is None
        self.modified = False
        self.rotate_requested = False
        self.destroyed = False
        self.unavailable = False  # the store could not be read: the request must answer 503
        self.seen = False  # touched by this request: its sign-in's "last seen" moves on

    def rotate(self) -> None:
        """Give the session a new id at the next response; the old id stops working.

        The absolute timeout restarts too: it counts from the last authentication.
        """
        self.pop("_created", None)
        self.rotate_requested = self.modified = True

    def destroy(self) -> None:
        """End the session: the server-side state is deleted and the cookie cleared."""
        self.clear()
        self.destroyed = self.modified = True


def require_available_session() -> None:
    """``before_request`` hook: a session that could not be loaded becomes a 503 response."""
    from flask import session

    if getattr(session, "unavailable", False):
        raise EphemeralUnavailable("session store unavailable")


class ServerSessionInterface(SessionInterface):
    def __init__(self, store: EphemeralStore, idle: int, absolute: int, secure: bool) -> None:
        self.store, self.idle, self.absolute, self.secure = store, idle, absolute, secure

    def get_cookie_path(self, app: Flask) -> str:
        from flask import request

        match = TENANT_PATH.match(request.path)
        return f"/t/{match.group(1)}/" if match else "/"

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(COOKIE, "")
        if not (20 <= len(sid) <= 64) or not sid.replace("-", "").replace("_", "").isalnum():
            return ServerSession(None, None)
        try:
            raw = self.store.get(f"session:{sid}")
        except EphemeralUnavailable:
            broken = ServerSession(None, None)
            broken.unavailable = True
            return broken
        if raw is None:
            return ServerSession(None, None)
        data = json.loads(raw)
        now = clock.now()
        ended = bool(data.get("sid")) and self.store.get(f"{ENDED_SID}{data['sid']}") is not None
        if ended or now - data.get("_created", 0) > self.absolute:  # idp.session_end
            self.store.delete(f"session:{sid}")
            return ServerSession(None, None)
        session = ServerSession(data, sid)
        if now - data.get("_touched", 0) > TOUCH_EVERY:
            session["_touched"] = now  # renews the idle timeout at save
            session.seen = bool(data.get("sid"))
        return session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        if response.status_code >= 500:
            # The request failed (storage down, a bug): what its view put in the session, a
            # sign-in whose records were rolled back included, is not kept. Fail closed.
            return
        try:
            self._save(app, session, response)
        except EphemeralUnavailable:
            session.unavailable = True  # the error response does not try again
            raise

    def _save(self, app: Flask, session: ServerSession, response: Response) -> None:
        if session.unavailable:
            return
        path = self.get_cookie_path(app)
        if session.destroyed or (not session and session.sid):
            if session.sid:
                self.store.delete(f"session:{session.sid}")
            response.delete_cookie(
                COOKIE, path=path, secure=self.secure, httponly=True, samesite="Lax"
            )
            return
        if not session or not (session.modified or session.new):
            return
        if session.rotate_requested and session.sid:
            self.store.delete(f"session:{session.sid}")
            session.sid = None
        if session.sid is None:
            session.sid = secrets.token_urlsafe(32)
        session.setdefault("_created", clock.now())
        session.setdefault("_touched", clock.now())
        payload = json.dumps(dict(session), separators=(",", ":")).encode()
        self.store.set(f"session:{session.sid}", payload, self.idle)
        response.set_cookie(
            COOKIE, session.sid, path=path, secure=self.secure, httponly=True, samesite="Lax"
        )
        response.vary.add("Cookie")
        if session.seen:
            with services().db.session() as s:
                user_sessions.seen(s, session["sid"], session["_touched"])
