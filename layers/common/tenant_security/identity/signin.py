"""The sign-in flow: password → MFA (or forced enrolment) → session → access token.

A one-time or temporary password never becomes the long-term one: after MFA such a sign-in gets
``password_change_required: true`` and a token whose scope only POST /auth/password accepts.

Every step is throttled per source address before it does any work, and per account once the
tenant's allow-list admitted the address (429; see :mod:`.throttle`): an address the tenant
refuses never spends the account's budget, and an address the user completed a sign-in from is
not stopped by it -- so a stranger cannot keep anyone out from where they sign in. The password
step answers an unknown user, a wrong password, an inactive user and an address the allow-list
refuses alike (401, the same body, the same argon2 work), and no such answer leaves before
``failure_floor`` seconds after the request began, so the work after the check (which differs
between those cases) does not show in the timing either. A wrong password slows that (account,
address) pair down and never locks the account. Only second-factor failures, after a correct
password, count toward the lockout. The tenant's allow-list is checked before the user is
looked up. A session starts only while the user is still as the step read them and the tenant is
active (conditions of the creating transaction), so a demotion, password change or suspension
landing meanwhile cannot leave a session its revocation never saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenant_security.errors import BadRequest, DomainError, Forbidden, Unauthorized
from tenant_security.identity.mfa import Enrollment, MfaService
from tenant_security.identity.passwords import (
    check_new_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from tenant_security.identity.sessions import ChangedMeanwhile, SessionStore
from tenant_security.identity.signin_audit import SignInAudit
from tenant_security.identity.signin_steps import (
    INVALID_CREDENTIALS,
    AddressRefused,
    SignInStep,
    TenantOfRecord,
)
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
from tenant_security.identity.users import User, UserStatus, UserStore
from tenant_security.observability import logger
from tenant_security.tenants import TenantLookup

if TYPE_CHECKING:
    from tenant_security.activity import EventPublisher
    from tenant_security.refusals import RefusalCounter


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
        tenant_of_record: TenantOfRecord | None = None,
        refusals: RefusalCounter | None = None,
        failure_floor: float = 0.0,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``publisher``: where each step's `User Activity` (success or failure) goes;
        ``throttle``: the sign-in throttles; ``tenant_of_record``: a consistent read of the tenant
        (``tenants`` may be a cache) for the moment a session starts, whose record must still say
        ACTIVE when the session is created;
        ``failure_floor``: seconds (by ``timer``) before a failed login is answered, waited with
        ``sleep``."""
        self.failure_floor = failure_floor
        self.timer = timer
        self.sleep = sleep
        self.throttle = throttle
        self.tenant_of_record: TenantLookup = tenant_of_record or tenants
        self.tenant_still_active = tenant_of_record.still_active if tenant_of_record is not None else None
        self.on_first_sign_in = on_first_sign_in
        self.audit = SignInAudit(publisher, refusals, platform_tenant)
        self.users = users
        self.tenants = tenants
        self.sessions = sessions
        self.mfa = mfa
        self.issuer = issuer
        self.verifier = verifier
        self.clock = clock

    # ------------------------------------------------------------------ steps
    def login(self, tenant_id: str, username: str, password: str, source_ip: str | None) -> dict[str, Any]:
        """Check the password; answer with an MFA challenge or a forced enrolment."""
        started = self.timer()
        who: dict[str, str | None] = {}
        try:
            with self.audit.step("auth:Login", source_ip, who):
                return self._login(tenant_id, username, password, source_ip, who)
        except TooManyAttempts:
            # Not held: every throttle refuses before the user is looked up (its timing tells
            # nothing of users), and holding a flood's answers would multiply the concurrency
            # it takes.
            raise
        except DomainError:
            # Held until the same moment whichever check refused it, and after the step's record
            # is written: what each kind of failure does after the password check (a refusal
            # counter for an unknown user, an event for a known one) does not show in the timing.
            self._hold_until(started + self.failure_floor)
            raise

    def _hold_until(self, deadline: float) -> None:
        remaining = deadline - self.timer()
        if remaining > 0:
            self.sleep(remaining)
        elif self.failure_floor > 0:
            # the floor no longer hides the difference between failures: it should be raised
            logger.warning("failed sign-in slower than its floor", extra={"over_seconds": -remaining})

    def _login(
        self, tenant_id: str, username: str, password: str, source_ip: str | None, who: dict[str, str | None]
    ) -> dict[str, Any]:
        if self.throttle is not None:
            self.throttle.admit_address(source_ip)
        tenant = self.tenants.get(tenant_id)
        admitted = tenant is not None and tenant.policies.access_control.allows(source_ip)
        if tenant is not None:
            who["tenant_id"] = tenant_id
        if self.throttle is not None:
            # Only an address the tenant admits spends the account's budget; the rest (and any
            # attempt for a tenant that does not exist) is throttled alike, apart.
            self.throttle.admit_account(tenant_id, username, source_ip, outside=not admitted)
            self.throttle.admit_password(tenant_id, username, source_ip)
        if tenant is not None and not admitted:
            # Before the user is looked up: an address the tenant refuses learns nothing of its
            # users, nor that the tenant exists (the answer, the hash work and the pair's back-off
            # of a wrong password).
            verify_password(None, password)
            if self.throttle is not None:
                self.throttle.password_failed(tenant_id, username, source_ip)
            logger.warning("sign-in refused: source address not allowed", extra={"tenant_id": tenant_id})
            raise AddressRefused
        user = self.users.get(tenant_id, username) if tenant is not None else None
        if user is not None:
            who["user"] = username
        correct = verify_password(user.password_hash if user else None, password)  # same work for all
        if user is None or not correct or user.status != UserStatus.ACTIVE:
            if self.throttle is not None:
                self.throttle.password_failed(tenant_id, username, source_ip)
            logger.warning("sign-in step failed", extra={"tenant_id": tenant_id, "step": "password"})
            raise Unauthorized(INVALID_CREDENTIALS)
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
            return {"status": SignInStep.MFA_ENROLLMENT_REQUIRED, "enrollment_token": token}
        token, _ = self.issuer.issue(
            subject=username, tenant_id=tenant_id, token_use=MFA_CHALLENGE, ttl=CHALLENGE_TTL
        )
        return {"status": SignInStep.MFA_REQUIRED, "challenge_token": token}

    def enroll(self, enrollment_token: str, source_ip: str | None = None) -> Enrollment:
        """A new TOTP secret, QR code and backup codes (shown once)."""
        who: dict[str, str | None] = {}
        with self.audit.step("auth:MfaEnroll", source_ip, who):
            user = self._user_of(enrollment_token, MFA_ENROLLMENT, source_ip, who)
            return self.mfa.enroll(user)

    def activate(
        self, enrollment_token: str, code: str, source_ip: str | None, user_agent: str | None = None
    ) -> dict[str, Any]:
        """Confirm enrolment with a first code; the token reply (its session keeps the client's)."""
        who: dict[str, str | None] = {}
        with self.audit.step("auth:MfaActivate", source_ip, who):
            user = self._user_of(enrollment_token, MFA_ENROLLMENT, source_ip, who)
            amr = self.mfa.activate(user, code, source_ip)
            return self._start_session(user, amr, source_ip, user_agent)

    def verify(
        self,
        challenge_token: str,
        code: str | None,
        backup_code: str | None,
        source_ip: str | None,
        user_agent: str | None = None,
    ) -> dict[str, Any]:
        """Check a TOTP code or a backup code; the token reply."""
        if (code is None) == (backup_code is None):
            raise BadRequest("send either code or backup_code")
        who: dict[str, str | None] = {}
        with self.audit.step("auth:MfaVerify", source_ip, who):
            user = self._user_of(challenge_token, MFA_CHALLENGE, source_ip, who)
            if code is not None:
                amr = self.mfa.verify_code(user, code, source_ip)
            else:
                amr = self.mfa.verify_backup_code(user, str(backup_code), source_ip)
            return self._start_session(user, amr, source_ip, user_agent)

    def change_password(
        self,
        access_token: str,
        current_password: str,
        new_password: str,
        source_ip: str | None,
        user_agent: str | None = None,
    ) -> dict[str, Any]:
        """Replace the password (required after a one-time one); every session of the user ends and
        the reply is a full-rights token of a new one."""
        who: dict[str, str | None] = {}
        with self.audit.step("auth:ChangePassword", source_ip, who):
            claims = self._claims(access_token, ACCESS, source_ip)
            if claims.get("client_id") is not None:  # an API client has no password
                raise Unauthorized("an API client's token changes no password")
            tenant_id, username = str(claims["tenant_id"]), str(claims["sub"])
            who.update(tenant_id=tenant_id, user=username)
            session, tenant = (
                self.sessions.get(tenant_id, str(claims.get("sid", ""))),
                self.tenants.get(tenant_id),
            )
            # judged as every request behind the authorizer is (allow-list, session timeout)
            access = tenant.policies.access_control if tenant is not None else None
            if (
                access is None
                or session is None
                or not session.live_within(access.session_timeout_minutes, time.time())
            ):
                raise Unauthorized("session ended")
            if not access.allows(source_ip):
                raise Forbidden(
                    "refused by the tenant policy: source_ip_not_allowed", code="source_ip_not_allowed"
                )
            user = self._active_user(tenant_id, username)
            # the caller holds a session (MFA done): a wrong current password counts as a failure
            attempt = self.mfa.admit(user, source_ip)
            if not verify_password(user.password_hash, current_password):
                raise self.mfa.fail(user, "invalid current password", source_ip, attempt)
            self.mfa.succeeded(user)
            check_new_password(new_password, username=username, current_password=current_password)
            new_hash = hash_password(new_password)
            self.users.set_password(tenant_id, username, new_hash, change_required=False)
            # A new password ends every session of the user (someone else may hold one).
            self.sessions.revoke_all(tenant_id, username)
            # the user as this step left it: the session starts only while it still is
            user.password_hash, user.password_change_required = new_hash, False
            return self._start_session(user, list(claims.get("amr") or []), source_ip, user_agent)

    def logout(self, tenant_id: str, session_id: str, username: str | None = None) -> None:
        """End the session."""
        self.sessions.revoke(tenant_id, session_id, username)

    # ------------------------------------------------------------------ helpers
    def _active_user(self, tenant_id: str, username: str) -> User:
        """The user of a verified token, while both the user and the tenant are active."""
        tenant = self.tenants.get(tenant_id)
        user = self.users.get(tenant_id, username)
        if tenant is None or user is None or user.status != UserStatus.ACTIVE:
            raise Unauthorized(INVALID_CREDENTIALS)
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

    def _start_session(
        self, user: User, amr: list[str], source_ip: str | None, user_agent: str | None
    ) -> dict[str, Any]:
        """The session and token reply, made from ``user`` as the step read it -- unless the user or
        the tenant changed since: a change of roles only is taken (the session carries the new
        ones); a new password, another status, a deleted user answer 401, a tenant no longer
        active 403."""
        try:
            return self._open_session(user, amr, source_ip, user_agent)
        except ChangedMeanwhile:
            fresh = self.users.get(user.tenant_id, user.username)
            if fresh is None or not _same_credentials(user, fresh):
                logger.warning(
                    "sign-in step failed",
                    extra={"tenant_id": user.tenant_id, "step": "session", "reason": "user changed"},
                )
                raise
            # Only the roles changed (or the tenant did: it is read again). Once more, as the user
            # is now; a second change meanwhile is a 401.
            return self._open_session(fresh, amr, source_ip, user_agent)

    def _open_session(
        self, user: User, amr: list[str], source_ip: str | None, user_agent: str | None
    ) -> dict[str, Any]:
        step = {"tenant_id": user.tenant_id, "user": user.username, "step": "mfa", "outcome": "ok"}
        logger.info("sign-in step", extra={**step, "amr": amr})
        # The status as it is now, not as a cache saw it: a tenant suspended a moment ago gets
        # no new session.
        current = self.tenant_of_record.get(user.tenant_id)
        if current is None or not current.active:
            raise Forbidden("tenant is not active")
        access = current.policies.access_control
        scope = SCOPE_PASSWORD_CHANGE if user.password_change_required else SCOPE_FULL
        # ... and as it is when the session is created, with the user as read: a change landing
        # in between fails the creation rather than outliving its own revocation.
        conditions = [self.users.unchanged(user)]
        if self.tenant_still_active is not None:
            conditions.append(self.tenant_still_active(user.tenant_id))
        session = self.sessions.create(
            user.tenant_id,
            user.username,
            amr,
            scope,
            access.session_timeout_minutes,
            access.max_concurrent_sessions,
            access.max_sessions_per_user,
            conditions=conditions,
            source_ip=source_ip,
            user_agent=user_agent,
        )
        if self.throttle is not None:
            self.throttle.remember_address(user.tenant_id, user.username, source_ip)
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


def _same_credentials(read: User, now: User) -> bool:
    """True when only the roles (if anything) differ between two reads of a user."""
    return (read.password_hash, read.status, read.password_change_required) == (
        now.password_hash,
        now.status,
        now.password_change_required,
    )
