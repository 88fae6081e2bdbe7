"""The OCSF 1.1.0 vocabulary of the audit export (tenant_security.audit.ocsf): the enums of the
attributes it sets, each value with its caption as the schema spells it, and the actions that
have a class of their own.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Self

OCSF_VERSION = "1.1.0"
PRODUCT_NAME = "DcisionAI Tenant Security"
VENDOR_NAME = "DcisionAI"
CLOUD_PROVIDER = "AWS"
CLIENT_USER_TYPE = "API Client"  # user.type of an API client (type_id Other: a machine, no person)
LIFECYCLE_PREFIX = "lifecycle:"


class Captioned(IntEnum):
    """An OCSF enum value with its caption as the schema spells it (``activity_name``, ...)."""

    caption: str

    def __new__(cls, value: int, caption: str) -> Self:
        member = int.__new__(cls, value)
        member._value_, member.caption = value, caption
        return member


class Category(Captioned):
    FINDINGS = 2, "Findings"
    IAM = 3, "Identity & Access Management"
    APPLICATION = 6, "Application Activity"


class EventClass(Captioned):
    DETECTION_FINDING = 2004, "Detection Finding"
    ACCOUNT_CHANGE = 3001, "Account Change"
    AUTHENTICATION = 3002, "Authentication"
    API_ACTIVITY = 6003, "API Activity"

    @property
    def category(self) -> Category:
        return next(c for c in Category if c == self // 1000)


class AuthenticationActivity(Captioned):
    LOGON = 1, "Logon"
    LOGOFF = 2, "Logoff"


class AccountChangeActivity(Captioned):
    CREATE = 1, "Create"
    PASSWORD_CHANGE = 3, "Password Change"
    DELETE = 6, "Delete"
    ATTACH_POLICY = 7, "Attach Policy"
    MFA_FACTOR_ENABLE = 10, "MFA Factor Enable"
    OTHER = 99, "Other"


class ApiActivity(Captioned):
    CREATE = 1, "Create"
    READ = 2, "Read"
    UPDATE = 3, "Update"
    DELETE = 4, "Delete"
    OTHER = 99, "Other"


class FindingActivity(Captioned):
    CREATE = 1, "Create"


class Severity(Captioned):
    UNKNOWN = 0, "Unknown"
    INFORMATIONAL = 1, "Informational"
    LOW = 2, "Low"
    MEDIUM = 3, "Medium"
    HIGH = 4, "High"


class Status(Captioned):
    SUCCESS = 1, "Success"
    FAILURE = 2, "Failure"


class ControlAction(Captioned):
    """A Detection Finding's ``action_id``: what the control did with what it saw."""

    UNKNOWN = 0, "Unknown"
    DENIED = 2, "Denied"


class UserType(Captioned):
    UNKNOWN = 0, "Unknown"
    USER = 1, "User"
    OTHER = 99, "Other"


class AuthProtocol(Captioned):
    OAUTH2 = 6, "OAUTH 2.0"


class Profile(StrEnum):
    CLOUD = "cloud"
    SECURITY_CONTROL = "security_control"  # a finding's action_id


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class Action(StrEnum):
    """The actions with a class of their own (every other one is API Activity)."""

    LOGIN = "auth:Login"
    MFA_VERIFY = "auth:MfaVerify"
    TOKEN = "oauth2:Token"  # noqa: S105 - an action (identity.client_credentials.TOKEN_ACTION)
    LOGOUT = "auth:Logout"
    END_SESSION = "auth:EndSession"
    CHANGE_PASSWORD = "auth:ChangePassword"  # noqa: S105 - an action
    MFA_ENROLL = "auth:MfaEnroll"
    MFA_ACTIVATE = "auth:MfaActivate"
    USERS_CREATE = "users:Create"
    USERS_DELETE = "users:Delete"
    USERS_WRITE_ROLES = "users:WriteRoles"
    GDPR_ERASE = "gdpr:Erase"


CLASS_OF: dict[str, tuple[EventClass, Captioned]] = {
    Action.LOGIN: (EventClass.AUTHENTICATION, AuthenticationActivity.LOGON),
    Action.MFA_VERIFY: (EventClass.AUTHENTICATION, AuthenticationActivity.LOGON),  # completes it
    Action.TOKEN: (EventClass.AUTHENTICATION, AuthenticationActivity.LOGON),  # client credentials
    Action.LOGOUT: (EventClass.AUTHENTICATION, AuthenticationActivity.LOGOFF),
    Action.END_SESSION: (EventClass.AUTHENTICATION, AuthenticationActivity.LOGOFF),
    Action.USERS_CREATE: (EventClass.ACCOUNT_CHANGE, AccountChangeActivity.CREATE),
    Action.USERS_DELETE: (EventClass.ACCOUNT_CHANGE, AccountChangeActivity.DELETE),
    Action.GDPR_ERASE: (EventClass.ACCOUNT_CHANGE, AccountChangeActivity.DELETE),  # deletes the user
    Action.USERS_WRITE_ROLES: (EventClass.ACCOUNT_CHANGE, AccountChangeActivity.ATTACH_POLICY),
    Action.CHANGE_PASSWORD: (EventClass.ACCOUNT_CHANGE, AccountChangeActivity.PASSWORD_CHANGE),
    Action.MFA_ACTIVATE: (EventClass.ACCOUNT_CHANGE, AccountChangeActivity.MFA_FACTOR_ENABLE),
    Action.MFA_ENROLL: (EventClass.ACCOUNT_CHANGE, AccountChangeActivity.OTHER),  # not enabled yet
}
