"""Export a tenant's current phone methods as a wide CSV that `plan` and `apply` take as input.

Users come from a list, or from the whole tenant (`GET /users`, page after page); their
methods are read in `$batch` requests with the usual retries and throttling. Each page and
each slice of users is checkpointed in the journal, so a big export that dies resumes where it
stopped. A number Graph shows masked is never exported as if it were one: its cell is left
empty and `notExported` names its type, which `plan`/`apply` turn into a row to fix rather
than a blank (a blank deletes in sync mode).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from ._errors import ForbiddenError, GraphError, NotFoundError, PreflightError
from ._graph import DirectoryUser, GraphClient, Methods
from ._journal import ExportJournal, ExportProgress
from ._logs import event
from ._model import DEFAULT_NEEDS, SMS_READY, PhoneType, SignInPreferences
from ._normalize import is_masked

__all__ = ["EXPORT_COLUMNS", "ExportResult", "ExportRow", "export_users"]

EXPORT_COLUMNS = ["user", "mobile", "alternateMobile", "office", "objectId", "smsSignInState", "notExported", "note",
                  "defaultMethod", "smsSignIn"]
READ_SLICE = 200  # users read (in $batch requests of 20) between two checkpoints
MASKED_FIX = (
    "Graph showed the exporting sign-in masked numbers; export with an application permission "
    "(UserAuthenticationMethod.Read.All) to carry them over"
)


@dataclass
class ExportRow:
    user: str
    object_id: str = ""
    numbers: dict[str, str] = field(default_factory=dict)  # phoneType -> number as Graph stores it
    sms_sign_in_state: str = ""  # the mobile's
    not_exported: list[str] = field(default_factory=list)  # phone types whose value is unknown here
    note: str = ""
    default_method: str = ""  # a phone default (sms, voiceOffice, ...) or system; "" for none or another kind

    @property
    def empty(self) -> bool:
        return not self.numbers and not self.not_exported

    def csv_row(self) -> dict[str, str]:
        return {
            "user": self.user,
            **{phone_type.value: self.numbers.get(phone_type.value, "") for phone_type in PhoneType},
            "objectId": self.object_id,
            "smsSignInState": self.sms_sign_in_state,
            "notExported": " ".join(self.not_exported),
            "note": self.note,
            "defaultMethod": self.default_method,
            # What apply sets: on for a mobile that has it, off for one that hasn't; nothing without a mobile.
            "smsSignIn": ("enabled" if self.sms_sign_in_state == SMS_READY else "disabled") if "mobile" in self.numbers else "",
        }


@dataclass
class ExportResult:
    rows: list[ExportRow]  # every listed user, in listing order, empty ones included
    resumed_users: int = 0  # users an earlier, killed export had already read
    stopped: bool = False

    def exported(self, include_empty: bool = False) -> list[ExportRow]:
        return [row for row in self.rows if include_empty or not row.empty]

    def counts(self) -> dict[str, int]:
        return {
            "listed": len(self.rows),
            "with numbers": sum(1 for row in self.rows if row.numbers),
            "without phone methods": sum(1 for row in self.rows if row.empty),
            "not exported": sum(1 for row in self.rows if row.not_exported),
        }


async def export_users(
    client: GraphClient,
    journal: ExportJournal,
    key: str,
    *,
    users: Iterable[str] | None = None,
    found: Iterable[DirectoryUser] | None = None,
    page_size: int = 999,
    progress: Callable[[int, int | None], None] | None = None,
    stop: asyncio.Event | None = None,
) -> ExportResult:
    """Every listed user's phone methods: the `users` named (UPNs or ids), or the users already
    `found` in the directory (a group's members), or all of the tenant's users when neither.

    `key` names this export in the journal: the same key resumes an unfinished one."""
    state = journal.resume_or_begin(key)
    resumed = len(state.rows)
    fresh: dict[int, ExportRow] = {}  # read in this run: no need to decode them back from the journal
    if not state.listed:
        if found is not None:
            journal.listed(state, [f"{user.id}\t{user.upn}" for user in found], None)
        elif users is None:
            await _list_tenant(client, journal, state, page_size, progress, stop)
        else:
            journal.listed(state, list(dict.fromkeys(users)), None)
    if not state.listed:
        return ExportResult(_rows(state, fresh), resumed, stopped=True)
    todo = [seq for seq in range(len(state.users)) if seq not in state.rows]
    for start in range(0, len(todo), READ_SLICE):
        if stop is not None and stop.is_set():
            return ExportResult(_rows(state, fresh), resumed, stopped=True)
        chunk = todo[start : start + READ_SLICE]
        rows = await _read(client, [state.users[seq] for seq in chunk], resolve=users is not None and found is None)
        journal.read(state, {seq: json.dumps(asdict(row)) for seq, row in zip(chunk, rows)})
        fresh.update(zip(chunk, rows))
        if progress is not None:
            progress(len(state.rows), len(state.users))
    journal.finish(state)
    return ExportResult(_rows(state, fresh), resumed)


async def _list_tenant(client: GraphClient, journal: ExportJournal, state: ExportProgress, page_size: int, progress, stop) -> None:
    link = state.next_link
    while not state.listed:
        if stop is not None and stop.is_set():
            return
        try:
            page, link = await client.list_users_page(link, page_size)
        except ForbiddenError as exc:
            raise PreflightError(
                f"listing the tenant's users was refused ({exc.message}). Fix: grant the app User.Read.All as an "
                "application permission with admin consent, or export a list of users with {users}",
                settings=("users",),
            ) from None
        # id and UPN together, so reading them back needs no lookup
        journal.listed(state, [f"{user.id}\t{user.upn}" for user in page], link)
        if progress is not None:
            progress(0, None if link else len(state.users))


async def _read(client: GraphClient, users: list[str], *, resolve: bool) -> list[ExportRow]:
    """The rows of a slice of users: listed ones are "id<TAB>upn"; given ones are resolved first."""
    if resolve:
        try:
            found = await client.read_directory_users(users)
        except ForbiddenError:
            # An app that may read methods but not users (no User.ReadBasic.All): the methods are
            # read by the name the file gives, and the objectId column stays empty.
            event("export.no_object_ids", reason="looking users up was refused: objectId is left empty")
            found = {entry: DirectoryUser("", entry) for entry in users}
    else:
        found = {entry: DirectoryUser(*entry.split("\t", 1)) for entry in users}
    ids = [_address(answer) for answer in found.values() if isinstance(answer, DirectoryUser)]
    methods = await client.read_phone_methods(ids) if ids else {}
    readable = [user_id for user_id in ids if not isinstance(methods[user_id], GraphError)]
    defaults = await client.read_sign_in_preferences(readable) if readable else {}
    rows = []
    for entry in users:
        answer = found[entry]
        if isinstance(answer, NotFoundError):
            rows.append(_unreadable(entry, "", "user not found in the tenant exported from: check the UPN or object id"))
        elif isinstance(answer, GraphError):
            rows.append(_unreadable(entry, "", f"couldn't look the user up: {answer.message}"))
        else:
            rows.append(_row(answer, methods[_address(answer)], defaults.get(_address(answer))))
    return rows


def _address(user: DirectoryUser) -> str:
    """How Graph is asked for the user: its object id, or the UPN when no lookup was allowed."""
    return user.id or user.upn


def _row(user: DirectoryUser, methods: Methods | GraphError, default: SignInPreferences | GraphError | None) -> ExportRow:
    if isinstance(methods, GraphError):
        return _unreadable(user.upn or user.id, user.id, f"couldn't read the user's phone methods: {methods.message}")
    row = ExportRow(user=user.upn or user.id, object_id=user.id, default_method=_exported_default(default))
    masked = []
    for phone_type in PhoneType:
        method = methods.get(phone_type)
        if method is None:
            continue
        if is_masked(method.phone_number):
            row.not_exported.append(phone_type.value)
            masked.append(f"{phone_type.value} {method.phone_number}")
        else:
            row.numbers[phone_type.value] = method.phone_number
        if phone_type is PhoneType.MOBILE:
            row.sms_sign_in_state = method.sms_sign_in_state
    if masked:
        row.note = f"masked by Graph ({', '.join(masked)}): {MASKED_FIX}"
    return row


def _exported_default(default: SignInPreferences | GraphError | None) -> str:
    """The default a target tenant can take: a phone one or `system`. Push or OATH needs the
    user to register that app there first, so it isn't carried (a blank leaves it alone)."""
    if not isinstance(default, SignInPreferences):
        return ""
    return default.default if default.system_preferred or default.preferred in DEFAULT_NEEDS else ""


def _unreadable(user: str, object_id: str, why: str) -> ExportRow:
    return ExportRow(user=user, object_id=object_id, not_exported=[t.value for t in PhoneType], note=why)


def _rows(state: ExportProgress, fresh: dict[int, ExportRow]) -> list[ExportRow]:
    """Every row so far, in listing order: this run's as read, a killed run's from the journal."""
    return [fresh.get(seq) or ExportRow(**json.loads(state.rows[seq])) for seq in sorted(state.rows)]
