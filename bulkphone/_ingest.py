"""Read input files into one tidy frame: one row per (input row, phone type).

Columns of the frame: `row` (the line number a spreadsheet shows, header = 1), `user`,
`phoneType`, `raw` (the cell as written, "" for a blank cell), `region` and `error`
(why the row can't be used, e.g. an unknown phoneType).
"""

from __future__ import annotations

import codecs
import csv
import re
import warnings
import zipfile
from pathlib import Path
from typing import Iterator, NamedTuple, Protocol

import openpyxl
from openpyxl.utils import get_column_letter
import pandas as pd

from ._errors import InputError
from ._files import require_regular_file
from ._model import DEFAULT_METHOD, SETTINGS, SMS_SIGN_IN, PhoneType, user_key
from ._normalize import normalize_region
from ._text import clip, restore

__all__ = ["TIDY_COLUMNS", "Table", "UserMapping", "count_rows", "first_user", "iter_input", "read_input", "read_table", "read_users"]

TIDY_COLUMNS = ["row", "user", "sourceUser", "phoneType", "raw", "region", "error"]
# Line 1 is the header, so the first data row is row 2, as a spreadsheet shows it.
FIRST_DATA_ROW = 2


class UserMapping(Protocol):
    """Who a user of the file is in the tenant (bulkphone._mapping.IdentityMap is one)."""

    def target(self, user: str) -> tuple[str, str]:
        """(target user, "") or ("", why there is none)."""


_ALIASES = {
    "user": {"user", "userprincipalname", "upn", "objectid", "id", "userid", "username", "signinname"},
    "region": {"region", "country", "countrycode", "usagelocation", "regioncode"},
    "phoneType": {"phonetype", "type", "methodtype", "authenticationphonetype"},
    "phoneNumber": {"phonenumber", "number", "phone", "value"},
    PhoneType.MOBILE.value: {"mobile", "mobilephone", "mobilenumber", "cell", "cellphone", "authenticationphone"},
    PhoneType.ALTERNATE_MOBILE.value: {
        "alternatemobile",
        "alternatemobilephone",
        "alternatemobilenumber",
        "altmobile",
        "alternateauthenticationphone",
    },
    PhoneType.OFFICE.value: {"office", "officephone", "officenumber", "businessphone", "telephonenumber", "workphone"},
    DEFAULT_METHOD: {"defaultmethod", "defaultsigninmethod", "defaultmfamethod", "preferredmethod"},
    SMS_SIGN_IN: {"smssignin", "smssigninenabled"},
    # bulkphone export: the phone types it couldn't read (masked, or the user unreadable), and why
    "notExported": {"notexported"},
    "note": {"note"},
}
_PHONE_TYPE_NAMES = {t.value for t in PhoneType}
_CELL_KINDS = [t.value for t in PhoneType] + list(SETTINGS)  # the wide shape's value columns, in report order
_PHONE_TYPE_WORDS = {
    re.sub(r"[^a-z]", "", alias): phone_type
    for phone_type in PhoneType
    for alias in _ALIASES[phone_type.value] | {phone_type.value}
}


def read_input(path: str | Path) -> pd.DataFrame:
    """Read a wide or long input file into the tidy frame."""
    return pd.concat(list(iter_input(path)), ignore_index=True)


def iter_input(path: str | Path, chunk_rows: int | None = None, identity: UserMapping | None = None,
               sheet: str | None = None) -> Iterator[pd.DataFrame]:
    """The tidy frame in pieces of `chunk_rows` input rows (CSV), so memory stays flat on big files.

    With an identity map, `user` is the mapped (target) user and `sourceUser` the one the file
    names; a user the map can't place gets the reason as its error. A row the file itself
    garbles (fewer or more fields than the header, a formula without a value) is an error
    whatever else it says: it is a row to fix, never a blank. `sheet` picks a workbook's sheet
    by name or 1-based position (default: the first)."""
    path = Path(path)
    columns = None
    for table in _tables(path, chunk_rows, sheet):
        if columns is None:
            columns = _shape(path, table)
        if "phoneType" in columns and "phoneNumber" in columns:
            tidy = _from_long(table, columns)
        else:
            tidy = _from_wide(table, columns, [kind for kind in _CELL_KINDS if kind in columns])
        tidy["sourceUser"] = ""
        if identity is not None:
            _map_users(tidy, identity)
        _mark_garbled(tidy, table, columns)
        yield tidy[TIDY_COLUMNS].sort_values(["row", "phoneType"], key=_type_order_key, kind="stable").reset_index(drop=True)


