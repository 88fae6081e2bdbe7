"""GDPR subject rights: export everything the platform holds about a user, or erase them.

Erasure removes the user (and ends their sessions) and destroys their audit subject key: their
PII in the trail no longer decrypts (``[erased]``) while every record -- and so the hash chain --
stays as written. The erasure itself is recorded (the request's own `User Activity`). Erasing a
whole tenant is offboarding's crypto-shredding.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from tenant_security.audit.pii import SubjectKeys
from tenant_security.audit.reader import AuditReader
from tenant_security.errors import NotFound
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.users import UserStore


class SubjectRights:
    """Export and erasure of one data subject of one tenant (stores given, not found)."""

    def __init__(
        self, users: UserStore, sessions: SessionStore, keys: SubjectKeys, reader: AuditReader, bucket_of: Any
    ) -> None:
        self.users = users
        self.sessions = sessions
        self.keys = keys
        self.reader = reader
        self.bucket_of = bucket_of

    def export(self, tenant_id: str, username: str, after: str | None = None) -> dict[str, Any]:
        """Profile, roles, live sessions and the subject's audit entries (paged by ``next``)."""
        user = self.users.get(tenant_id, username)
        key_id = self.keys.key_id_of(tenant_id, username)
        if user is None and key_id is None:
            raise NotFound(f"nothing is held about {username!r} in this tenant")
        audit = self.reader.query(
            tenant_id, self.bucket_of(tenant_id), subject=username, limit=200, after=after
        )
        return {
            "tenant_id": tenant_id,
            "subject": username,
            "exported_at": datetime.now(UTC).isoformat(),
            "profile": user.public() if user is not None else None,
            "sessions": [
                {k: v for k, v in asdict(s).items() if k in ("session_id", "amr", "created_at", "expires_at")}
                for s in self.sessions.list_live(tenant_id, username)
            ]
            if user is not None
            else [],
            "audit": audit,
        }

    def erase(self, tenant_id: str, username: str) -> dict[str, Any]:
        """Remove the user, end their sessions, destroy their audit subject key."""
        user = self.users.get(tenant_id, username)
        revoked = self.sessions.revoke_all(tenant_id, username) if user is not None else 0
        if user is not None:
            self.users.delete(tenant_id, username)
        key_destroyed = self.keys.erase(tenant_id, username)
        if user is None and not key_destroyed:
            raise NotFound(f"nothing is held about {username!r} in this tenant")
        return {
            "tenant_id": tenant_id,
            "subject": username,
            "user_removed": user is not None,
            "sessions_revoked": revoked,
            "pii_key_destroyed": key_destroyed,
        }
