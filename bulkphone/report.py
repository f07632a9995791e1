"""Reports: one CSV row per (input row, phone type), so every input row is accounted for."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Iterable

from .executor import RunResult
from .model import Status
from .planner import Cell, Plan

__all__ = [
    "NORMALIZE_COLUMNS",
    "REPORT_COLUMNS",
    "has_problems",
    "normalize_rows",
    "plan_rows",
    "result_rows",
    "summarize",
    "write_csv",
]

REPORT_COLUMNS = [
    "row",
    "user",
    "phoneType",
    "action",
    "status",
    "phoneNumber",
    "currentNumber",
    "error",
    "warning",
    "note",
    "raw",
    "region",
    "attempts",
    "httpStatus",
    "requestId",
    "smsSignInState",
    "reconciled",
]
NORMALIZE_COLUMNS = ["row", "user", "phoneType", "raw", "region", "phoneNumber", "status", "error", "warning", "note"]


def plan_rows(plan: Plan) -> list[dict]:
    return [_plan_row(item) for item in plan.items]


def result_rows(result: RunResult) -> list[dict]:
    rows = []
    for item in result.plan.items:
        outcome = result.outcome(item)
        row = _plan_row(item)
        row.update(
            status=outcome.status.value,
            error=outcome.error or item.error,
            warning=outcome.warning,
            attempts=outcome.attempts or "",
            httpStatus=outcome.http_status or "",
            requestId=outcome.request_id,
            smsSignInState=outcome.sms_sign_in_state,
            reconciled="yes" if outcome.reconciled else "",
        )
        rows.append(row)
    return rows


def normalize_rows(cells: Iterable[Cell]) -> list[dict]:
    rows = []
    for cell in cells:
        if cell.excluded:
            status = Status.SKIPPED.value
        elif cell.error:
            status = "invalid"
        elif cell.number:
            status = Status.OK.value
        else:
            status = "blank"
        rows.append(
            {
                "row": cell.row,
                "user": cell.user,
                "phoneType": cell.phone_type,
                "raw": cell.raw,
                "region": cell.region,
                "phoneNumber": cell.number,
                "status": status,
                "error": cell.error,
                "warning": cell.warning,
                "note": cell.excluded,
            }
        )
    return rows


def has_problems(rows: Iterable[dict]) -> bool:
    """A row failed, or was skipped for a reason someone must fix (exit code 1)."""
    return any(row["status"] in ("failed", "invalid") or (row["status"] == "skipped" and row["error"]) for row in rows)


def summarize(rows: Iterable[dict]) -> dict[str, Counter]:
    rows = list(rows)
    return {
        "action": Counter(row["action"] for row in rows if "action" in row),
        "status": Counter(row["status"] for row in rows),
    }


def write_csv(rows: Iterable[dict], path: str | Path, columns: list[str] = REPORT_COLUMNS) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _plan_row(item) -> dict:
    return {
        "row": item.row,
        "user": item.user,
        "phoneType": item.phone_type,
        "action": item.action.value,
        "status": item.status.value,
        "phoneNumber": item.number,
        "currentNumber": item.current,
        "error": item.error,
        "warning": item.warning,
        "note": item.note,
        "raw": item.raw,
        "region": item.region,
        "attempts": "",
        "httpStatus": "",
        "requestId": "",
        "smsSignInState": "",
        "reconciled": "",
    }