def _map_users(tidy: pd.DataFrame, identity: UserMapping) -> None:
    targets = {user: identity.target(user) for user in tidy["user"].unique() if user}
    mapped = tidy["user"] != ""
    tidy.loc[mapped, "sourceUser"] = tidy.loc[mapped, "user"]
    tidy.loc[mapped, "user"] = [targets[user][0] or user for user in tidy.loc[mapped, "user"]]
    # Who the user is comes first: a row the map can't place says so, whatever else is wrong with it.
    unmapped = pd.Series([bool(targets[user][1]) if user else False for user in tidy["sourceUser"]], index=tidy.index)
    tidy.loc[unmapped, "error"] = [targets[user][1] for user in tidy.loc[unmapped, "sourceUser"]]


def _mark_garbled(tidy: pd.DataFrame, table: Table, columns: dict[str, int]) -> None:
    """Errors for rows and cells the file itself garbles; they win over every other reason.

    A garbled phone cell spoils its own type; a garbled user or region cell (or any cell of
    the long shape) spoils the whole row; other columns don't matter."""
    if not table.row_problems and not table.cell_problems:
        return
    types_at = {position: name for name, position in columns.items() if name in _CELL_KINDS}
    long_shape = "phoneType" in columns and "phoneNumber" in columns
    used = set(columns.values())
    for index, (row, phone_type) in enumerate(zip(tidy["row"], tidy["phoneType"])):
        problem = table.row_problems.get(row)
        for position, why in table.cell_problems.get(row, {}).items():
            if problem is None and position in used and (long_shape or types_at.get(position, phone_type) == phone_type):
                problem = why
        if problem is not None:
            tidy.at[index, "error"] = problem


