"""Who will be locked out when Microsoft-provided SMS and voice stop: every listed user's sign-in
methods, put in a category (phone-only, phone-default, no-mfa, ready), with fixes the tool can
make itself.

Reads only. The registration report (`/reports/authenticationMethods/userRegistrationDetails`,
paged; Microsoft's way to scan a tenant) answers first. Where it is refused (no AuditLog.Read.All,
or a tenant without Entra ID P1/P2), each user's `/authentication/methods` is read in `$batch`
requests instead, with the default method from `signInPreferences` where it decides the
category. Every page and slice is checkpointed in the journal, so a killed audit resumes.
Nothing is guessed: a value a source doesn't give is empty in the row (`isAdmin` from the
methods), a number Graph masks says `masked`, and a user that couldn't be read is `unread`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol, Sequence

from ._directory import find_targets, report_refusal
from ._errors import ForbiddenError, GraphError, InputError, NotFoundError, PreflightError
from ._graph import AUDIT_FIELDS, USER_FIELDS, DirectoryUser, GraphClient, Registration, RoleHolder
from ._journal import ExportJournal, ExportProgress, run_key
from ._model import SMS_VOICE_CUTOFF, SMS_VOICE_CUTOFF_LATE, Category, PhoneType, user_key
from ._normalize import is_masked

__all__ = ["AUDIT_COLUMNS", "AuditResult", "AuditRow", "audit_users"]

AUDIT_COLUMNS = ["user", "objectId", "category", "reason", "phoneMethods", "phoneNumbers", "otherMethods",
                 "defaultMethod", "systemPreferred", "isAdmin", "isGuest", "blockedFrom", "proposedDefault", "source"]
READ_SLICE = 200  # users read between two checkpoints (the fallback, and named users)
REPORT = "registration report"
METHODS = "methods"
NOT_READ = "not read"  # the registration report has no numbers
# Each source's name for a method -> the audit's (the report: methodsRegistered; the methods: @odata.type).
_KINDS = {
    "mobilePhone": "mobile", "alternateMobilePhone": "alternateMobile", "officePhone": "office",
    "microsoftAuthenticatorPush": "authenticatorApp", "microsoftAuthenticatorPasswordless": "authenticatorApp",
    "microsoftAuthenticator": "authenticatorApp", "passwordlessMicrosoftAuthenticator": "authenticatorApp",
    "softwareOneTimePasscode": "oath", "hardwareOneTimePasscode": "oath", "softwareOath": "oath", "hardwareOath": "oath",
    "passKeyDeviceBound": "passkey", "passKeyDeviceBoundAuthenticator": "passkey", "passKeyDeviceBoundWindowsHello": "passkey",
    "passKeySynced": "passkey", "fido2SecurityKey": "passkey", "fido2": "passkey",
    "windowsHelloForBusiness": "windowsHello", "macOsSecureEnclaveKey": "platformCredential",
    "platformCredential": "platformCredential",
}
_PHONES = [phone_type.value for phone_type in PhoneType]
_NOT_A_SECOND_FACTOR = {"email", "securityQuestion", "temporaryAccessPass", "appPassword", "password"}
_PHONE_DEFAULTS = {"sms", "voiceMobile", "voiceAlternateMobile", "voiceOffice"}


@dataclass
class AuditRow:
    user: str
    object_id: str = ""
    phones: list[str] = field(default_factory=list)  # phone types held
    numbers: dict[str, str] | None = None  # phoneType -> number ("masked" when Graph masks it); None: not read
    others: list[str] = field(default_factory=list)  # every other method held, the audit's names
    preferred: str = ""  # the default method (signInPreferences' names; "none"); "" when not read
    system_preferred: bool | None = None
    admin: bool | None = None
    guest: bool | None = None
    source: str = ""
    error: str = ""  # why the user couldn't be read

    @property
    def strong(self) -> list[str]:
        """The methods held that are a second factor and not a phone."""
        return [kind for kind in self.others if kind not in _NOT_A_SECOND_FACTOR]

    @property
    def category(self) -> Category:
        if self.error:
            return Category.UNREAD
        if not self.phones:
            return Category.READY if self.strong else Category.NO_MFA
        if not self.strong:
            return Category.PHONE_ONLY
        if self.system_preferred:
            return Category.READY
        if not self.preferred:
            return Category.UNREAD  # the default decides, and it wasn't read
        return Category.PHONE_DEFAULT if self.preferred in _PHONE_DEFAULTS else Category.READY

    @property
    def proposed_default(self) -> str:
        """The default bulkphone can set for a phone-default user: the Authenticator app's push
        when the user has it, else `system` (Entra then picks the strongest method held)."""
        if self.category is not Category.PHONE_DEFAULT:
            return ""
        return "push" if "authenticatorApp" in self.strong else "system"

    @property
    def blocked_from(self) -> str:
        """When a phone-only user is blocked at sign-in, unless a telephony provider is contracted."""
        if self.category is not Category.PHONE_ONLY:
            return ""
        if self.guest:
            return SMS_VOICE_CUTOFF_LATE
        if self.admin:
            return f"{SMS_VOICE_CUTOFF} ({SMS_VOICE_CUTOFF_LATE} for a Global Administrator)"
        return SMS_VOICE_CUTOFF

    @property
    def reason(self) -> str:
        category, strong = self.category, ", ".join(self.strong)
        phones = ", ".join(self.phones)
        if category is Category.UNREAD:
            return self.error or (f"has {strong} and {phones}, but the default method couldn't be read, and it "
                                  "decides whether SMS/voice is used: run the audit again")
        if category is Category.NO_MFA:
            return "no second factor registered" + (f" (only {', '.join(self.others)})" if self.others else "")
        if category is Category.PHONE_ONLY:
            return (f"only phone methods ({phones}): Microsoft-provided SMS and voice stop on {self.blocked_from}, "
                    "and the user is blocked at sign-in then, unless a telephony provider is contracted; needs a "
                    "passkey or the Authenticator app")
        if category is Category.PHONE_DEFAULT:
            return (f"has {strong} but signs in with {self.preferred} by default (system-preferred off): "
                    f"move the default to {self.proposed_default}")
        if self.system_preferred:
            return f"system-preferred: Entra signs the user in with the strongest of {strong}"
        return f"has {strong}; default {self.preferred or 'none'}" + (f"; phones kept as a backup ({phones})" if phones else "")

    def csv_row(self) -> dict[str, str]:
        def said(value: bool | None) -> str:
            return "" if value is None else "yes" if value else "no"

        numbers = NOT_READ if self.numbers is None else " ".join(f"{t}={n}" for t, n in self.numbers.items())
        return {
            "user": self.user, "objectId": self.object_id, "category": self.category.value, "reason": self.reason,
            "phoneMethods": " ".join(self.phones), "phoneNumbers": numbers if self.phones else "",
            "otherMethods": " ".join(self.others), "defaultMethod": self.preferred,
            "systemPreferred": said(self.system_preferred), "isAdmin": said(self.admin), "isGuest": said(self.guest),
            "blockedFrom": self.blocked_from, "proposedDefault": self.proposed_default, "source": self.source,
        }


@dataclass
class AuditResult:
    rows: list[AuditRow]  # every listed user once, in listing order
    source: str  # REPORT or METHODS
    fallback_reason: str = ""  # why the registration report wasn't used
    admins_unknown: str = ""  # why who is an admin isn't known (read from each user's methods)
    resumed_users: int = 0
    stopped: bool = False

    def counts(self) -> dict[str, int]:
        counts = {category.value: 0 for category in Category}
        for row in self.rows:
            counts[row.category.value] += 1
        return counts


async def audit_users(
    client: GraphClient,
    journal: ExportJournal,
    key: str,
    *,
    users: Sequence[str] | None = None,
    groups: Sequence[str] = (),
    page_size: int = 999,
    progress: Callable[[int, int | None], None] | None = None,
    stop: asyncio.Event | None = None,
) -> AuditResult:
    """Audit the `users` named (UPNs or ids), the members of `groups` (narrowed to `users` when
    both are given), or every user of the tenant. `key` names this audit in the journal: the
    same key resumes an unfinished one (by the source it was using)."""
    named = None
    if groups or users is not None:
        targets = await find_targets(client, groups=groups, users=users, fields=AUDIT_FIELDS)
        named = [_entry(person) for person in targets.people] + [f"\t{user}\t" for user in targets.missing]
    try:
        return await _run(client, journal, run_key(key, REPORT), named, _ReportReader(client), page_size, progress, stop)
    except ForbiddenError as exc:
        why = report_refusal(exc)
    reader = _MethodsReader(client)
    try:
        result = await _run(client, journal, run_key(key, METHODS), named, reader, page_size, progress, stop)
    except ForbiddenError as exc:
        raise PreflightError(
            f"reading users' methods was refused: the registration report ({why}) and each user's methods "
            f"({exc.message}). Fix: grant the app AuditLog.Read.All (the report; the tenant needs Entra ID P1/P2), or "
            "UserAuthenticationMethod.Read.All and User.Read.All (each user's methods), as application permissions "
            "with admin consent") from None
    result.fallback_reason = why
    if any(row.admin is None and not row.error for row in result.rows):
        result.admins_unknown = reader.admins_unknown or "the directory's role assignments weren't read for them"
    return result


def _entry(person: DirectoryUser) -> str:
    return f"{person.id}\t{person.upn}\t{person.user_type}"


async def _run(client, journal: ExportJournal, key: str, named: list[str] | None, reader: _Reader, page_size: int,
               progress, stop) -> AuditResult:
    state = journal.resume_or_begin(key)
    resumed = len(state.rows)
    if not state.listed:
        if named is not None:
            journal.listed(state, named, None)
        else:
            await _list_tenant(journal, state, reader, page_size, progress, stop)
    if state.listed:
        todo = [seq for seq in range(len(state.users)) if seq not in state.rows]
        for start in range(0, len(todo), READ_SLICE):
            if stop is not None and stop.is_set():
                break
            chunk = todo[start: start + READ_SLICE]
            rows = await reader.read([state.users[seq] for seq in chunk])
            journal.read(state, {seq: json.dumps(asdict(row)) for seq, row in zip(chunk, rows)})
            if progress is not None:
                progress(len(state.rows), len(state.users))
    done = state.listed and len(state.rows) == len(state.users)
    if done:
        journal.finish(state)
    rows = [AuditRow(**json.loads(state.rows[seq])) for seq in sorted(state.rows)]
    return AuditResult(rows, reader.source, resumed_users=resumed, stopped=not done)


async def _list_tenant(journal: ExportJournal, state: ExportProgress, reader: _Reader, page_size: int, progress,
                       stop) -> None:
    """The whole tenant, page after page into the journal, from where a killed audit stopped."""
    link = state.next_link
    while not state.listed:
        if stop is not None and stop.is_set():
            return
        entries, rows, link = await reader.page(link, page_size)
        first = len(state.users)
        journal.listed(state, entries, link)
        if rows:
            journal.read(state, {first + offset: json.dumps(asdict(row)) for offset, row in enumerate(rows)})
        if progress is not None:
            progress(len(state.rows), None if link else len(state.users))


class _Reader(Protocol):
    """One source of the audit: how it lists the whole tenant (into the journal) and reads a
    slice of listed users ("id<TAB>upn<TAB>userType"; no id: not found in the directory)."""

    source: str

    async def page(self, link: str | None, page_size: int) -> tuple[list[str], list[AuditRow], str | None]:
        """One page of the whole tenant: its entries, the rows read with them (if the source
        gives them at once), and the next page's link."""

    async def read(self, entries: list[str]) -> list[AuditRow]: ...


