"""The directory as a source: who a run is about (groups, nested ones included; a users file;
the whole tenant), an input built from those users' own phone attributes instead of a file,
and who of them has already registered for MFA.

Reads only. A group is named by object id or by exact display name, and a name that finds no
group or several is refused with the candidates: a run never guesses whom it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import pandas as pd

from ._cells import cell_fields
from ._errors import ForbiddenError, GraphError, InputError, NotFoundError, PreflightError
from ._graph import PHONE_FIELDS, USER_FIELDS, DirectoryUser, GraphClient, Registration
from ._logs import event
from ._model import PhoneType, user_key
from ._normalize import Normalizer
from ._planner import Cell, UserState

__all__ = ["DIRECTORY_ATTRIBUTES", "FromDirectory", "Targets", "directory_cells", "directory_fields", "directory_readiness",
           "find_targets", "leave_out_phone_holders", "leave_out_registered", "report_refusal"]

# The user attributes that can feed a phone type, and what feeds what unless told otherwise.
DIRECTORY_ATTRIBUTES = ("mobilePhone", "businessPhones")
DEFAULT_FIELDS = (("mobilePhone", PhoneType.MOBILE.value), ("businessPhones", PhoneType.OFFICE.value))
_OBJECT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_NEAR_NAMES = 10  # groups named like the one asked for, listed when none is named exactly so
GROUP_PERMISSION_FIX = ("grant the app GroupMember.Read.All (or Group.Read.All) as an application permission "
                        "with admin consent")
PROFILE_PERMISSION_FIX = "grant the app User.Read.All as an application permission with admin consent"


@dataclass(frozen=True)
class FromDirectory:
    """An input built from each target user's own directory attributes instead of a file.

    `fields`: (attribute, phoneType) pairs; by default mobilePhone feeds mobile and the first of
    businessPhones feeds office. `everyone`: every user of the tenant is a target (else the
    run's groups and users file say who). An attribute left blank in the directory is never a
    request to delete: the type is left alone."""

    fields: tuple[tuple[str, str], ...] = DEFAULT_FIELDS
    everyone: bool = False

    def describe(self) -> str:
        return ",".join(f"{attribute}={phone_type}" for attribute, phone_type in self.fields) + (" all" if self.everyone else "")


def directory_fields(text: str) -> tuple[tuple[str, str], ...]:
    """`mobilePhone=alternateMobile,businessPhones=office` as (attribute, phoneType) pairs, checked."""
    pairs = []
    types = [phone_type.value for phone_type in PhoneType]
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        attribute, _, phone_type = (side.strip() for side in part.partition("="))
        attribute = next((name for name in DIRECTORY_ATTRIBUTES if name.lower() == attribute.lower()), attribute)
        phone_type = next((name for name in types if name.lower() == phone_type.lower()), phone_type)
        if attribute not in DIRECTORY_ATTRIBUTES or phone_type not in types:
            raise InputError(f"{{directory_fields}}: {part!r} isn't ATTRIBUTE=TYPE with ATTRIBUTE one of "
                             f"{', '.join(DIRECTORY_ATTRIBUTES)} and TYPE one of {', '.join(types)}",
                             settings=("directory_fields",))
        pairs.append((attribute, phone_type))
    fed = [phone_type for _, phone_type in pairs]
    if not pairs or len(set(fed)) != len(fed) or len({a for a, _ in pairs}) != len(pairs):
        raise InputError(f"{{directory_fields}}: {text!r}: give each attribute and each type at most once, e.g. "
                         "mobilePhone=mobile,businessPhones=office", settings=("directory_fields",))
    return tuple(pairs)


@dataclass(frozen=True)
class Targets:
    """The users a run is about, as the directory holds them, in a stable order (by UPN)."""

    people: tuple[DirectoryUser, ...]
    missing: tuple[str, ...] = ()  # users of a users file the directory doesn't know

    def regions(self, users_file: dict[str, str] | None = None) -> dict[str, str]:
        """{user key: region} for every target, by UPN and by object id: the users file's region
        where it gives one, else the user's usageLocation. A users file narrows to its users."""
        regions = {}
        for person in self.people:
            keys = [user_key(person.upn), user_key(person.id)]
            if users_file is not None and not any(key in users_file for key in keys):
                continue
            region = next((users_file[key] for key in keys if users_file and users_file.get(key)), "") or person.usage_location
            regions.update(dict.fromkeys(filter(None, keys), region))
        return regions

    def fingerprint(self) -> str:
        """What the directory said, for the run key: a resumed run is one whose targets are unchanged."""
        return "\n".join(f"{p.id}\t{p.upn}\t{p.mobile_phone}\t{'|'.join(p.business_phones)}\t{p.usage_location}"
                         for p in self.people) + "\nmissing:" + "|".join(self.missing)


async def find_targets(client: GraphClient, *, groups: Sequence[str] = (), users: Iterable[str] | None = None,
                       everyone: bool = False, fields: str = PHONE_FIELDS) -> Targets:
    """The transitive user members of `groups` (a union), narrowed to `users` when both are
    given; or the users of `users`; or with `everyone`, every user of the tenant; each with
    `fields` (by default what can feed an input)."""
    if groups:
        people = await _group_members(client, groups, fields)
        if users is not None:
            wanted = {user_key(user) for user in users}
            people = [p for p in people if user_key(p.upn) in wanted or user_key(p.id) in wanted]
        return Targets(_in_order(people))
    if everyone:
        return Targets(_in_order(await _everyone(client, fields)))
    named = list(dict.fromkeys(users or ()))
    try:
        found = await client.read_directory_users(named, fields=fields) if named else {}
    except ForbiddenError as exc:
        raise PreflightError(f"reading the users' phone attributes was refused ({exc.message}). Fix: {PROFILE_PERMISSION_FIX}") from None
    missing = tuple(user for user, answer in found.items() if isinstance(answer, NotFoundError))
    unreadable = [f"{user}: {answer.message}" for user, answer in found.items()
                  if isinstance(answer, GraphError) and not isinstance(answer, NotFoundError)]
    if unreadable:
        raise InputError(f"couldn't read {len(unreadable)} users of {{users}} (e.g. {unreadable[0]}); run again",
                         settings=("users",))
    return Targets(_in_order([answer for answer in found.values() if isinstance(answer, DirectoryUser)]), missing)


async def _group_members(client: GraphClient, groups: Sequence[str], fields: str) -> list[DirectoryUser]:
    members: dict[str, DirectoryUser] = {}
    for group in dict.fromkeys(name.strip() for name in groups):
        group_id = group if _OBJECT_ID.match(group) else await _group_named(client, group)
        link = None
        while True:
            try:
                page, link = await client.list_group_members_page(group_id, link, fields=fields)
            except NotFoundError:
                raise InputError(f"{{groups}}: no group has the object id {group}", settings=("groups",)) from None
            except ForbiddenError as exc:
                raise PreflightError(f"listing the members of group {group!r} was refused ({exc.message}). "
                                     f"Fix: {GROUP_PERMISSION_FIX}") from None
            for person in page:
                members.setdefault(user_key(person.id), person)
            if not link:
                break
    return list(members.values())


async def _group_named(client: GraphClient, name: str) -> str:
    try:
        found = await client.find_groups(name)
        near = await client.find_groups(name.split()[0], starting=True, top=_NEAR_NAMES) if not found and name.split() else []
    except ForbiddenError as exc:
        raise PreflightError(f"looking up group {name!r} was refused ({exc.message}). Fix: {GROUP_PERMISSION_FIX}") from None
    if len(found) == 1:
        return found[0].id
    if found:
        listed = "; ".join(f"{group.id} ({group.display_name})" for group in found)
        raise InputError(f"{{groups}}: {len(found)} groups are named {name!r}: {listed}. Give the object id of the one you "
                         "mean", settings=("groups",))
    hint = ("; groups named like it: " + "; ".join(f"{g.display_name!r} ({g.id})" for g in near)) if near else ""
    raise InputError(f"{{groups}}: no group is named {name!r} (names are compared whole, without case){hint}",
                     settings=("groups",))


async def _everyone(client: GraphClient, fields: str) -> list[DirectoryUser]:
    people, link = [], None
    while True:
        try:
            page, link = await client.list_users_page(link, fields=fields)
        except ForbiddenError as exc:
            raise PreflightError(f"listing the tenant's users was refused ({exc.message}). Fix: {PROFILE_PERMISSION_FIX}") from None
        people.extend(page)
        if not link:
            return people


def _in_order(people: Iterable[DirectoryUser]) -> tuple[DirectoryUser, ...]:
    return tuple(sorted(people, key=lambda person: (user_key(person.upn), person.id)))


def directory_cells(targets: Targets, source: FromDirectory, default_region: str, regions: dict[str, str]) -> list[Cell]:
    """The input `source` builds from the targets' attributes: one row per user (numbered in UPN
    order), a cell per attribute that holds a number, normalised with the user's region from
    `regions` (see Targets.regions), then `default_region`. A user with none of the attributes
    is a row left out, with why."""
    rows, without = [], []
    for row, person in enumerate(targets.people, start=1):
        region = regions.get(user_key(person.upn)) or regions.get(user_key(person.id)) or ""
        values = {"mobilePhone": person.mobile_phone, "businessPhones": person.business_phones[0] if person.business_phones else ""}
        user = person.upn or person.id
        cells = [(row, user, "", phone_type, values[attribute], region, "")
                 for attribute, phone_type in source.fields if values[attribute].strip()]
        rows.extend(cells)
        if not cells:
            without.append((row, user, region))
    why = f"the directory holds no {' or '.join(attribute for attribute, _ in source.fields)} for this user: nothing to provision"
    if without and not rows:
        # Graph doesn't refuse these attributes to an app that may read only the basic profile: it
        # answers them empty, so a run where nobody has one may be a missing permission.
        why += (" (no user of this run has one: if they do have numbers, the app can't read them, as Graph answers "
                f"these attributes empty to an app without User.Read.All. Fix: {PROFILE_PERMISSION_FIX})")
    empty = [Cell(row, user, source.fields[0][1], region=region, excluded=why) for row, user, region in without]
    for row, user in enumerate(targets.missing, start=len(targets.people) + 1):
        empty.append(Cell(row, user, source.fields[0][1], error="user not found in the directory: check the UPN or object id"))
    frame = pd.DataFrame(rows, columns=["row", "user", "sourceUser", "phoneType", "raw", "region", "error"])
    cells = [Cell(*fields) for fields in cell_fields(frame, None, default_region, Normalizer())]
    return sorted(cells + empty, key=lambda cell: cell.row)


async def leave_out_registered(client: GraphClient, cells: list[Cell], ids: dict[str, str]) -> list[Cell]:
    """Cells of users who already have a second factor become rows left out, with what they have.

    The registration report answers first (AuditLog.Read.All, and Entra ID P1/P2); where it is
    refused, each user's methods of every kind are read instead. `ids`: object ids by user key,
    where known (the report is read by object id)."""
    users = list(dict.fromkeys(cell.user for cell in cells if cell.user and not cell.excluded))
    if not users:
        return cells
    registrations, source = await _registrations(client, users, ids)
    registered: dict[str, str] = {}  # user key -> what the user has
    unknown: dict[str, str] = {}  # user key -> why it couldn't be told
    for user in users:
        answer = registrations.get(user)
        if isinstance(answer, Registration) and answer.mfa_registered:
            registered[user_key(user)] = ", ".join(answer.methods)
        elif isinstance(answer, GraphError) and not isinstance(answer, NotFoundError):
            unknown[user_key(user)] = answer.message
    return [_left_out(cell, registered, unknown, source) for cell in cells]


def _left_out(cell: Cell, registered: dict[str, str], unknown: dict[str, str], source: str) -> Cell:
    """A registered user's cell is left out (a number that wasn't usable is said, not a row to
    fix: the run wasn't going to write it); one whose registration couldn't be read is a row to fix."""
    key = user_key(cell.user)
    if cell.excluded or not cell.user:
        return cell
    if key in registered:
        unusable = f"; its number wasn't usable either: {cell.error}" if cell.error else ""
        return cell._replace(error="", number="", excluded=f"already registered for MFA ({registered[key]}; from {source}): "
                                                          f"left out, as only unregistered users were asked for{unusable}")
    if key in unknown and not cell.error:
        return cell._replace(error=f"couldn't tell whether the user has registered for MFA ({unknown[key]}): left out; "
                                   "run again")
    return cell


def leave_out_phone_holders(cells: list[Cell], current: dict[str, UserState]) -> list[Cell]:
    """Cells of users whose phone methods, read live for the plan, show they registered after the
    registration report was last refreshed (it lags): left out like any registered user."""
    holders = {key: ", ".join(t.value for t in state.methods) for key, state in current.items() if state.methods}
    return [_left_out(cell, holders, {}, "their phone methods read now") for cell in cells]


async def _registrations(client: GraphClient, users: list[str], ids: dict[str, str]) -> tuple[dict, str]:
    """Each user's Registration (or GraphError), and where it came from."""
    try:
        by_id = dict(ids)
        unknown = [user for user in users if user_key(user) not in by_id]
        if unknown:
            found = await client.read_directory_users(unknown)
            by_id.update({user_key(user): answer.id for user, answer in found.items() if isinstance(answer, DirectoryUser)})
        wanted = {user: by_id[user_key(user)] for user in users if user_key(user) in by_id}
        answers = await client.read_registrations(list(dict.fromkeys(wanted.values())))
        return {user: answers[object_id] for user, object_id in wanted.items()}, "the registration report"
    except ForbiddenError as exc:
        why = report_refusal(exc)
        event("registration.fallback", reason=f"the registration report isn't available ({why}); reading each user's methods")
    try:
        return await client.read_method_kinds(users), "the user's methods"
    except ForbiddenError as exc:
        raise PreflightError(
            f"telling registered users apart was refused: the registration report ({why}) and each user's methods "
            f"({exc.message}). Fix: grant the app AuditLog.Read.All (the report; the tenant needs Entra ID P1/P2) or "
            "UserAuthenticationMethod.Read.All, as application permissions with admin consent") from None


def report_refusal(exc: ForbiddenError) -> str:
    """Why Graph refused the registration report: the licence it needs, or the permission."""
    if exc.code == "Authentication_RequestFromNonPremiumTenantOrB2CTenant":
        return "the tenant has no Entra ID P1/P2 licence, which the report needs"
    return f"the app lacks AuditLog.Read.All: Graph answered {exc.status} {exc.code}".rstrip()


async def directory_readiness(client: GraphClient, *, groups: Sequence[str] = (), attributes: bool = False,
                              only_unregistered: bool = False) -> list[str]:
    """What a directory run will meet, said before it runs: each group's users and, with
    `attributes`, how many hold a number; with `only_unregistered`, whether the registration
    report can be read. A group that can't be used raises as the run would."""
    notes = []
    for group in dict.fromkeys(groups):
        people = (await find_targets(client, groups=[group], fields=PHONE_FIELDS if attributes else USER_FIELDS)).people
        said = f"group {group!r}: {len(people)} user{'' if len(people) == 1 else 's'} (nested groups included)"
        if attributes:
            holding = sum(1 for person in people if person.mobile_phone or person.business_phones)
            said += f", {holding} with a mobilePhone or businessPhones"
            if people and not holding:
                said += (": if they do have numbers, the app can't read them (Graph answers these attributes empty "
                         f"without User.Read.All). Fix: {PROFILE_PERMISSION_FIX}")
        notes.append(said)
    if only_unregistered:
        try:
            await client.list_registrations_page(page_size=1)
            notes.append("the registration report can be read: registered users are told apart from it")
        except ForbiddenError as exc:
            notes.append(f"the registration report can't be read ({report_refusal(exc)}): registered users are told apart "
                         "by reading each user's methods instead, one read per user")
    return notes