def count_rows(path: str | Path, block: int = 1 << 20) -> int | None:
    """About how many data rows a CSV has (its lines less the header), for a progress bar's
    total; None for a workbook or a file that can't be read."""
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return None
    try:
        require_regular_file(path)
        with path.open("rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(block), b""))
    except (OSError, InputError):
        return None
    return max(lines - 1, 0)


def _shape(path: Path, table: Table) -> dict[str, int]:
    header = table.header
    columns = _match_columns(path, header)
    if "user" not in columns:
        where, other_sheets = "", ""
        if table.sheets:
            where = f" on sheet {table.sheet!r}"
            other_sheets = f" or choose the sheet that has them ({{sheet}}; this workbook's sheets: {_list(list(table.sheets))})"
        raise InputError(
            f"{path}: no user column{where} (found: {_list(header)}). "
            f"Fix: name the column holding UPNs or object ids 'user' (or userPrincipalName, upn, objectId){other_sheets}.",
            settings=("sheet",) if table.sheets else (),
        )
    if not ("phoneType" in columns and "phoneNumber" in columns) and not any(kind in columns for kind in _CELL_KINDS):
        raise InputError(
            f"{path}: no phone columns (found: {_list(header)}). "
            "Fix: add columns mobile, alternateMobile and/or office (wide shape), "
            "or phoneType and phoneNumber (long shape)."
        )
    return columns


def read_users(path: str | Path) -> dict[str, str]:
    """Read a users file: lower-cased user -> default region ("" when none given)."""
    path = Path(path)
    table = read_table(path)
    columns = _match_columns(path, table.header)
    if "user" not in columns:
        raise InputError(
            f"{path}: no user column (found: {_list(table.header)}). "
            "Fix: a users file needs a 'user' column (UPN or object id) and optionally 'region' or 'usageLocation'."
        )
    users: dict[str, str] = {}
    frame = table.frame
    regions = frame[columns["region"]] if "region" in columns else [""] * len(frame)
    for line, user, region_text in zip(frame.index, frame[columns["user"]], regions):
        if not user.strip():
            continue
        region, error = normalize_region(region_text)
        if error:
            raise InputError(f"{path}, row {line}: {error}")
        users[user_key(user)] = region
    return users


def read_table(path: str | Path) -> Table:
    """A whole small file (a users or map file) as text; any garbled row refuses the file, since
    these files decide who a run touches."""
    path = Path(path)
    tables = list(_tables(path, None, None))
    first = tables[0]
    for table in tables:
        garbled = sorted(table.row_problems.items()) + sorted(
            (row, why) for row, cells in table.cell_problems.items() for why in cells.values()
        )
        if garbled:
            row, why = garbled[0]
            raise InputError(f"{path}, row {row}: {why}")
    frame = pd.concat([table.frame for table in tables]) if len(tables) > 1 else first.frame
    return first._replace(frame=frame)


class Table(NamedTuple):
    """One piece of an input file, all text: columns are positions (0, 1, ...), the index is the
    row number a spreadsheet shows (header = 1)."""

    frame: pd.DataFrame
    header: list[str]
    row_problems: dict[int, str]  # row -> why the whole row can't be used (e.g. fields missing)
    cell_problems: dict[int, dict[int, str]]  # row -> column -> why that cell can't be used
    sheet: str = ""  # the workbook's sheet read
    sheets: tuple[str, ...] = ()  # all the workbook's sheets (none for a CSV)


def _tables(path: Path, chunk_rows: int | None, sheet: str | None) -> Iterator[Table]:
    require_regular_file(path)
    suffix = path.suffix.lower()
    if sheet is not None and suffix not in (".xlsx", ".xlsm"):
        raise InputError(f"{path}: is not a workbook, so it has no sheets. Fix: leave out {{sheet}} for a CSV.",
                         settings=("sheet",))
    if suffix in (".xlsx", ".xlsm"):
        tables = iter([_read_workbook(path, sheet)])
    elif suffix == ".xls":
        raise InputError(f"{path}: old .xls workbooks are not supported. Fix: save it as .xlsx or CSV UTF-8.")
    else:
        tables = _read_csv(path, chunk_rows)
    for table in tables:
        frame = table.frame
        for column in frame.columns:
            # A value bulkphone wrote defused ('=...) reads back as it was (see _text.py).
            quoted = frame[column].str.startswith("'")
            if quoted.any():
                frame.loc[quoted, column] = frame.loc[quoted, column].map(restore)
        yield table._replace(header=[restore(name.strip()) for name in table.header])


class _CsvLayout(NamedTuple):
    encoding: str
    separator: str
    header: list[str]
    widest: int  # fields in the longest record, so the parser never meets more than it expects
    row_problems: dict[int, str]
    preamble: int  # records before the header (Excel's `sep=` line)


def _read_csv(path: Path, chunk_rows: int | None) -> Iterator[Table]:
    """The CSV through pandas' C parser straight from the file, so a big one is never in memory
    whole. A first pass (Python's csv module) checks the encoding and each record's number of
    fields, so a bad byte stops before any work and a short or long row is reported, not guessed."""
    layout = _scan_csv(path)
    width = len(layout.header)
    options = dict(
        sep=layout.separator,
        encoding=layout.encoding,
        header=None,
        skiprows=1 + layout.preamble,  # the header record (quotes respected); the scan has read it
        names=list(range(layout.widest)),
        # Only a file with longer rows needs the extra fields dropped (pandas refuses usecols when
        # every row is shorter than the header).
        usecols=list(range(width)) if layout.widest > width else None,
        index_col=False,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        skip_blank_lines=False,
    )
    try:
        if chunk_rows is None:
            yield _numbered(pd.read_csv(path, **options), FIRST_DATA_ROW, layout)
            return
        with pd.read_csv(path, chunksize=chunk_rows, **options) as reader:
            first_row = FIRST_DATA_ROW
            for chunk in reader:
                yield _numbered(chunk, first_row, layout)
                first_row += len(chunk)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: no data after the header. Fix: export it again with a header row and data.") from None
    except pd.errors.ParserError as exc:
        raise InputError(
            f"{path}: not a well-formed CSV ({clip(exc)}). Fix: check quoting and the number of columns on that line."
        ) from exc


def _numbered(chunk: pd.DataFrame, first_row: int, layout: _CsvLayout) -> Table:
    chunk.index = range(first_row, first_row + len(chunk))
    return Table(chunk, layout.header, layout.row_problems, {})


MAX_HEADER_CHARACTERS = 1_000_000
MAX_FIELDS = 10_000


def _scan_csv(path: Path) -> _CsvLayout:
    with path.open("rb") as handle:
        start = handle.read(4096)
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif b"\x00" in start:
        raise InputError(f"{path}: this is a binary file, not CSV. Fix: give a CSV or .xlsx file.")
    else:
        encoding = "utf-8-sig"
    try:
        with path.open(encoding=encoding, newline="") as handle:
            first_line = handle.readline(MAX_HEADER_CHARACTERS)
            if len(first_line) >= MAX_HEADER_CHARACTERS:
                raise InputError(
                    f"{path}: the first line is longer than {MAX_HEADER_CHARACTERS:,} characters, so it is not a header "
                    "row. Fix: give a CSV whose first line names the columns (user, mobile, ...)."
                )
        # Excel writes (and reads) a first line `sep=;` naming the separator; it isn't a row.
        named = re.fullmatch(r"sep=(.)\s*", first_line, re.IGNORECASE)
        separator = named.group(1) if named else max([",", ";", "\t"], key=first_line.count)
        with path.open(encoding=encoding, newline="") as handle:
            records = csv.reader(handle, delimiter=separator)
            if named:
                next(records)
            header = next(records, None) or []
            width, widest, problems = len(header), len(header), {}
            text_seen = any(field.strip() for field in header)
            row = FIRST_DATA_ROW - 1  # stays so when the header is the last record
            for row, record in enumerate(records, start=FIRST_DATA_ROW):
                if not text_seen:
                    text_seen = any(field.strip() for field in record)
                if len(record) == width or not any(field.strip() for field in record):
                    continue
                if len(record) < width:
                    problems[row] = _short_row(record, header)
                    continue
                widest = max(widest, len(record))
                if widest > MAX_FIELDS:
                    raise InputError(
                        f"{path}, row {row}: {len(record):,} fields, more than {MAX_FIELDS:,}. "
                        "Fix: check the separator and the quoting of that line."
                    )
                problems[row] = (
                    f"this row has {len(record)} fields but the header has {width}: a separator or quote in a cell "
                    "shifted the columns: fix the row (quote cells that contain the separator)"
                )
    except UnicodeDecodeError:
        raise InputError(
            f"{path}: not UTF-8 text (byte {_first_bad_byte(path, encoding)}). "
            "Fix: in Excel use Save As → 'CSV UTF-8 (Comma delimited)'."
        ) from None
    except csv.Error as exc:
        raise InputError(
            f"{path}: not a well-formed CSV near line {records.line_num} ({exc}). "
            "Fix: check that line; a cell can't hold more than 131,072 characters or a NUL byte."
        ) from None
    if not text_seen:
        raise InputError(f"{path}: the file is empty. Fix: export it again with a header row and data.")
    if row < FIRST_DATA_ROW:
        raise InputError(f"{path}: no data after the header. Fix: export it again with a header row and data.")
    if width > MAX_FIELDS:
        raise InputError(f"{path}: the header has {width:,} columns. Fix: give a CSV of users and their phone numbers.")
    return _CsvLayout(encoding, separator, header, widest, problems, 1 if named else 0)


def _short_row(record: list[str], header: list[str]) -> str:
    missing = ", ".join(name.strip() or f"column {position + 1}" for position, name in enumerate(header[len(record):], len(record)))
    return (
        f"this row has {len(record)} of the header's {len(header)} fields ({clip(missing, 80)} missing): "
        "fill in the row, with empty fields where there is no number (a missing field is not a blank)"
    )


def _first_bad_byte(path: Path, encoding: str, block: int = 1 << 20) -> int:
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as handle:
        for data in iter(lambda: handle.read(block), b""):
            try:
                decoder.decode(data)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(data)
    return offset


# A workbook is refused before it is loaded when it unpacks to more than this, or when its first
# sheet declares more cells than this (a phone list of a million users in 40 columns fits both).
MAX_WORKBOOK_BYTES = 1 << 30
MAX_DECLARED_CELLS = 50_000_000


def _read_workbook(path: Path, sheet: str | None) -> Table:
    """The first sheet, streamed (openpyxl's read-only mode) within the header's columns, so
    memory follows the cells that hold something, never the sheet's declared size."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: can't read this workbook ({clip(exc)}). Fix: open it in Excel and save it again as .xlsx.") from None
    if unpacked > MAX_WORKBOOK_BYTES:
        raise InputError(
            f"{path}: the workbook unpacks to {unpacked / 2**20:,.0f} MiB, more than {MAX_WORKBOOK_BYTES / 2**20:,.0f} MiB. "
            "Fix: save the sheet as CSV UTF-8, which bulkphone reads in pieces of any size."
        )
    try:
        return _read_sheet(path, sheet)
    except InputError:
        raise
    except Exception as exc:  # openpyxl raises many unrelated types for a broken workbook
        raise InputError(f"{path}: can't read this workbook ({clip(exc)}). Fix: open it in Excel and save it again as .xlsx.") from exc


def _open_workbook(path: Path, *, data_only: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it ignores
        return openpyxl.load_workbook(path, read_only=True, data_only=data_only)


def _read_sheet(path: Path, wanted: str | None) -> Table:
    """A sheet's cells as text, within the header's columns. It is read with formulas
    showing; only when a cell starts with `=` is it read again for the values Excel saved, so a
    formula whose value was never saved (a file written by a script) is a cell to fix."""
    workbook = _open_workbook(path, data_only=False)
    try:
        names = tuple(workbook.sheetnames)
        name = _sheet_named(path, names, wanted)
        sheet = workbook[name]
        rows, columns = sheet.max_row or 0, sheet.max_column or 0
        if rows * columns > MAX_DECLARED_CELLS:
            raise InputError(
                f"{path}: the sheet declares {rows:,} rows × {columns:,} columns (A1:{get_column_letter(columns)}{rows}), "
                f"more than {MAX_DECLARED_CELLS:,} cells. Fix: delete the rows and columns after your data "
                "(Ctrl+End shows the last cell Excel thinks is used) and save it again, or save it as CSV UTF-8."
            )
        header = [_text(value) for value in next(sheet.iter_rows(min_row=1, max_row=1, values_only=True), ())]
        while header and not header[-1].strip():
            header.pop()
        data: dict[int, list[str]] = {}
        maybe_formulas: set[int] = set()
        if header:
            for row, values in enumerate(sheet.iter_rows(min_row=FIRST_DATA_ROW, max_col=len(header), values_only=True), start=FIRST_DATA_ROW):
                texts = [_text(value) for value in values]
                if any(texts):
                    data[row] = texts
                    if any(text.startswith("=") for text in texts):
                        maybe_formulas.add(row)
    finally:
        workbook.close()
    problems = _unsaved_formulas(path, name, data, maybe_formulas, len(header)) if maybe_formulas else {}
    frame = pd.DataFrame(list(data.values()), index=list(data), columns=range(len(header)), dtype=str)
    return Table(frame, header, {}, problems, name, names)


def _sheet_named(path: Path, names: tuple[str, ...], wanted: str | None) -> str:
    """The sheet `wanted` names, by name (case-insensitively) or 1-based position; the first by default."""
    if wanted is None:
        return names[0]
    by_name = {name.casefold(): name for name in names}
    if wanted.strip().casefold() in by_name:
        return by_name[wanted.strip().casefold()]
    if wanted.strip().isdigit() and 1 <= int(wanted) <= len(names):
        return names[int(wanted) - 1]
    raise InputError(
        f"{path}: no sheet {wanted!r} (this workbook's sheets: {_list(list(names))}). "
        "Fix: give {sheet} a sheet's name, or its position counting from 1.",
        settings=("sheet",),
    )


def _unsaved_formulas(path: Path, name: str, data: dict[int, list[str]], rows: set[int], width: int) -> dict[int, dict[int, str]]:
    """Put the values Excel saved in place of the formulas in `rows`; cells with no saved value are problems."""
    problems: dict[int, dict[int, str]] = {}
    workbook = _open_workbook(path, data_only=True)
    try:
        saved_rows = workbook[name].iter_rows(min_row=2, max_col=width, values_only=True)
        for row, saved in enumerate(saved_rows, start=FIRST_DATA_ROW):
            if row not in rows:
                continue
            texts = data[row]
            for position, (written, value) in enumerate(zip(texts, saved)):
                if written.startswith("="):
                    texts[position] = _text(value)
                    if not texts[position]:
                        problems.setdefault(row, {})[position] = (
                            f"the cell {get_column_letter(position + 1)}{row} holds a formula ({clip(written, 60)}) with no "
                            "saved value: bulkphone doesn't calculate formulas: open the file in Excel and save it, "
                            "or paste the values"
                        )
    finally:
        workbook.close()
    return problems


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a number typed into a cell: 4255550100, not 4255550100.0
    return str(value)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _match_columns(path: Path, names: list[str]) -> dict[str, int]:
    """Map each canonical column to the position of the file's column, case-insensitively with aliases.

    A column named exactly as the canonical one wins over aliases (bulkphone's own export has
    both `user` and `objectId`); two aliases of one column, or one name twice, are ambiguous."""
    found: dict[str, int] = {}
    exact = {canonical for canonical in _ALIASES for name in names if _key(name) == _key(canonical)}
    for position, name in enumerate(names):
        key = _key(name)
        for canonical, aliases in _ALIASES.items():
            if canonical in exact and key != _key(canonical):
                continue
            if key in aliases or key == _key(canonical):
                if canonical in found:
                    raise InputError(
                        f"{path}: columns {clip(names[found[canonical]], 60)!r} and {clip(name, 60)!r} both mean {canonical}. "
                        "Fix: keep one of them."
                    )
                found[canonical] = position
    return found


def _blank_rows(frame: pd.DataFrame) -> pd.Series:
    return frame.apply(lambda column: column.str.strip() == "").all(axis=1)


def _from_wide(table: Table, columns: dict[str, int], kinds: list[str]) -> pd.DataFrame:
    """One tidy row per (input row, phone type or setting column)."""
    source = table.frame
    frame = pd.DataFrame(
        {
            "row": source.index,
            "user": source[columns["user"]].str.strip(),
            "region": source[columns["region"]].str.strip() if "region" in columns else "",
            "notExported": source[columns["notExported"]] if "notExported" in columns else "",
            "note": source[columns["note"]].str.strip() if "note" in columns else "",
        },
        index=source.index,
    )
    for kind in kinds:
        frame[kind] = source[columns[kind]]
    frame = frame[~_blank_rows(source).to_numpy() | frame["row"].isin(_garbled_rows(table)).to_numpy()]
    tidy = frame.melt(
        id_vars=["row", "user", "region", "notExported", "note"],
        value_vars=kinds,
        var_name="phoneType",
        value_name="raw",
    )
    tidy["raw"] = tidy["raw"].str.strip()
    tidy["error"] = [
        f"not in the export: {note or 'the export could not read it'}" if phone_type in not_exported.split() else ""
        for phone_type, not_exported, note in zip(tidy["phoneType"], tidy["notExported"], tidy["note"])
    ] if "notExported" in columns else ""
    tidy.loc[tidy["user"] == "", "error"] = "no user on this row: fill in the UPN or object id"
    return tidy


def _from_long(table: Table, columns: dict[str, int]) -> pd.DataFrame:
    source = table.frame
    keep = ~_blank_rows(source).to_numpy() | source.index.isin(_garbled_rows(table))
    written_types = source[columns["phoneType"]].str.strip()
    phone_types = [_PHONE_TYPE_WORDS.get(re.sub(r"[^a-z]", "", word.lower())) for word in written_types]
    tidy = pd.DataFrame(
        {
            "row": source.index,
            "user": source[columns["user"]].str.strip(),
            "phoneType": [t.value if t else written for t, written in zip(phone_types, written_types)],
            "raw": source[columns["phoneNumber"]].str.strip(),
            "region": source[columns["region"]].str.strip() if "region" in columns else "",
            "error": "",
        }
    ).reset_index(drop=True)
    unknown = [t is None for t in phone_types]
    tidy.loc[unknown, "error"] = [
        f"unknown phoneType {clip(word, 60)!r}: use mobile, alternateMobile or office" for word in written_types[unknown]
    ]
    tidy.loc[tidy["user"] == "", "error"] = "no user on this row: fill in the UPN or object id"
    return tidy[keep].reset_index(drop=True)


def _garbled_rows(table: Table) -> list[int]:
    return list(table.row_problems) + list(table.cell_problems)


def _type_order_key(column: pd.Series) -> pd.Series:
    if column.name != "phoneType":
        return column
    order = {kind: i for i, kind in enumerate(_CELL_KINDS)}
    return column.map(lambda value: order.get(value, len(order)))


def _list(names, shown: int = 12) -> str:
    listed = ", ".join(repr(clip(str(n), 40)) for n in names[:shown]) or "none"
    return listed + (f" and {len(names) - shown:,} more" if len(names) > shown else "")


def first_user(source: str | Path, sheet: str | None = None) -> str | None:
    """The input's first usable user (to probe the sign-in with); reads the first rows only."""
    for frame in iter_input(source, chunk_rows=1000, sheet=sheet):
        users = frame.loc[(frame["error"] == "") & (frame["user"] != ""), "user"]
        if len(users):
            return users.iloc[0]
    return None
