"""Small value types shared by every step of the pipeline."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "AUDIT_CATEGORIES",
    "Action",
    "Category",
    "Mode",
    "PhoneMethod",
    "PhoneType",
    "SignInPreferences",
    "Status",
    "METHOD_IDS",
    "DEFAULT_METHOD",
    "DEFAULT_NEEDS",
    "SETTINGS",
    "SMS_READY",
    "SMS_SIGN_IN",
    "user_key",
]


class PhoneType(str, enum.Enum):
    MOBILE = "mobile"
    ALTERNATE_MOBILE = "alternateMobile"
    OFFICE = "office"

    def __str__(self) -> str:
        return self.value

    @property
    def method_id(self) -> str:
        return METHOD_IDS[self]


# Graph gives each phone type a fixed method id, the same in every tenant.
METHOD_IDS: dict[PhoneType, str] = {
    PhoneType.MOBILE: "3179e48a-750b-4051-897c-87b9720928f7",
    PhoneType.ALTERNATE_MOBILE: "b6332ec1-7057-4abe-9331-3d72feddfe41",
    PhoneType.OFFICE: "e37fc753-ff3b-4958-9484-eaa9425c82bc",
}


class Mode(str, enum.Enum):
    """How a blank cell and an existing number are treated."""

    UPSERT = "upsert"
    CREATE_ONLY = "create-only"
    SYNC = "sync"

    def __str__(self) -> str:
        return self.value


class Action(str, enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NOOP = "noop"
    SKIP = "skip"

    def __str__(self) -> str:
        return self.value

    @property
    def writes(self) -> bool:
        return self in (Action.CREATE, Action.UPDATE, Action.DELETE)


class Status(str, enum.Enum):
    PLANNED = "planned"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


# Per-user settings an input may give beside the numbers: a column each (wide shape), a report
# row each, planned and applied like a number but never deleted (a blank leaves them alone).
class Category(str, enum.Enum):
    """Where a user stands when Microsoft-provided SMS and voice stop (bulkphone audit)."""

    PHONE_ONLY = "phone-only"  # only SMS/voice: blocked at sign-in after the cut-off, unless a telephony provider
    PHONE_DEFAULT = "phone-default"  # has something stronger, but signs in with SMS/voice by default
    NO_MFA = "no-mfa"
    READY = "ready"
    UNREAD = "unread"  # couldn't be read: never guessed


AUDIT_CATEGORIES = [category.value for category in Category]
# Entra "SMS and voice retirement": Microsoft-provided SMS and voice stop for MFA and SSPR.
SMS_VOICE_CUTOFF = "2027-02-01"
SMS_VOICE_CUTOFF_LATE = "2027-07-01"  # for Global Administrators and external users (guests)
PASSKEY_PUSH_SINCE = "2026-09-01"  # users enabled for SMS/voice are auto-enabled for passkeys and prompted


DEFAULT_METHOD = "defaultMethod"  # signInPreferences: the default sign-in method, or `system` (Entra chooses)
SMS_SIGN_IN = "smsSignIn"  # enabled / disabled: SMS sign-in on the user's mobile
SETTINGS = (DEFAULT_METHOD, SMS_SIGN_IN)
SMS_READY = "ready"  # a mobile's smsSignInState when SMS sign-in is on
# A default on a phone needs that phone after the run.
DEFAULT_NEEDS = {"sms": PhoneType.MOBILE, "voiceMobile": PhoneType.MOBILE,
                 "voiceAlternateMobile": PhoneType.ALTERNATE_MOBILE, "voiceOffice": PhoneType.OFFICE}


@dataclass(frozen=True)
class PhoneMethod:
    """A phone method as Graph returns it."""

    phone_type: PhoneType
    phone_number: str
    sms_sign_in_state: str = ""


@dataclass(frozen=True)
class SignInPreferences:
    """A user's default sign-in method as Graph's beta signInPreferences holds it."""

    preferred: str = ""  # userPreferredMethodForSecondaryAuthentication: sms, voiceMobile, voiceOffice, push, ...; "" if none
    system_preferred: bool = False  # isSystemPreferredAuthenticationMethodEnabled: Entra chooses

    @property
    def default(self) -> str:
        """The default as a defaultMethod cell writes it: `system` when Entra chooses."""
        return "system" if self.system_preferred else self.preferred


def user_key(user: str) -> str:
    """UPNs are case-insensitive in Entra ID, and so are object ids."""
    return user.strip().lower()
