"""Read input files into one tidy frame: one row per (input row, phone type).

Columns of the frame: `row` (the line number a spreadsheet shows, header = 1), `user`,
`phoneType`, `raw` (the cell as written, "" for a blank cell), `region` and `error`
(why the row can't be used, e.g. an unknown phoneType).
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pandas as pd

from .errors import InputError
from .model import PhoneType
from .normalize import normalize_region
from .planner import user_key

if TYPE_CHECKING:
    from .mapping import IdentityMap

__all__ = ["TIDY_COLUMNS", "count_rows", "iter_input", "read_input", "read_table", "read_users"]

TIDY_COLUMNS = ["row", "user", "sourceUser", "phoneType", "raw", "region", "error"]

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
    # bulkphone export: the phone types it couldn't read (masked, or the user unreadable), and why
    "notExported": {"notexported"},
    "note": {"note"},
}
_PHONE_TYPE_WORDS = {
    re.sub(r"[^a-z]", "", alias): phone_type
    for phone_type in PhoneType
    for alias in _ALIASES[phone_type.value] | {phone_type.value}
}


def read_input(path: str | Path) -> pd.DataFrame:
    """Read a wide or long input file into the tidy frame."""
    return pd.concat(list(iter_input(path)), ignore_index=True)


def iter_input(path: str | Path, chunk_rows: int | None = None, identity: IdentityMap | None = None) -> Iterator[pd.DataFrame]:
    """The tidy frame in pieces of `chunk_rows` input rows (CSV), so memory stays flat on big files.

    With an identity map, `user` is the mapped (target) user and `sourceUser` the one the file
    names; a user the map can't place gets the reason as its error."""
    path = Path(path)
    columns = None
    first_row = 2  # line 1 is the header, so the first data row is row 2, as a spreadsheet shows it
    for table in _tables(path, chunk_rows):
        if columns is None:
            columns = _shape(path, table)
        rows = list(range(first_row, first_row + len(table)))
        first_row += len(table)
        if "phoneType" in columns and "phoneNumber" in columns:
            tidy = _from_long(table, columns, rows)
        else:
            tidy = _from_wide(table, columns, rows, [t for t in PhoneType if t.value in columns])
        tidy["sourceUser"] = ""
        if identity is not None:
            _map_users(tidy, identity)
        yield tidy[TIDY_COLUMNS].sort_values(["row", "phoneType"], key=_type_order_key, kind="stable").reset_index(drop=True)


def _map_users(tidy: pd.DataFrame, identity: IdentityMap) -> None:
    targets = {user: identity.target(user) for user in tidy["user"].unique() if user}
    mapped = tidy["user"] != ""
    tidy.loc[mapped, "sourceUser"] = tidy.loc[mapped, "user"]
    tidy.loc[mapped, "user"] = [targets[user][0] or user for user in tidy.loc[mapped, "user"]]
    # Who the user is comes first: a row the map can't place says so, whatever else is wrong with it.
    unmapped = pd.Series([bool(targets[user][1]) if user else False for user in tidy["sourceUser"]], index=tidy.index)
    tidy.loc[unmapped, "error"] = [targets[user][1] for user in tidy.loc[unmapped, "sourceUser"]]


