"""A reviewed plan, saved as the plan report CSV, applied later exactly as it was reviewed.

Every row carries `planChecksum`, a SHA-256 of all rows' plan columns, so a plan edited after
it was made (by hand, or by Excel re-saving it) is refused instead of applied.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from .errors import InputError
from .model import Action, Mode
from .planner import Plan, PlanItem
from .report import REPORT_COLUMNS, plan_rows, write_csv

__all__ = ["CHECKSUM_COLUMN", "read_plan", "write_plan"]

CHECKSUM_COLUMN = "planChecksum"
_FIELDS = {
    "row": "row",
    "user": "user",
    "phone_type": "phoneType",
    "action": "action",
    "number": "phoneNumber",
    "current": "currentNumber",
    "raw": "raw",
    "region": "region",
    "error": "error",
    "warning": "warning",
    "note": "note",
    "source_user": "sourceUser",
}
_ADDED_LATER = {"sourceUser"}  # plans written before it existed are still valid without it


def write_plan(plan: Plan, path: str | Path) -> Path:
    rows = plan_rows(plan)
    checksum = _checksum([[str(row[c]) for c in REPORT_COLUMNS] for row in rows])
    for row in rows:
        row[CHECKSUM_COLUMN] = checksum
    return write_csv(rows, path, REPORT_COLUMNS + [CHECKSUM_COLUMN])


def read_plan(path: str | Path, mode: Mode | str = Mode.UPSERT) -> Plan:
    """Load a plan written by `bulkphone plan`; refuse it if it was edited since.

    The rows hold every decision, so `mode` only labels the run."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: can't read the plan ({exc}). Fix: give the CSV that bulkphone plan wrote.") from None
    missing = [c for c in REPORT_COLUMNS + [CHECKSUM_COLUMN] if c not in columns and c not in _ADDED_LATER]
    if missing:
        raise InputError(
            f"{path}: not a bulkphone plan (no column {', '.join(missing)}). Fix: make one with bulkphone plan --report."
        )
    recorded = {row[CHECKSUM_COLUMN] for row in rows}
    checked = [c for c in REPORT_COLUMNS if c in columns]
    actual = _checksum([[row[c] for c in checked] for row in rows])
    if recorded != {actual}:
        raise InputError(
            f"{path}: the plan was changed after bulkphone made it (checksum mismatch), so it isn't the plan that "
            "was reviewed. Fix: run bulkphone plan again and review the new plan."
        )
    try:
        items = tuple(_item(row) for row in rows)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    return Plan(mode=Mode(mode), items=items)


def _item(row: dict) -> PlanItem:
    values = {name: row.get(column, "") for name, column in _FIELDS.items()}
    values["row"] = int(values["row"])
    values["action"] = Action(values["action"])
    return PlanItem(**values)


def _checksum(cells: list[list[str]]) -> str:
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()
