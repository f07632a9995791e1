"""A reviewed plan, saved as the plan report CSV, applied later exactly as it was reviewed.

Every row carries `planChecksum`, a SHA-256 of all rows' plan columns: anyone can recompute
it, the plan's summary and HTML page show it, and it is what a change board approves. A plan
edited after it was made (by hand, or by Excel re-saving it) no longer matches it.

A checksum alone can't stop a forgery: whoever edits `noop` into `delete` can compute the new
one. So a plan is applied only when
- the approver's checksum is given (`apply --plan PLAN.csv --approve SHA`) and equals the
  plan's, or
- its `planSignature` (an HMAC-SHA256 of the checksum under the plan key, which only the
  person or job that made the plan holds) checks out. The plan key is `BULKPHONE_PLAN_KEY`
  when set (a secret shared by the job that plans and the job that applies), else a random
  key made on first use in `~/.config/bulkphone/plan.key` (`%APPDATA%\\bulkphone` on
  Windows), readable by its owner only.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import secrets
import sys
from pathlib import Path
from typing import NamedTuple

from ._errors import InputError
from ._files import require_regular_file
from ._model import Action, Mode
from ._planner import AWAITS_USER_NOTE, Plan, PlanItem
from ._report import REPORT_COLUMNS, plan_rows, write_csv
from ._text import restore

__all__ = ["CHECKSUM_COLUMN", "PLAN_KEY_ENV", "SIGNATURE_COLUMN", "SavedPlan", "plan_checksum", "plan_key", "read_plan", "write_plan"]

CHECKSUM_COLUMN = "planChecksum"
SIGNATURE_COLUMN = "planSignature"
PLAN_KEY_ENV = "BULKPHONE_PLAN_KEY"
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


def plan_checksum(plan: Plan) -> str:
    """The SHA-256 a change board approves: the same for the plan and for its CSV read back."""
    return _checksum([[str(row[c]) for c in REPORT_COLUMNS] for row in plan_rows(plan)])


class SavedPlan(NamedTuple):
    path: Path
    checksum: str
    rows: list[dict]  # the report rows written, for summaries


def write_plan(plan: Plan, path: str | Path, *, key: bytes | None = None) -> SavedPlan:
    """Write the plan CSV with its checksum and its signature under `key` (default: plan_key();
    no signature when there is no key)."""
    rows = plan_rows(plan)
    checksum = _checksum([[str(row[c]) for c in REPORT_COLUMNS] for row in rows])
    key = key if key is not None else plan_key(create=True)
    signature = _sign(key, checksum) if key is not None else ""
    for row in rows:
        row[CHECKSUM_COLUMN] = checksum
        row[SIGNATURE_COLUMN] = signature
    return SavedPlan(write_csv(rows, path, REPORT_COLUMNS + [CHECKSUM_COLUMN, SIGNATURE_COLUMN]), checksum, rows)


def read_plan(path: str | Path, mode: Mode | str = Mode.UPSERT, *, approved: str | None = None, key: bytes | None = None) -> Plan:
    """Load a plan written by `bulkphone plan`, if it is the plan that was made and approved.

    With `approved` (the checksum a change board approved), the plan must have exactly that
    checksum. Without it, its signature must check out under `key` (default: plan_key()).
    The rows hold every decision, so `mode` only labels the run."""
    path = Path(path)
    try:
        require_regular_file(path, "plan")
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [{column: restore(value or "") for column, value in row.items()} for row in reader]
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
    _check_approval(path, actual, {row.get(SIGNATURE_COLUMN) or "" for row in rows}, approved, key)
    try:
        items = tuple(_item(row) for row in rows)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    return Plan(mode=Mode(mode), items=items)


def _check_approval(path: Path, checksum: str, signatures: set[str], approved: str | None, key: bytes | None) -> None:
    if approved is not None:
        if approved.strip().lower() != checksum:
            raise InputError(
                f"{path}: this is not the approved plan: its checksum is {checksum}, the approved one {approved.strip()}. "
                "Nothing was written. Fix: apply the plan file that was approved, or have this plan approved."
            )
        return
    key = key if key is not None else plan_key(create=False)
    (signature,) = signatures if len(signatures) == 1 else ("",)
    if key is None or not signature or not hmac.compare_digest(signature, _sign(key, checksum)):
        raise InputError(
            f"{path}: can't tell that this plan is the one bulkphone made: its signature doesn't check out under "
            f"this machine's plan key (a plan made elsewhere, or edited and given a new checksum). Nothing was "
            f"written. Fix: give the checksum your change board approved ({checksum} if this is the plan they "
            f"saw) to confirm it, or make the plan again here; jobs that plan and apply on different machines "
            f"share a key in {PLAN_KEY_ENV}."
        )


def plan_key(*, create: bool) -> bytes | None:
    """The key plans are signed with: BULKPHONE_PLAN_KEY, else this user's key file, made when
    `create` and missing. None when there is none (or it can't be made: a read-only home in a
    container); such a plan is written unsigned and applied only with the approved checksum."""
    shared = os.environ.get(PLAN_KEY_ENV)
    if shared:
        return shared.encode()
    path = _key_path()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
    except OSError:
        return None
    key = secrets.token_hex(32).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another run made it first
        return path.read_bytes()
    except OSError:
        return None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key


def _key_path() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home())
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "bulkphone" / "plan.key"


def _sign(key: bytes, checksum: str) -> str:
    return hmac.new(key, checksum.encode(), hashlib.sha256).hexdigest()


def _item(row: dict) -> PlanItem:
    values = {name: row.get(column, "") for name, column in _FIELDS.items()}
    values["row"] = int(values["row"])
    values["action"] = Action(values["action"])
    # The note is the plan's record that the user was 404 when planned (the checksum covers it).
    return PlanItem(**values, awaits_user=values["note"] == AWAITS_USER_NOTE)


def _checksum(cells: list[list[str]]) -> str:
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()
