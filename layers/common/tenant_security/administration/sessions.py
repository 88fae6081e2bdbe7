"""What users and security-admins do to sessions: list the live ones, end one, end a user's.

A user sees and ends only their own sessions (GET and DELETE /auth/sessions): a session id of
another user or another tenant is answered as one that does not exist (404), and is never
ended -- the ending transaction itself requires the session to be the caller's, so no read that a
change could slip past decides it. A security-admin lists every live session of the tenant and
ends all of one user's (GET /tenants/{t}/sessions, DELETE /tenants/{t}/users/{u}/sessions).
Ending goes through :class:`SessionStore`'s revocation, which keeps the session counters exact.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tenant_security import paging
from tenant_security.errors import NotFound

if TYPE_CHECKING:
    from tenant_security.actors import Actor
    from tenant_security.identity.sessions import Session, SessionStore
    from tenant_security.identity.users import UserStore

# Session ids are ``secrets.token_urlsafe(24)`` (32 characters); anything else names no session.
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def session_view(session: Session, current_session: str | None) -> dict[str, Any]:
    """A session as the API shows it (``current``: the one the request came with)."""
    return {
        "session_id": session.session_id,
        "username": session.username,
        "created_at": _time(session.created_at),
        "expires_at": _time(session.expires_at),
        "source_ip": session.source_ip,
        "user_agent": session.user_agent,
        "current": session.session_id == current_session,
    }


def decode_next(token: str) -> str:
    """The session id a ``next`` token of :meth:`SessionAdmin.tenant_sessions` continues after."""
    return paging.decode_next(token, lambda key: SESSION_ID.fullmatch(key) is not None)


class SessionAdmin:
    """Listing and ending sessions, over the sessions store and the tenant's users."""

    def __init__(self, sessions: SessionStore, users: UserStore) -> None:
        self.sessions = sessions
        self.users = users

    def own_sessions(self, actor: Actor, current_session: str) -> dict[str, Any]:
        """``{items}``: the caller's live sessions, oldest first (at most the policy's
        ``max_sessions_per_user``, so one page)."""
        live = sorted(self.sessions.list_live(actor.tenant_id, actor.user), key=lambda s: s.created_at)
        return {"items": [session_view(s, current_session) for s in live]}

    def end_own(self, actor: Actor, session_id: str) -> None:
        """End one of the caller's live sessions (the current one too: that is a sign-out).

        404 for any id that is not a live session of the caller -- unknown, another user's,
        another tenant's, or ended already (by this request's twin a moment ago, too): the same
        answer for each, so the route tells nobody which session ids exist."""
        if not SESSION_ID.fullmatch(session_id) or not self.sessions.revoke(
            actor.tenant_id, session_id, actor.user
        ):
            raise NotFound("no such session")

    def tenant_sessions(
        self, tenant_id: str, actor: Actor, current_session: str, limit: int, after: str | None = None
    ) -> dict[str, Any]:
        """``{items, next}``: a page of the tenant's live sessions in session-id order (the
        actor's ``current_session`` marked, when it is one of them); ``after`` is the ``next``
        token of the page before (400 unless this route issued it)."""
        found, last = self.sessions.page_live(tenant_id, limit, decode_next(after) if after else None)
        current = current_session if actor.tenant_id == tenant_id else None
        return {
            "items": [session_view(s, current) for s in found],
            "next": paging.encode_next(last) if last else None,
        }

    def end_user_sessions(self, tenant_id: str, username: str) -> int:
        """End every live session of one user of the tenant; how many ended (404 for a user the
        tenant does not have, as the other routes of a user answer)."""
        if self.users.get(tenant_id, username) is None:
            raise NotFound(f"no user {username!r}")
        return self.sessions.revoke_all(tenant_id, username)