def count_rows(path: str | Path, block: int = 1 << 20) -> int | None:
    """About how many data rows a CSV has (its lines less the header), for a progress bar's
    total; None for a workbook or a file that can't be read."""
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return None
    try:
        with path.open("rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(block), b""))
    except OSError:
        return None
    return max(lines - 1, 0)


def _shape(path: Path, table: pd.DataFrame) -> dict[str, str]:
    columns = _match_columns(path, table.columns)
    if "user" not in columns:
        raise InputError(
            f"{path}: no user column (found: {_list(table.columns)}). "
            "Fix: name the column holding UPNs or object ids 'user' (or userPrincipalName, upn, objectId)."
        )
    if not ("phoneType" in columns and "phoneNumber" in columns) and not any(t.value in columns for t in PhoneType):
        raise InputError(
            f"{path}: no phone columns (found: {_list(table.columns)}). "
            "Fix: add columns mobile, alternateMobile and/or office (wide shape), "
            "or phoneType and phoneNumber (long shape)."
        )
    return columns


def read_users(path: str | Path) -> dict[str, str]:
    """Read a users file: lower-cased user -> default region ("" when none given)."""
    path = Path(path)
    table = read_table(path)
    columns = _match_columns(path, table.columns)
    if "user" not in columns:
        raise InputError(
            f"{path}: no user column (found: {_list(table.columns)}). "
            "Fix: a users file needs a 'user' column (UPN or object id) and optionally 'region' or 'usageLocation'."
        )
    users: dict[str, str] = {}
    regions = table[columns["region"]] if "region" in columns else [""] * len(table)
    for line, user, region_text in zip(_row_numbers(table), table[columns["user"]], regions):
        if not user.strip():
            continue
        region, error = normalize_region(region_text)
        if error:
            raise InputError(f"{path}, row {line}: {error}")
        users[user_key(user)] = region
    return users


def read_table(path: Path) -> pd.DataFrame:
    """Read CSV (comma, semicolon or tab; UTF-8 with or without BOM, UTF-16) or .xlsx as text."""
    return pd.concat(list(_tables(path, None)), ignore_index=True)


def _tables(path: Path, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    if not path.exists():
        raise InputError(f"{path}: file not found. Fix: check the path and the current folder.")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file. Fix: give the CSV or .xlsx file inside it.")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        tables = iter([_read_excel(path)])
    elif suffix == ".xls":
        raise InputError(f"{path}: old .xls workbooks are not supported. Fix: save it as .xlsx or CSV UTF-8.")
    else:
        tables = _read_csv(path, chunk_rows)
    for table in tables:
        table.columns = [str(c).strip() for c in table.columns]
        yield table.fillna("").astype(str)


def _read_excel(path: Path) -> pd.DataFrame:
    try:
        return pd.read_excel(path, dtype=str, keep_default_na=False, na_filter=False)
    except Exception as exc:  # openpyxl raises many unrelated types for a broken workbook
        raise InputError(f"{path}: can't read this workbook ({exc}). Fix: open it in Excel and save it again as .xlsx.") from exc


def _read_csv(path: Path, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    """The CSV through pandas' C parser straight from the file, so a big one is never in
    memory whole; the encoding is checked first, so a bad byte stops before any work."""
    encoding, header = _encoding_and_header(path)
    separator = max([",", ";", "\t"], key=header.count)
    try:
        reader = pd.read_csv(
            path,
            sep=separator,
            encoding=encoding,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            chunksize=chunk_rows,
        )
        if chunk_rows is None:
            yield reader
        else:
            yield from reader
    except pd.errors.ParserError as exc:
        raise InputError(f"{path}: not a well-formed CSV ({exc}). Fix: check quoting and the number of columns on that line.") from exc


def _encoding_and_header(path: Path, block: int = 1 << 20) -> tuple[str, str]:
    """The file's encoding (UTF-16 by its BOM, else UTF-8) and its first line; every byte is
    decoded once on the way, a block at a time."""
    with path.open("rb") as handle:
        first = handle.read(block)
        if first.startswith((b"\xff\xfe", b"\xfe\xff")):
            encoding = "utf-16"
        elif b"\x00" in first[:4096]:
            raise InputError(f"{path}: this is a binary file, not CSV. Fix: give a CSV or .xlsx file.")
        else:
            encoding = "utf-8-sig"
        decoder = codecs.getincrementaldecoder(encoding)()
        data, offset, header, blank = first, 0, None, True
        while data:
            try:
                text = decoder.decode(data)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}: not UTF-8 text (byte {offset + exc.start}). "
                    "Fix: in Excel use Save As → 'CSV UTF-8 (Comma delimited)'."
                ) from exc
            blank = blank and not text.strip()
            if header is None and "\n" in text:
                header = text[: text.find("\n")]
            offset += len(data)
            data = handle.read(block)
        if blank:
            raise InputError(f"{path}: the file is empty. Fix: export it again with a header row and data.")
    return encoding, header if header is not None else text


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _match_columns(path: Path, names) -> dict[str, str]:
    """Map each canonical column to the file's column name, case-insensitively with aliases.

    A column named exactly as the canonical one wins over aliases (bulkphone's own export has
    both `user` and `objectId`); two aliases of one column are ambiguous."""
    found: dict[str, str] = {}
    exact = {canonical for canonical in _ALIASES for name in names if _key(name) == _key(canonical)}
    for name in names:
        key = _key(name)
        for canonical, aliases in _ALIASES.items():
            if canonical in exact and key != _key(canonical):
                continue
            if key in aliases or key == _key(canonical):
                if canonical in found:
                    raise InputError(
                        f"{path}: columns {found[canonical]!r} and {name!r} both mean {canonical}. Fix: keep one of them."
                    )
                found[canonical] = name
    return found


def _row_numbers(table: pd.DataFrame) -> list[int]:
    # Line 1 is the header, so the first data row is row 2, as a spreadsheet shows it.
    return [index + 2 for index in range(len(table))]


def _blank_rows(table: pd.DataFrame) -> pd.Series:
    return table.apply(lambda column: column.str.strip() == "").all(axis=1)


def _from_wide(table: pd.DataFrame, columns: dict[str, str], rows: list[int], phone_types) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "row": rows,
            "user": table[columns["user"]].str.strip(),
            "region": table[columns["region"]].str.strip() if "region" in columns else "",
            "notExported": table[columns["notExported"]] if "notExported" in columns else "",
            "note": table[columns["note"]].str.strip() if "note" in columns else "",
        }
    )
    for phone_type in phone_types:
        frame[phone_type.value] = table[columns[phone_type.value]]
    frame = frame[~_blank_rows(table).to_numpy()]
    tidy = frame.melt(
        id_vars=["row", "user", "region", "notExported", "note"],
        value_vars=[t.value for t in phone_types],
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


def _from_long(table: pd.DataFrame, columns: dict[str, str], rows: list[int]) -> pd.DataFrame:
    keep = ~_blank_rows(table).to_numpy()
    written_types = table[columns["phoneType"]].str.strip()
    phone_types = [_PHONE_TYPE_WORDS.get(re.sub(r"[^a-z]", "", word.lower())) for word in written_types]
    tidy = pd.DataFrame(
        {
            "row": rows,
            "user": table[columns["user"]].str.strip(),
            "phoneType": [t.value if t else written for t, written in zip(phone_types, written_types)],
            "raw": table[columns["phoneNumber"]].str.strip(),
            "region": table[columns["region"]].str.strip() if "region" in columns else "",
            "error": "",
        }
    )
    unknown = [t is None for t in phone_types]
    tidy.loc[unknown, "error"] = [
        f"unknown phoneType {word!r}: use mobile, alternateMobile or office" for word in written_types[unknown]
    ]
    tidy.loc[tidy["user"] == "", "error"] = "no user on this row: fill in the UPN or object id"
    return tidy[keep]


def _type_order_key(column: pd.Series) -> pd.Series:
    if column.name != "phoneType":
        return column
    order = {t.value: i for i, t in enumerate(PhoneType)}
    return column.map(lambda value: order.get(value, len(order)))


def _list(names) -> str:
    return ", ".join(repr(str(n)) for n in names) or "none"
