"""Input cells: an input file read in chunks (on every core for a big one) and each cell
normalised, ready for the planner. The hot loop of bulkphone: plain tuples, no pandas per cell."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Iterator

import pandas as pd
import phonenumbers

from ._errors import InputError
from ._ingest import UserMapping, iter_input, read_users
from ._model import SETTINGS, PhoneType, user_key
from ._normalize import Normalizer, extension_problem, normalize_region, normalize_setting
from ._parallel import map_in_order
from ._planner import Cell

__all__ = ["CHUNK_ROWS", "Users", "cell_fields", "input_defaults", "load_cells"]

_CANT_SMS = {"fixed_line", "toll_free", "premium_rate", "shared_cost", "uan", "voicemail", "personal_number"}
Users = str | Path | dict[str, str] | None
NOT_IN_USERS_FILE = "not in the users file: left out of this run"
CHUNK_ROWS = 100_000  # input rows read at a time: memory stays flat however big the file


def load_cells(
    source: str | Path, *, users: Users = None, default_region: str | None = None, identity: UserMapping | None = None,
    sheet: str | None = None,
) -> list[Cell]:
    """Read and normalise an input file: one Cell per (input row, phone type).

    With an identity map each source user becomes its target user (see bulkphone.mapping)."""
    known_users, region_default = input_defaults(users, default_region)
    work = functools.partial(_chunk_fields, known_users, region_default)
    frames = iter_input(source, CHUNK_ROWS, identity, sheet)
    return [Cell(*fields) for chunk in map_in_order(work, frames) for fields in chunk]


def _chunk_fields(known_users, region_default: str, frame: pd.DataFrame) -> list[tuple]:
    """One chunk's cells, as plain tuples: they cross from a worker process fastest."""
    return list(cell_fields(frame, known_users, region_default, Normalizer()))


def input_defaults(users: Users, default_region: str | None) -> tuple[dict[str, str] | None, str]:
    """The users file's users and regions (None: no users file), and the default region, checked."""
    region_default, problem = normalize_region(default_region)
    if problem:
        raise InputError(f"{{default_region}}: {problem}", settings=("default_region",))
    return (read_users(users) if isinstance(users, (str, Path)) else users), region_default


def cell_fields(
    frame: pd.DataFrame, known_users: dict[str, str] | None, region_default: str, normalizer: Normalizer
) -> Iterator[tuple[int, str, str, str, str, str, str, str, str, str, str, str, str, str]]:
    """Each cell of the tidy frame as Cell's fields, in order (row, user, phone_type, raw, region,
    number, number_region, number_type, error, warning, excluded, unchanged, source_user, placeholder).

    Plain tuples from a plain loop: on a million rows, pandas string ops and a dataclass per
    cell cost more than the normalisation itself."""
    columns = [frame[name].tolist() for name in ("row", "user", "sourceUser", "phoneType", "raw", "region", "error")]
    user_regions = known_users or {}
    for row, user, source_user, phone_type, raw, written, error in zip(*columns):
        if phone_type in SETTINGS:
            yield _setting_fields(row, user, source_user, phone_type, raw, written, error, known_users)
            continue
        written = written.strip()
        region = sys.intern(written.upper())  # millions of cells, a few hundred regions
        key = user_key(user)
        excluded = number = number_region = number_type = warning = placeholder = ""
        if known_users is not None and key not in known_users:
            excluded = "" if error else NOT_IN_USERS_FILE
            region = written
        elif error:
            region = written
        elif region and region not in phonenumbers.SUPPORTED_REGIONS:
            error = normalize_region(written)[1]
            region = written
        else:
            region = region or user_regions.get(key, "") or region_default
            result = normalizer(raw, region)
            number, number_region, number_type, error, placeholder = result
            if number and (error := extension_problem(number, phone_type)):
                number = ""
            elif number and number_type in _CANT_SMS and phone_type != PhoneType.OFFICE.value:
                warning = f"{number_type.replace('_', ' ')} number in {phone_type}: it can't receive SMS codes"
        yield (row, user, phone_type, raw, region, number, number_region, number_type, error, warning, excluded, "",
               source_user, placeholder)


def _setting_fields(row, user, source_user, kind, raw, written, error, known_users) -> tuple:
    """A defaultMethod or smsSignIn cell as Cell's fields: its value as Graph spells it, or why not."""
    excluded = ""
    if known_users is not None and user_key(user) not in known_users:
        excluded = "" if error else NOT_IN_USERS_FILE
    value = ""
    if not error and not excluded:
        value, error = normalize_setting(kind, raw)
    return (row, user, kind, raw, written.strip(), value, "", "", error, "", excluded, "", source_user, "")
