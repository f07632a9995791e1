"""Desired cells + current Graph state -> ordered changes. Pure: no I/O.

Every input cell becomes exactly one PlanItem, so the report accounts for every row.
Execution order per user follows Graph's rules: creates and updates first (mobile before
alternateMobile, so an alternate always has its mobile), then deletes (alternateMobile
before mobile). A number moving between types is therefore created on its new type
before it is deleted from the old one, and the user is never left without it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, NamedTuple

from ._model import DEFAULT_METHOD, DEFAULT_NEEDS, SETTINGS, SMS_READY, SMS_SIGN_IN, Action, Mode, PhoneMethod, PhoneType, SignInPreferences, Status, user_key
from ._normalize import canonical, is_masked

__all__ = ["AWAITS_USER_NOTE", "Cell", "Plan", "PlanItem", "UserState", "build_plan", "execution_rank", "placeholder_note", "settle_cells"]

MASKED_REASON = (
    "current number {current} is masked, so it can't be compared: sign in with an application "
    "permission (UserAuthenticationMethod.ReadWrite.All) instead of a delegated admin"
)
ALTERNATE_NEEDS_MOBILE = "alternateMobile needs a mobile (Graph rule): give this user a mobile number too"
MOBILE_KEEPS_ALTERNATE = (
    "can't delete mobile while alternateMobile stays (Graph rule): clear alternateMobile too, or keep the mobile"
)
PLACEHOLDER_IN_SYNC = "placeholder {placeholder!r} in sync mode: leave the cell empty to delete, or fill in a number"
# A user Graph didn't know when the plan was made may be a new hire still replicating: its
# numbers are planned as for a user without methods, and apply waits for it to appear.
AWAITS_USER_NOTE = (
    "user not found when planned (Graph answered 404): if the user was just created, apply waits for it to "
    "appear; if not, check the UPN or object id"
)
EMPTY_AND_FILLED = (
    "conflict: rows {rows} leave this user's {phone_type} empty on one row and fill it in on another, "
    "so nothing is set or deleted: keep one row"
)

_CREATE_ORDER = [PhoneType.MOBILE, PhoneType.ALTERNATE_MOBILE, PhoneType.OFFICE]
_DELETE_ORDER = list(reversed(_CREATE_ORDER))


class Cell(NamedTuple):
    """One desired (user, phoneType) value from one input row, already normalised. (A tuple:
    a big file makes millions, and a tuple is made three times faster than a dataclass.)"""

    row: int
    user: str
    phone_type: str
    raw: str = ""
    region: str = ""
    number: str = ""
    number_region: str = ""  # the region the number belongs to, e.g. GG for a Guernsey number read as GB
    number_type: str = ""  # mobile, fixed_line, fixed_line_or_mobile, voip...
    error: str = ""
    warning: str = ""
    excluded: str = ""  # why the run leaves this row out on purpose (e.g. not in the users file)
    unchanged: str = ""  # why this row needs no look at Graph (same as last verified, --changed-only)
    source_user: str = ""  # the user the input names, when an identity map made `user` someone else
    placeholder: str = ""  # a placeholder for "no number" as written (`N/A`, `-`, `0`): see normalize.placeholder

    @property
    def blank(self) -> bool:
        """No number and nothing wrong: an empty cell, or a placeholder."""
        return not self.number and not self.error


@dataclass(frozen=True)
class UserState:
    """What Graph holds for one user, or why it could not be read."""

    methods: Mapping[PhoneType, PhoneMethod] = field(default_factory=dict)
    error: str = ""
    missing: bool = False  # Graph answered 404: a mistyped user, or a new one not replicated yet
    preferences: SignInPreferences | None = None  # the default method, read when the input sets it
    preferences_error: str = ""  # why the default method couldn't be read

    @property
    def found(self) -> bool:
        return not self.error and not self.missing


@dataclass(frozen=True)
class PlanItem:
    row: int
    user: str
    phone_type: str
    action: Action
    number: str = ""
    current: str = ""
    raw: str = ""
    region: str = ""
    error: str = ""
    warning: str = ""
    note: str = ""
    source_user: str = ""  # the user the input named, when an identity map made `user` someone else
    awaits_user: bool = False  # the user was 404 when planned: apply waits for it before writing (AWAITS_USER_NOTE)

    @property
    def status(self) -> Status:
        return Status.SKIPPED if self.action is Action.SKIP else Status.PLANNED

    @property
    def key(self) -> str:
        return user_key(self.user)

    @property
    def type(self) -> PhoneType:
        return PhoneType(self.phone_type)

    @property
    def is_setting(self) -> bool:
        """A defaultMethod or smsSignIn change, not a number."""
        return self.phone_type in SETTINGS


@dataclass(frozen=True)
class Plan:
    mode: Mode
    items: tuple[PlanItem, ...]  # report order: by input row, then phone type

    def changes_by_user(self) -> list[list[PlanItem]]:
        """Writes grouped per user, in the order Graph needs them."""
        groups: dict[str, list[PlanItem]] = defaultdict(list)
        for item in self.items:
            if item.action.writes:
                groups[item.key].append(item)
        return [sorted(group, key=execution_rank) for group in groups.values()]

    def counts(self) -> dict[str, int]:
        counts = {action.value: 0 for action in Action}
        for item in self.items:
            counts[item.action.value] += 1
        return counts

    @property
    def write_count(self) -> int:
        return sum(1 for item in self.items if item.action.writes)


def placeholder_note(placeholder: str) -> str:
    return f"placeholder {placeholder!r}: read as no number (in sync mode a row to fix: leave the cell empty to delete)"


def settle_cells(cells: Iterable[Cell], mode: Mode, verified: Mapping[tuple[str, str], str] | None = None) -> list[Cell]:
    """The cells as the plan reads them, decided before anything is read from Graph.

    Only an empty cell asks for a delete, so nothing ambiguous may reach the plan as one: in sync
    mode a placeholder (`N/A`, `-`, `0`) is a row to fix, and a user and type that one row leaves
    empty while another fills in (with a number, an invalid value, a garbled row) is a conflict
    on all those rows, in every mode. With `verified` (--changed-only: the numbers the journal
    last verified), cells that ask for what is already there are marked unchanged, not read."""
    settled = [
        cell._replace(error=PLACEHOLDER_IN_SYNC.format(placeholder=cell.placeholder))
        if mode is Mode.SYNC and cell.placeholder and not cell.error
        else cell
        for cell in cells
    ]
    targets: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, cell in enumerate(settled):
        if cell.user and not cell.excluded and not cell.unchanged:
            targets[(user_key(cell.user), cell.phone_type)].append(index)
    for (_, phone_type), indexes in targets.items():
        empty = [i for i in indexes if settled[i].blank]
        if empty and len(empty) < len(indexes):
            error = EMPTY_AND_FILLED.format(rows=_rows(settled, indexes), phone_type=phone_type)
            for i in indexes:
                if not settled[i].error:
                    settled[i] = settled[i]._replace(error=error)
    if verified is not None:
        settled = [_unchanged(cell, verified, mode) for cell in settled]
    return settled


def _unchanged(cell: Cell, verified: Mapping[tuple[str, str], str], mode: Mode) -> Cell:
    if cell.error or cell.excluded or cell.unchanged:
        return cell
    if cell.blank and (mode is not Mode.SYNC or cell.phone_type in SETTINGS):
        return cell._replace(unchanged="unchanged: blank cell, nothing to do (--changed-only: not read)")
    if verified.get((user_key(cell.user), cell.phone_type)) == cell.number:
        return cell._replace(unchanged="unchanged since the last verified run (--changed-only: not read)")
    return cell


def build_plan(cells: Iterable[Cell], current: Mapping[str, UserState], mode: Mode = Mode.UPSERT) -> Plan:
    cells = settle_cells(cells, mode)
    decided: dict[int, PlanItem] = {}
    by_target: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, cell in enumerate(cells):
        if cell.excluded:
            decided[index] = _item(cell, Action.SKIP, note=cell.excluded)
        elif cell.unchanged:
            decided[index] = _item(cell, Action.NOOP, note=cell.unchanged)
        elif cell.error:
            decided[index] = _item(cell, Action.SKIP, error=cell.error)
        else:
            by_target[(user_key(cell.user), cell.phone_type)].append(index)

    per_user: dict[str, dict[PhoneType, int]] = defaultdict(dict)
    settings: dict[str, dict[str, int]] = defaultdict(dict)
    for (key, phone_type), indexes in by_target.items():
        primary = _resolve_duplicates(cells, indexes, decided)
        if primary is not None and phone_type in SETTINGS:
            settings[key][phone_type] = primary
        elif primary is not None:
            per_user[key][PhoneType(phone_type)] = primary

    for key in per_user.keys() | settings.keys():
        targets, wanted = per_user.get(key, {}), settings.get(key, {})
        state = current.get(key)
        if state is None or not (state.found or state.missing):
            error = state.error if state is not None else "user's current methods were not read"
            for index in [*targets.values(), *wanted.values()]:
                decided[index] = _item(cells[index], Action.SKIP, error=error)
            continue
        items = {t: _decide(cells[i], state.methods.get(t), mode) for t, i in targets.items()}
        items = _enforce_alternate_needs_mobile(items, state)
        kept = {t for t in PhoneType if _has_after(t, items, state)}
        items.update({kind: _decide_setting(cells[i], state, kept) for kind, i in wanted.items()})
        if state.missing:
            items = {t: replace(item, awaits_user=True, note=AWAITS_USER_NOTE) if item.action is not Action.SKIP else item
                     for t, item in items.items()}
        for target, index in [*targets.items(), *wanted.items()]:
            decided[index] = items[target]

    ordered = sorted(decided.items(), key=lambda pair: (cells[pair[0]].row, _type_rank(cells[pair[0]].phone_type)))
    return Plan(mode=mode, items=tuple(item for _, item in ordered))


def _resolve_duplicates(cells: list[Cell], indexes: list[int], decided: dict[int, PlanItem]) -> int | None:
    """Pick the one cell that speaks for a (user, phoneType) - rows that agree: all empty, or the
    same number - and decide the others. None when they give different numbers (a conflict)."""
    numbers = {cells[i].number for i in indexes}
    if len(numbers) > 1:
        rows = _rows(cells, indexes)
        for i in indexes:
            decided[i] = _item(
                cells[i],
                Action.SKIP,
                error=f"conflict: rows {rows} give different {cells[i].phone_type} numbers for this user: keep one",
            )
        return None
    primary = indexes[0]
    for i in indexes[1:]:
        decided[i] = _item(cells[i], Action.NOOP, note=f"duplicate; row {cells[primary].row} decides this {cells[i].phone_type}")
    return primary


def _decide(cell: Cell, current: PhoneMethod | None, mode: Mode) -> PlanItem:
    current_number = current.phone_number if current else ""
    item = _item(cell, Action.NOOP, current=current_number)
    if cell.blank:
        if mode is Mode.SYNC and current:
            if is_masked(current_number):
                return replace(item, action=Action.SKIP, error=MASKED_REASON.format(current=current_number))
            return replace(item, action=Action.DELETE, note="blank cell in sync mode")
        if cell.placeholder:
            return replace(item, note=placeholder_note(cell.placeholder))
        return replace(item, note="blank cell: left as it is" if current else "blank cell")
    if current is None:
        return replace(item, action=Action.CREATE)
    if mode is Mode.CREATE_ONLY:
        same = canonical(current_number) == cell.number
        return replace(item, note="" if same else "create-only: this type already has a number")
    if is_masked(current_number):
        return replace(item, action=Action.SKIP, error=MASKED_REASON.format(current=current_number))
    if canonical(current_number) == cell.number:
        return item
    return replace(item, action=Action.UPDATE)


def _has_after(phone_type: PhoneType, items: Mapping[PhoneType, PlanItem], state: UserState) -> bool:
    """Whether the user has this phone once the plan is carried out."""
    item = items.get(phone_type)
    if item is None or item.action in (Action.NOOP, Action.SKIP):
        return phone_type in state.methods
    return item.action is not Action.DELETE


def _decide_setting(cell: Cell, state: UserState, kept: set[PhoneType]) -> PlanItem:
    """A defaultMethod or smsSignIn cell against what Graph holds and the phones the user keeps.
    A blank one leaves the setting alone, in every mode."""
    if cell.phone_type == DEFAULT_METHOD:
        current = state.preferences.default if state.preferences is not None else ""
        if cell.blank:
            return _item(cell, Action.NOOP, current=current, note="blank cell: left as it is")
        if state.preferences is None and not state.missing:
            return _item(cell, Action.SKIP, error=state.preferences_error or "the user's default method was not read")
        needs = DEFAULT_NEEDS.get(cell.number)
        if needs is not None and needs not in kept:
            return _item(cell, Action.SKIP, current=current, error=(
                f"defaultMethod {cell.number} needs {_a(needs.value)} number, and the user has none after this run: "
                f"give {_a(needs.value)} number in this row, or another default"))
        return _item(cell, Action.NOOP if current == cell.number else Action.UPDATE, current=current)
    mobile = state.methods.get(PhoneType.MOBILE)
    current = "enabled" if mobile is not None and mobile.sms_sign_in_state == SMS_READY else "disabled"
    if cell.blank:
        return _item(cell, Action.NOOP, current=current, note="blank cell: left as it is")
    if cell.number == "enabled" and PhoneType.MOBILE not in kept:
        return _item(cell, Action.SKIP, current=current, error=(
            "smsSignIn enabled needs a mobile number, and the user has none after this run: give a mobile number in this row"))
    if cell.number == "disabled" and PhoneType.MOBILE not in kept:
        return _item(cell, Action.NOOP, current=current, note="no mobile after this run: SMS sign-in is off")
    return _item(cell, Action.NOOP if current == cell.number else Action.UPDATE, current=current)


def _enforce_alternate_needs_mobile(items: dict[PhoneType, PlanItem], state: UserState) -> dict[PhoneType, PlanItem]:
    def has_after(phone_type: PhoneType) -> bool:
        return _has_after(phone_type, items, state)

    if not has_after(PhoneType.ALTERNATE_MOBILE) or has_after(PhoneType.MOBILE):
        return items
    fixed = dict(items)
    mobile = items.get(PhoneType.MOBILE)
    if mobile is not None and mobile.action is Action.DELETE:
        fixed[PhoneType.MOBILE] = replace(mobile, action=Action.SKIP, error=MOBILE_KEEPS_ALTERNATE)
    alternate = items.get(PhoneType.ALTERNATE_MOBILE)
    if alternate is not None and alternate.action is Action.CREATE and PhoneType.MOBILE not in state.methods:
        fixed[PhoneType.ALTERNATE_MOBILE] = replace(alternate, action=Action.SKIP, error=ALTERNATE_NEEDS_MOBILE)
    return fixed


def _item(cell: Cell, action: Action, **fields) -> PlanItem:
    return PlanItem(
        row=cell.row,
        user=cell.user,
        phone_type=cell.phone_type,
        action=action,
        number=cell.number,
        raw=cell.raw,
        region=cell.region,
        warning=cell.warning,
        source_user=cell.source_user,
        **fields,
    )


def _rows(cells: list[Cell], indexes: list[int]) -> str:
    rows = [str(cells[i].row) for i in indexes]
    return ", ".join(rows[:-1]) + " and " + rows[-1]


_REPORT_ORDER = [t.value for t in _CREATE_ORDER] + list(SETTINGS)


def _type_rank(phone_type: str) -> int:
    return _REPORT_ORDER.index(phone_type) if phone_type in _REPORT_ORDER else len(_REPORT_ORDER)


def execution_rank(item: PlanItem) -> tuple[int, int]:
    """Where a change goes in its user's sequence: numbers created and updated, then the default
    method (so it can point at a number made in this run, and move off one about to go), then
    SMS sign-in, then deletes, in Graph's order."""
    if item.phone_type == DEFAULT_METHOD:
        return (1, 0)
    if item.phone_type == SMS_SIGN_IN:
        return (2, 0)
    if item.action is Action.DELETE:
        return (3, _DELETE_ORDER.index(item.type))
    return (0, _CREATE_ORDER.index(item.type))


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"
