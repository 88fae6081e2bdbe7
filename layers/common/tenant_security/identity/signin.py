"""The sign-in flow of API.md: password → MFA (or forced enrolment) → session → access token.

A one-time or temporary password never becomes the long-term one: after MFA such a sign-in gets
``password_change_required: true`` and a token whose scope only POST /auth/password accepts.

Every step is throttled per source address and per account before it does any work (429). The
password step answers an unknown user, a wrong password and an inactive user alike (401, the
same body, the same argon2 work); a wrong password slows that (account, address) pair down and
never locks the account -- so a stranger cannot lock anyone out. Only second-factor failures,
after a correct password, count toward the lockout. The tenant's allow-list is checked before the
user is looked up, and the tenant's status is read consistently when the session starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from tenant_security.activity import Activity
from tenant_security.errors import BadRequest, DomainError, Forbidden, Unauthorized
from tenant_security.identity.mfa import Enrollment, MfaService
from tenant_security.identity.passwords import (
    check_new_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from tenant_security.identity.sessions import SessionStore
from tenant_security.identity.throttle import SignInThrottle, TooManyAttempts
from tenant_security.identity.tokens import (
    ACCESS,
    CHALLENGE_TTL,
    ENROLLMENT_TTL,
    MAX_ACCESS_TTL,
    MFA_CHALLENGE,
    MFA_ENROLLMENT,
    SCOPE_FULL,
    SCOPE_PASSWORD_CHANGE,
    TokenIssuer,
    TokenVerifier,
)
from tenant_security.identity.users import User, UserStore
from tenant_security.observability import logger
from tenant_security.refusals import RefusalCounter, RefusalKind
from tenant_security.tenants import TenantRecord

if TYPE_CHECKING:
    from tenant_security.activity import EventPublisher


class TenantLookup(Protocol):
    def get(self, tenant_id: str) -> TenantRecord | None: ...


class SignInService:
    """Every step of signing in, each a method; stores are given, not found."""

    def __init__(
        self,
        users: UserStore,
        tenants: TenantLookup,
        sessions: SessionStore,
        mfa: MfaService,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        clock: Callable[[], float] = time.time,
        on_first_sign_in: Callable[[str, str], None] | None = None,
        publisher: EventPublisher | None = None,
        platform_tenant: str = "platform",
        throttle: SignInThrottle | None = None,
        tenant_of_record: TenantLookup | None = None,
        refusals: RefusalCounter | None = None,
    ) -> None:
        """``publisher``: where each step's `User Activity` (success or failure) goes;
        ``throttle``: the sign-in throttles; ``tenant_of_record``: a consistent read of the tenant
        (``tenants`` may be a cache) for the moment a session starts."""
        self.throttle = throttle
        self.refusals = refusals
        self.tenant_of_record = tenant_of_record or tenants
        self.on_first_sign_in = on_first_sign_in
        self.publisher = publisher
        self.platform_tenant = platform_tenant
        self.users = users
        self.tenants = tenants
        self.sessions = sessions
        self.mfa = mfa
        self.issuer = issuer
        self.verifier = verifier
        self.clock = clock

    # ------------------------------------------------------------------ audit
    @contextmanager
    def _audited(self, action: str, source_ip: str | None, who: dict[str, str | None]) -> Iterator[None]:
        """Record the step's outcome as `User Activity` for the user in ``who`` once it is known.

        ``who`` is filled as the step learns who is signing in; an unknown tenant or user is
        recorded in the platform's trail without a user name.
        """
        reason: str | None = None
        outcome = "failure"
        counted = False
        try:
            yield
            outcome = "success"
        except DomainError as exc:
            reason = exc.code
            outcome = "denied" if exc.status in (403, 423, 429) else "failure"
            # Nobody proved who they are (throttled, or no such account): counted per source
            # address and minute into one record, not one record each.
            if self.refusals is not None and (isinstance(exc, TooManyAttempts) or not who.get("user")):
                kind = (
                    RefusalKind.THROTTLED if isinstance(exc, TooManyAttempts) else RefusalKind.UNKNOWN_ACCOUNT
                )
                self.refusals.count(kind, source_ip, who.get("tenant_id"), sample=f"{action}: {exc.code}")
                counted = True
            raise
        finally:
            if self.publisher is not None and not counted:
                self.publisher.activity(
                    Activity(
                        tenant_id=who.get("tenant_id") or self.platform_tenant,
                        action=action,
                        outcome=outcome,  # type: ignore[arg-type]
                        category="authentication",
                        user=who.get("user"),
                        source_ip=source_ip,
                        reason=reason,
                    )
                )

    # ------------------------------------------------------------------ steps
    def login(self, tenant_id: str, username: str, password: str, source_ip: str | None) -> dict[str, Any]:
        """Check the password; answer with an MFA challenge or a forced enrolment."""
        who: dict[str, str | None] = {}
        with self._audited("auth:Login", source_ip, who):
            return self._login(tenant_id, username, password, source_ip, who)

    def _login(
        self, tenant_id: str, username: str, password: str, source_ip: str | None, who: dict[str, str | None]
    ) -> dict[str, Any]:
        from tenant_security.authz.decision import ip_allowed

        if self.throttle is not None:
            self.throttle.admit(source_ip, tenant_id, username)
        tenant = self.tenants.get(tenant_id)
        if tenant is not None:
            who["tenant_id"] = tenant_id
            # before the user is looked up: an address the tenant refuses learns nothing of its users
            if not ip_allowed(source_ip, tenant.policies.access_control.ip_whitelist):
                raise Forbidden("source address not allowed for this tenant")
            if self.throttle is not None:
                self.throttle.admit_password(tenant_id, username, source_ip)
        user = self.users.get(tenant_id, username) if tenant is not None else None
        if user is not None:
            who["user"] = username
        correct = verify_password(user.password_hash if user else None, password)  # same work for all
        if user is None or not correct or user.status != "ACTIVE":
            if tenant is not None and self.throttle is not None:
                self.throttle.password_failed(tenant_id, username, source_ip)
            logger.warning("sign-in step failed", extra={"tenant_id": tenant_id, "step": "password"})
            raise Unauthorized("invalid credentials")
        assert tenant is not None
        if self.throttle is not None:
            self.throttle.password_succeeded(tenant_id, username, source_ip)
        if not tenant.active:
            raise Forbidden("tenant is not active")
        if user.password_change_required and self.on_first_sign_in is not None:
            self.on_first_sign_in(tenant_id, username)
        if needs_rehash(user.password_hash):
            self.users.set_password(
                tenant_id, username, hash_password(password), user.password_change_required
            )
        logger.info(
            "sign-in step",
            extra={"tenant_id": tenant_id, "user": username, "step": "password", "outcome": "ok"},
        )
        if not user.mfa_enrolled:
            token, _ = self.issuer.issue(
                subject=username, tenant_id=tenant_id, token_use=MFA_ENROLLMENT, ttl=ENROLLMENT_TTL
            )
            return {"status": "MFA_ENROLLMENT_REQUIRED", "enrollment_token": token}
        token, _ = self.issuer.issue(
            subject=username, tenant_id=tenant_id, token_use=MFA_CHALLENGE, ttl=CHALLENGE_TTL
        )
        return {"status": "MFA_REQUIRED", "challenge_token": token}

    def enroll(self, enrollment_token: str, source_ip: str | None = None) -> Enrollment:
        """A new TOTP secret, QR code and backup codes (shown once)."""
        who: dict[str, str | None] = {}
        with self._audited("auth:MfaEnroll", source_ip, who):
            user = self._user_of(enrollment_token, MFA_ENROLLMENT, source_ip, who)
            return self.mfa.enroll(user)

    def activate(self, enrollment_token: str, code: str, source_ip: str | None) -> dict[str, Any]:
        """Confirm enrolment with a first code; the token reply."""
        who: dict[str, str | None] = {}
        with self._audited("auth:MfaActivate", source_ip, who):
            user = self._user_of(enrollment_token, MFA_ENROLLMENT, source_ip, who)
            amr = self.mfa.activate(user, code, source_ip)
            return self._start_session(user, amr)

    def verify(
        self, challenge_token: str, code: str | None, backup_code: str | None, source_ip: str | None
    ) -> dict[str, Any]:
        """Check a TOTP code or a backup code; the token reply."""
        if (code is None) == (backup_code is None):
            raise BadRequest("send either code or backup_code")
        who: dict[str, str | None] = {}
        with self._audited("auth:MfaVerify", source_ip, who):
            user = self._user_of(challenge_token, MFA_CHALLENGE, source_ip, who)
            if code is not None:
                amr = self.mfa.verify_code(user, code, source_ip)
            else:
                amr = self.mfa.verify_backup_code(user, str(backup_code), source_ip)
            return self._start_session(user, amr)

    def change_password(
        self, access_token: str, current_password: str, new_password: str, source_ip: str | None
    ) -> dict[str, Any]:
        """Replace the password (required after a one-time one); a full-rights token reply."""
        who: dict[str, str | None] = {}
        with self._audited("auth:ChangePassword", source_ip, who):
            return self._change_password(access_token, current_password, new_password, source_ip, who)

    def _change_password(
        self,
        access_token: str,
        current_password: str,
        new_password: str,
        source_ip: str | None,
        who: dict[str, str | None],
    ) -> dict[str, Any]:
        claims = self._claims(access_token, ACCESS, source_ip)
        tenant_id, username, sid = str(claims["tenant_id"]), str(claims["sub"]), str(claims.get("sid", ""))
        who.update(tenant_id=tenant_id, user=username)
        if not self.sessions.is_live(tenant_id, sid):
            raise Unauthorized("session ended")
        user = self._active_user(tenant_id, username)
        # the caller holds a session (MFA done): a wrong current password counts as a failure
        attempt = self.mfa.admit(user, source_ip)
        if not verify_password(user.password_hash, current_password):
            raise self.mfa.fail(user, "invalid current password", source_ip, attempt)
        self.mfa.succeeded(user)
        check_new_password(new_password, username=username, current_password=current_password)
        self.users.set_password(tenant_id, username, hash_password(new_password), change_required=False)
        # A new password ends every session of the user (someone else may hold one).
        self.sessions.revoke_all(tenant_id, username)
        user.password_change_required = False
        return self._start_session(user, list(claims.get("amr") or []))

    def logout(self, tenant_id: str, session_id: str, username: str | None = None) -> None:
        """End the session."""
        self.sessions.revoke(tenant_id, session_id, username)

    # ------------------------------------------------------------------ helpers
    def _active_user(self, tenant_id: str, username: str) -> User:
        """The user of a verified token, while both the user and the tenant are active."""
        tenant = self.tenants.get(tenant_id)
        user = self.users.get(tenant_id, username)
        if tenant is None or user is None or user.status != "ACTIVE":
            raise Unauthorized("invalid credentials")
        if not tenant.active:
            raise Forbidden("tenant is not active")
        return user

    def _claims(self, token: str, token_use: str, source_ip: str | None) -> dict[str, Any]:
        """A verified token's claims, the step counted against the address and the account."""
        try:
            claims = self.verifier.verify(token, token_use)
        except Unauthorized:
            if self.throttle is not None:
                self.throttle.admit(source_ip)
            raise
        if self.throttle is not None:
            self.throttle.admit(source_ip, str(claims["tenant_id"]), str(claims["sub"]))
        return claims

    def _user_of(
        self, token: str, token_use: str, source_ip: str | None, who: dict[str, str | None] | None = None
    ) -> User:
        claims = self._claims(token, token_use, source_ip)
        if who is not None:
            who.update(tenant_id=str(claims["tenant_id"]), user=str(claims["sub"]))
        return self._active_user(str(claims["tenant_id"]), str(claims["sub"]))

    def _start_session(self, user: User, amr: list[str]) -> dict[str, Any]:
        logger.info(
            "sign-in step",
            extra={
                "tenant_id": user.tenant_id,
                "user": user.username,
                "step": "mfa",
                "outcome": "ok",
                "amr": amr,
            },
        )
        # The status as it is now, not as a cache saw it: a tenant suspended a moment ago gets
        # no new session.
        current = self.tenant_of_record.get(user.tenant_id)
        if current is None or not current.active:
            raise Forbidden("tenant is not active")
        access = current.policies.access_control
        scope = SCOPE_PASSWORD_CHANGE if user.password_change_required else SCOPE_FULL
        session = self.sessions.create(
            user.tenant_id,
            user.username,
            amr,
            scope,
            access.session_timeout_minutes,
            access.max_concurrent_sessions,
            access.max_sessions_per_user,
        )
        ttl = int(min(MAX_ACCESS_TTL, session.expires_at - self.clock()))
        token, _ = self.issuer.issue(
            subject=user.username,
            tenant_id=user.tenant_id,
            token_use=ACCESS,
            ttl=ttl,
            roles=list(user.roles),
            amr=amr,
            sid=session.session_id,
            scope=scope,
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "session_id": session.session_id,
            "password_change_required": user.password_change_required,
        }
