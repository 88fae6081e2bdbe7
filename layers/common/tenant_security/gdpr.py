"""GDPR subject rights: export everything the platform holds about a user, or erase them.

Erasure removes the user (and ends their sessions) and destroys their audit subject key: their
PII in the trail no longer decrypts (``[erased]``) while every record -- and so the hash chain --
stays as written, and the subject's pseudonym (``actor.pseudonym``) keeps their past actions
attributable without their name. The erasure itself is recorded (the request's own `User
Activity`). Erasing a whole tenant is offboarding's crypto-shredding.

Erasure is not a way round user administration: it takes ``users:Delete`` as well as
``gdpr:Erase``, and refuses the caller themself, a platform-admin and the tenant's last
tenant-admin (409). An export shows the subject's own personal data only (Art. 15(4)), and
references the records and files the subject created (to a caller who may read them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from tenant_security.audit.pii import SubjectKeys
from tenant_security.audit.reader import AuditReader
from tenant_security.authz.rbac import PLATFORM_ADMIN, TENANT_ADMIN, is_allowed
from tenant_security.errors import Conflict, Forbidden, NotFound
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.users import UserStore

# What a subject's export shows of each live session: the address and User-Agent it was started
# from are theirs too (art. 15).
_EXPORTED_SESSION_FIELDS = ("session_id", "amr", "created_at", "expires_at", "source_ip", "user_agent")


class SubjectRights:
    """Export and erasure of one data subject of one tenant (stores given, not found)."""

    def __init__(
        self,
        users: UserStore,
        sessions: SessionStore,
        keys: SubjectKeys,
        reader: AuditReader,
        bucket_of: Any,
        records_of: Callable[[str, str], Any] | None = None,
        files_of: Callable[[str, str], Any] | None = None,
    ) -> None:
        """``records_of``/``files_of`` (tenant, user): what the subject created, for exports."""
        self.users = users
        self.sessions = sessions
        self.keys = keys
        self.reader = reader
        self.bucket_of = bucket_of
        self.records_of = records_of
        self.files_of = files_of

    def export(
        self, tenant_id: str, username: str, permissions: Sequence[str], after: str | None = None
    ) -> dict[str, Any]:
        """Profile, roles, live sessions and the subject's audit entries (paged by ``next``).

        What the subject created is listed by reference (record ids, file keys and sizes), never
        by content: that is the tenant's data, often about other people, not the subject's. Even
        the references only to a caller who may read them (``records:Read``, ``files:List``);
        for anyone else the part says it was withheld, and why.
        """
        user = self.users.get(tenant_id, username)
        key_id = self.keys.key_id_of(tenant_id, username)
        if user is None and key_id is None:
            raise NotFound(f"nothing is held about {username!r} in this tenant")
        audit = self.reader.query(
            tenant_id,
            subject=username,
            limit=200,
            after=after,
            reveal_subject_only=True,
        )
        created: dict[str, Any] = {}
        if after is None:  # the first page carries what the subject created
            for part, needs, listed in (
                ("records", "records:Read", self.records_of),
                ("files", "files:List", self.files_of),
            ):
                if listed is None:
                    continue
                created[part] = (
                    listed(tenant_id, username)
                    if is_allowed(needs, permissions)
                    else {"withheld": f"listing them takes {needs}"}
                )
        return {
            "tenant_id": tenant_id,
            "subject": username,
            "exported_at": datetime.now(UTC).isoformat(),
            "profile": user.public() if user is not None else None,
            "sessions": [
                {k: v for k, v in asdict(s).items() if k in _EXPORTED_SESSION_FIELDS}
                for s in self.sessions.list_live(tenant_id, username)
            ]
            if user is not None
            else [],
            "audit": audit,
            **created,
        }

    def erase(
        self, caller: tuple[str, str], permissions: Sequence[str], tenant_id: str, username: str
    ) -> dict[str, Any]:
        """Remove the user, end their sessions, destroy their audit subject key.

        ``caller`` is (tenant, user) and ``permissions`` the caller's; 403 without users:Delete,
        409 for the caller themself, a platform-admin or the tenant's last tenant-admin.
        """
        if not is_allowed("users:Delete", permissions):
            raise Forbidden("erasing a user takes users:Delete as well as gdpr:Erase")
        if caller == (tenant_id, username):
            raise Conflict("you cannot erase yourself", code="cannot_erase_self")
        user = self.users.get(tenant_id, username)
        if user is not None and PLATFORM_ADMIN in user.roles:
            raise Conflict("a platform-admin is not erased; take the role away first", code="platform_admin")
        if user is not None:
            self.users.delete(tenant_id, username, keep_one=TENANT_ADMIN)  # 409 for the last one
        revoked = self.sessions.revoke_all(tenant_id, username) if user is not None else 0
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
