"""Users of a tenant in DynamoDB (key: tenant_id, username).

Every change that guards a security property is a single conditional write: a TOTP time step is
accepted once, a backup code is spent once, failed attempts are counted atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tenant_security.dynamo import (
    cancellation_codes,
    from_item,
    is_conditional_failure,
    is_contention,
    partition_items,
    to_item,
    to_value,
)
from tenant_security.errors import Conflict, NotFound

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutTypeDef, TransactWriteItemTypeDef


class GuardFailed(Conflict):
    """A write's guard (a transaction item the caller added, e.g. "the tenant's roles are as I
    read them") did not hold, or met another write: nothing was written; read again, retry."""

    code = "roles_changed"


def _guard_failed(exc: BaseException) -> bool:
    """True when a transaction whose last item is a guard was cancelled by that guard (or by
    contention, which a retry may get past)."""
    codes = cancellation_codes(exc)
    return is_contention(exc) or (bool(codes) and codes[-1] == "ConditionalCheckFailed")


@dataclass(frozen=True)
class Attempt:
    """The outcome of admitting a second-factor attempt (see :meth:`UserStore.admit_attempt`)."""

    admitted: bool
    count: int
    locked_until: int = 0


class UserStatus(StrEnum):
    """Where a user account stands: only an active user signs in, keeps a session and counts as
    a holder of a role that must keep one."""

    ACTIVE = "ACTIVE"


@dataclass
class User:
    tenant_id: str
    username: str
    email: str
    roles: list[str]
    password_hash: str
    password_change_required: bool = True
    status: str = UserStatus.ACTIVE
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    mfa_enrolled: bool = False
    mfa_secret: bytes | None = None
    mfa_pending_secret: bytes | None = None
    backup_code_hashes: set[str] = field(default_factory=set)
    pending_backup_code_hashes: set[str] = field(default_factory=set)
    mfa_last_timecode: int | None = None
    failed_attempts: int = 0
    locked_until: int = 0

    def public(self) -> dict[str, Any]:
        """What the API shows of a user (never hashes, secrets or counters)."""
        return {
            "username": self.username,
            "email": self.email,
            "roles": list(self.roles),
            "status": self.status,
            "mfa_enrolled": self.mfa_enrolled,
            "password_change_required": self.password_change_required,
            "created_at": self.created_at,
        }


def _user(item: dict[str, Any]) -> User:
    values = from_item(item)
    values["roles"] = list(values.get("roles", []))
    for name in ("backup_code_hashes", "pending_backup_code_hashes"):
        values[name] = set(values.get(name, set()))
    return User(**{k: v for k, v in values.items() if k in User.__dataclass_fields__})