class _ReportReader:
    """The registration report: the whole tenant page by page (each page's rows are read as
    they are listed), or named users by object id."""

    source = REPORT

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    async def page(self, link: str | None, page_size: int) -> tuple[list[str], list[AuditRow], str | None]:
        found, link = await self.client.list_registrations_page(link, page_size)
        return [f"{row.user_id}\t{row.upn}\t{row.user_type}" for row in found], [_from_report(row) for row in found], link

    async def read(self, entries: list[str]) -> list[AuditRow]:
        people = [entry.split("\t") for entry in entries]
        ids = [object_id for object_id, _, _ in people if object_id]
        answers = await self.client.read_registrations(ids) if ids else {}
        # The report can lag behind a new user: read those users' methods instead.
        late = [entry for entry, (object_id, _, _) in zip(entries, people) if isinstance(answers.get(object_id), NotFoundError)]
        read_late = dict(zip(late, await _MethodsReader(self.client).read(late))) if late else {}
        rows = []
        for entry, (object_id, upn, user_type) in zip(entries, people):
            answer = answers.get(object_id)
            if not object_id:
                rows.append(AuditRow(upn, error="user not found in the directory: check the UPN or object id"))
            elif entry in read_late:
                rows.append(read_late[entry])
            elif isinstance(answer, GraphError):
                rows.append(AuditRow(upn, object_id, error=f"couldn't read the user's registration: {answer.message}"))
            else:
                rows.append(_from_report(answer, upn, object_id))
        return rows