class UserStore:
    """The users table."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    @staticmethod
    def _key(tenant_id: str, username: str) -> dict[str, Any]:
        return {"tenant_id": {"S": tenant_id}, "username": {"S": username}}

    def get(self, tenant_id: str, username: str) -> User | None:
        """The user, read consistently (security state must not be stale)."""
        reply = self.client.get_item(
            TableName=self.table, Key=self._key(tenant_id, username), ConsistentRead=True
        )
        item = reply.get("Item")
        return _user(item) if item else None

    def create(self, user: User, guard: TransactWriteItemTypeDef | None = None) -> None:
        """Add a new user; 409 if the name is taken in this tenant. With ``guard``, only together
        with it (one transaction; :class:`GuardFailed` when it does not hold)."""
        values = {k: v for k, v in user.__dict__.items() if v not in (None, set())}
        put: PutTypeDef = {
            "TableName": self.table,
            "Item": to_item(values),
            "ConditionExpression": "attribute_not_exists(username)",
        }
        if guard is not None:
            self._transact([{"Put": put}, guard], Conflict(f"user {user.username!r} exists"))
            return
        try:
            self.client.put_item(**put)
        except Exception as exc:
            if is_conditional_failure(exc):
                raise Conflict(f"user {user.username!r} exists") from exc
            raise

    def _transact(self, items: list[TransactWriteItemTypeDef], refused: Exception) -> None:
        """One transaction whose last item is a guard: :class:`GuardFailed` when the guard did
        not hold, ``refused`` when another item's condition did not."""
        try:
            self.client.transact_write_items(TransactItems=items)
        except Exception as exc:
            if _guard_failed(exc):
                raise GuardFailed("the write's guard did not hold") from exc
            if is_conditional_failure(exc):
                raise refused from exc
            raise

    def list_users(self, tenant_id: str) -> list[User]:
        """Every user of the tenant."""
        return [_user(item) for item in partition_items(self.client, self.table, "tenant_id", tenant_id)]

    def _update(
        self,
        tenant_id: str,
        username: str,
        expression: str,
        values: dict[str, Any],
        condition: str = "attribute_exists(username)",
        names: dict[str, str] | None = None,
    ) -> bool:
        """A conditional update; False when the condition does not hold."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(tenant_id, username),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = {k: to_value(v) for k, v in values.items()}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self.client.update_item(**kwargs)
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def delete(self, tenant_id: str, username: str, keep_one: str | None = None) -> None:
        """Remove the user; 404 if there is none. With ``keep_one`` (a role), 409 when the user is
        the tenant's last active holder of it -- checked in the same transaction as the delete,
        so two deletions at once cannot remove the last two."""
        user = self.get(tenant_id, username) if keep_one else None
        if user is None or keep_one is None or keep_one not in user.roles:
            try:
                self.client.delete_item(
                    TableName=self.table,
                    Key=self._key(tenant_id, username),
                    ConditionExpression="attribute_exists(username)",
                )
            except Exception as exc:
                if is_conditional_failure(exc):
                    raise NotFound(f"no user {username!r}") from exc
                raise
            return
        delete: TransactWriteItemTypeDef = {
            "Delete": {
                "TableName": self.table,
                "Key": self._key(tenant_id, username),
                "ConditionExpression": "attribute_exists(username)",
            }
        }
        self._keeping_another(tenant_id, username, keep_one, delete)

    def set_roles(
        self,
        tenant_id: str,
        username: str,
        roles: list[str],
        keep_one: str | None = None,
        guard: TransactWriteItemTypeDef | None = None,
    ) -> None:
        """Replace the user's roles; 404 if there is none. With ``keep_one`` (a role), 409 when the
        change takes it from the tenant's last active holder -- in one transaction, as delete.
        With ``guard``, only together with it (:class:`GuardFailed` when it does not hold)."""
        update: TransactWriteItemTypeDef = {
            "Update": {
                "TableName": self.table,
                "Key": self._key(tenant_id, username),
                "UpdateExpression": "SET #r = :r",
                "ConditionExpression": "attribute_exists(username)",
                "ExpressionAttributeNames": {"#r": "roles"},
                "ExpressionAttributeValues": {":r": to_value(roles)},
            }
        }
        user = self.get(tenant_id, username) if keep_one is not None and keep_one not in roles else None
        if user is None or keep_one is None or keep_one not in user.roles or user.status != UserStatus.ACTIVE:
            if guard is not None:
                self._transact([update, guard], NotFound(f"no user {username!r}"))
            elif not self._update(tenant_id, username, "SET #r = :r", {":r": roles}, names={"#r": "roles"}):
                raise NotFound(f"no user {username!r}")
            return
        self._keeping_another(tenant_id, username, keep_one, update, guard)

    def _keeping_another(
        self,
        tenant_id: str,
        username: str,
        role: str,
        write: TransactWriteItemTypeDef,
        guard: TransactWriteItemTypeDef | None = None,
    ) -> None:
        """Run ``write`` (taking ``role`` from the user) only together with a check that another
        active user still holds it; 409 ``last_<role>`` when none does."""
        others = [
            u
            for u in self.list_users(tenant_id)
            if u.username != username and role in u.roles and u.status == UserStatus.ACTIVE
        ]
        for other in others:  # any one other holder that still holds it when we write
            try:
                check: TransactWriteItemTypeDef = {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": self._key(tenant_id, other.username),
                        "ConditionExpression": "contains(#r, :role) AND #st = :active",
                        "ExpressionAttributeNames": {"#r": "roles", "#st": "status"},
                        "ExpressionAttributeValues": {
                            ":role": {"S": role},
                            ":active": {"S": UserStatus.ACTIVE},
                        },
                    }
                }
                self.client.transact_write_items(TransactItems=[write, check, *([guard] if guard else [])])
            except Exception as exc:
                if guard is not None and _guard_failed(exc):
                    raise GuardFailed("the write's guard did not hold") from exc
                if is_conditional_failure(exc):
                    continue
                raise
            return
        raise Conflict(f"{username!r} is the tenant's last {role}", code="last_" + role.replace("-", "_"))

    def unchanged(self, user: User) -> dict[str, Any]:
        """A transaction item that holds only while the user is still as ``user`` was read: the
        same roles, password, status and password-change requirement (what a session and its
        token are made from). A deleted user fails it too."""
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": self._key(user.tenant_id, user.username),
                "ConditionExpression": "#r = :r AND password_hash = :h AND #st = :st "
                "AND password_change_required = :c",
                "ExpressionAttributeNames": {"#r": "roles", "#st": "status"},
                "ExpressionAttributeValues": {
                    ":r": to_value(list(user.roles)),
                    ":h": to_value(user.password_hash),
                    ":st": to_value(user.status),
                    ":c": to_value(user.password_change_required),
                },
            }
        }

    def set_password(self, tenant_id: str, username: str, password_hash: str, change_required: bool) -> None:
        if not self._update(
            tenant_id,
            username,
            "SET password_hash = :h, password_change_required = :c",
            {":h": password_hash, ":c": change_required},
        ):
            raise NotFound(f"no user {username!r}")

    def set_pending_mfa(self, tenant_id: str, username: str, secret: bytes, code_hashes: set[str]) -> None:
        """Store a new (not yet confirmed) MFA secret and backup codes; 409 once MFA is enrolled."""
        if not self._update(
            tenant_id,
            username,
            "SET mfa_pending_secret = :s, pending_backup_code_hashes = :b",
            {":s": secret, ":b": code_hashes, ":false": False},
            condition="attribute_exists(username) AND mfa_enrolled = :false",
        ):
            raise Conflict("MFA is already enrolled")

    def activate_mfa(self, tenant_id: str, username: str, timecode: int) -> bool:
        """Promote the pending secret and codes, accepting ``timecode`` as the first used step."""
        return self._update(
            tenant_id,
            username,
            "SET mfa_secret = mfa_pending_secret, backup_code_hashes = pending_backup_code_hashes, "
            "mfa_enrolled = :true, mfa_last_timecode = :tc, failed_attempts = :zero "
            "REMOVE mfa_pending_secret, pending_backup_code_hashes",
            {":true": True, ":false": False, ":tc": timecode, ":zero": 0},
            condition="attribute_exists(mfa_pending_secret) AND mfa_enrolled = :false",
        )

    def accept_timecode(self, tenant_id: str, username: str, timecode: int) -> bool:
        """Record ``timecode`` as used; False if it (or a later one) was used already (a replay)."""
        return self._update(
            tenant_id,
            username,
            "SET mfa_last_timecode = :tc, failed_attempts = :zero",
            {":tc": timecode, ":zero": 0},
            condition="attribute_exists(username) AND "
            "(attribute_not_exists(mfa_last_timecode) OR mfa_last_timecode < :tc)",
        )

    def consume_backup_code(self, tenant_id: str, username: str, code_hash: str) -> bool:
        """Spend a backup code; False if it is not (or no longer) one of the user's."""
        return self._update(
            tenant_id,
            username,
            "DELETE backup_code_hashes :h SET failed_attempts = :zero",
            {":h": {code_hash}, ":code": code_hash, ":zero": 0},
            condition="contains(backup_code_hashes, :code)",
        )

    def admit_attempt(self, tenant_id: str, username: str, now: int, max_failures: int) -> Attempt:
        """Count one second-factor attempt *before* it is evaluated, while the user is not locked.

        One conditional write: N parallel attempts are admitted at most ``max_failures`` times per
        lockout, whatever they guess (a success sets the count back to zero). A refused attempt is
        not evaluated at all.
        """
        try:
            reply = self.client.update_item(
                TableName=self.table,
                Key=self._key(tenant_id, username),
                UpdateExpression="ADD failed_attempts :one",
                ConditionExpression="attribute_exists(username) "
                "AND (attribute_not_exists(locked_until) OR locked_until <= :now) "
                "AND (attribute_not_exists(failed_attempts) OR failed_attempts < :max)",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":now": {"N": str(now)},
                    ":max": {"N": str(max_failures)},
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            old = getattr(exc, "response", {}).get("Item") or {}
            return Attempt(
                admitted=False,
                count=int(old.get("failed_attempts", {}).get("N", 0)),
                locked_until=int(old.get("locked_until", {}).get("N", 0)),
            )
        return Attempt(admitted=True, count=int(reply["Attributes"]["failed_attempts"]["N"]))

    def reset_failures(self, tenant_id: str, username: str) -> None:
        """The second factor (or the current password) was right: the failure count starts again."""
        self._update(tenant_id, username, "SET failed_attempts = :zero", {":zero": 0})

    def lock(self, tenant_id: str, username: str, until: int, threshold: int, now: int) -> bool:
        """Lock until ``until`` if the count reached ``threshold`` and no lock is in force; True for
        the one caller that locked."""
        return self._update(
            tenant_id,
            username,
            "SET locked_until = :until, failed_attempts = :zero",
            {":until": until, ":zero": 0, ":threshold": threshold, ":now": now},
            condition="failed_attempts >= :threshold "
            "AND (attribute_not_exists(locked_until) OR locked_until <= :now)",
        )