def _from_report(row: Registration, upn: str = "", object_id: str = "") -> AuditRow:
    kinds = [_KINDS.get(kind, kind) for kind in row.methods]
    return AuditRow(
        row.upn or upn or row.user_id, row.user_id or object_id,
        phones=[t for t in _PHONES if t in kinds], numbers=None, others=_others(kinds),
        preferred=row.preferred, system_preferred=row.system_preferred, admin=row.admin,
        guest=row.user_type.lower() == "guest" if row.user_type else None, source=REPORT)


def _others(kinds: list[str]) -> list[str]:
    return list(dict.fromkeys(kind for kind in kinds if kind not in _PHONES and kind != "phone"))


class _MethodsReader:
    """Each user's /authentication/methods (users listed with their user type), and the default
    method of those whose category it decides."""

    source = METHODS

    def __init__(self, client: GraphClient) -> None:
        self.client = client
        self.admins: set[str] | None = None  # user keys of the object ids of users who hold a directory role
        self.admins_unknown = ""  # why `admins` couldn't be read
        self._admins_read = False

    async def page(self, link: str | None, page_size: int) -> tuple[list[str], list[AuditRow], str | None]:
        found, link = await self.client.list_users_page(link, page_size, fields=AUDIT_FIELDS)
        return [_entry(person) for person in found], [], link

    async def read(self, entries: list[str]) -> list[AuditRow]:
        if not self._admins_read:
            self.admins, self.admins_unknown = await _role_holding_users(self.client)
            self._admins_read = True
        people = [entry.split("\t") for entry in entries]
        ids = [object_id for object_id, _, _ in people if object_id]
        answers = await self.client.read_method_kinds(ids) if ids else {}
        rows = []
        for object_id, upn, user_type in people:
            answer = answers.get(object_id)
            if not object_id:
                rows.append(AuditRow(upn, error="user not found in the directory: check the UPN or object id"))
            elif isinstance(answer, GraphError):
                rows.append(AuditRow(upn, object_id, error=f"couldn't read the user's methods: {answer.message}"))
            else:
                kinds = [_KINDS.get(kind, kind) for kind in answer.methods]
                numbers = {t: "masked" if is_masked(n) else n for t, n in answer.phones.items()}
                rows.append(AuditRow(upn or object_id, object_id, phones=[t for t in _PHONES if t in numbers],
                                     numbers={t: numbers[t] for t in _PHONES if t in numbers}, others=_others(kinds),
                                     guest=user_type.lower() == "guest" if user_type else None,
                                     admin=None if self.admins is None else user_key(object_id) in self.admins, source=METHODS))
        deciding = [row.object_id for row in rows if row.phones and row.strong]
        defaults = await self.client.read_sign_in_preferences(deciding) if deciding else {}
        for row in rows:
            default = defaults.get(row.object_id)
            if isinstance(default, GraphError):
                row.error = f"couldn't read the user's default method: {default.message}"
            elif default is not None:
                row.preferred, row.system_preferred = default.preferred or "none", default.system_preferred
        return rows


async def _role_holding_users(client: GraphClient) -> tuple[set[str] | None, str]:
    """The object ids (as user keys) of the users who hold a directory role, themselves or through a
    role-assignable group (what the registration report calls isAdmin); or None, and why not."""
    holders: list[RoleHolder] = []
    link = None
    try:
        while True:
            page, link = await client.list_role_holders_page(link)
            holders.extend(page)
            if not link:
                break
    except ForbiddenError as exc:
        return None, f"reading the directory's role assignments was refused ({exc.message}): grant RoleManagement.Read.Directory"
    admins = {user_key(holder.id) for holder in holders if holder.kind == "user"}
    for group in dict.fromkeys(holder.id for holder in holders if holder.kind == "group"):
        try:
            admins.update(user_key(person.id) for person in (await find_targets(client, groups=[group], fields=USER_FIELDS)).people)
        except PreflightError as exc:
            return None, f"a role-assignable group's members couldn't be read ({exc})"
        except InputError:
            continue  # the group was deleted since its role assignment was listed: no members to count
    return admins, ""
