"""A SQLite journal of each apply run: the plan, and every change's outcome as it happens
(and of each export: the users listed and read so far).

A change is marked `inflight` before its request is sent and `done` (with its outcome) after,
each in its own small transaction, in WAL mode with full sync. If the process dies, running
`apply` again with the same input finds the unfinished run: `done` changes keep their
outcome, `inflight` ones are read back before anything is written, the rest run as planned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable

from ._errors import InputError
from ._executor import Outcome
from ._files import PRIVATE, RunLock
from ._model import Action, Mode, Status
from ._normalize import canonical
from ._planner import Plan, PlanItem

__all__ = ["ExportJournal", "ExportProgress", "Journal", "ResumedRun", "RunRecorder", "run_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    mode TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT
);
CREATE TABLE IF NOT EXISTS items (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    outcome TEXT,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS runs_by_key ON runs(key, finished);
CREATE TABLE IF NOT EXISTS exports (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    started TEXT NOT NULL,
    next_link TEXT,
    listed INTEGER NOT NULL DEFAULT 0,
    finished TEXT
);
CREATE TABLE IF NOT EXISTS export_users (
    export_id INTEGER NOT NULL REFERENCES exports(id),
    seq INTEGER NOT NULL,
    user TEXT NOT NULL,
    data TEXT,
    PRIMARY KEY (export_id, seq)
);
CREATE TABLE IF NOT EXISTS verified (
    user TEXT NOT NULL,
    phone_type TEXT NOT NULL,
    number TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (user, phone_type)
);
"""


def run_key(*parts: bytes | str | None) -> str:
    """Identify a run by its inputs and options: the same key means the same run to resume."""
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else str(part or "").encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


@dataclasses.dataclass
class ResumedRun:
    run_id: int
    plan: Plan
    done: dict[tuple[int, str], Outcome]
    in_doubt: set[tuple[int, str]]  # changes that were in flight when the process died


class Journal:
    """One run's journal, held by that run alone: a second Journal on the same path (another
    process, or this one) raises JournalInUseError naming the holder until this one is closed.
    The database and its WAL files are readable by their owner only (they hold users and numbers)."""

    def __init__(self, path: str | Path, *, purpose: str = "a bulkphone run") -> None:
        self.path = Path(path)
        self.created = not self.path.exists()
        try:
            self.lock = RunLock(self.path, purpose)
        except OSError as exc:
            raise InputError(f"{self.path}: can't open the run journal ({exc}). Fix: {{journal}} must be a writable path.",
                             settings=("journal",)) from exc
        try:
            # SQLite gives the -wal and -shm files the database file's permissions.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE))
            os.chmod(self.path, PRIVATE)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            self.lock.release()
            raise InputError(f"{self.path}: can't open the run journal ({exc}). Fix: {{journal}} must be a writable path.",
                             settings=("journal",)) from exc

    def close(self) -> None:
        """Close it. A journal this run created and never wrote to (the run stopped at a setup
        error) is removed with its side files, so a failed start leaves nothing behind."""
        unused = self.created and not self.db.execute(
            "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM exports) + (SELECT count(*) FROM verified)"
        ).fetchone()[0]
        self.db.close()
        if unused:
            # Removed while the lock is still held, so no other run can be using them.
            for leftover in (self.path, *(self.path.with_name(self.path.name + end) for end in ("-wal", "-shm", ".lock"))):
                with contextlib.suppress(OSError):  # Windows keeps an open file
                    leftover.unlink(missing_ok=True)
        self.lock.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def resume(self, key: str) -> ResumedRun | None:
        """The newest unfinished run with this key, or None."""
        found = self.db.execute(
            "SELECT id, mode FROM runs WHERE key = ? AND finished IS NULL ORDER BY id DESC LIMIT 1", (key,)
        ).fetchone()
        if found is None:
            return None
        run_id, mode = found
        items, done, in_doubt = [], {}, set()
        for data, state, outcome in self.db.execute(
            "SELECT data, state, outcome FROM items WHERE run_id = ? ORDER BY seq", (run_id,)
        ):
            item = _load(PlanItem, data, action=Action)
            items.append(item)
            if state == "done":
                done[(item.row, item.phone_type)] = _load(Outcome, outcome, status=Status)
            elif state == "inflight":
                in_doubt.add((item.row, item.phone_type))
        return ResumedRun(run_id, Plan(mode=Mode(mode), items=tuple(items)), done, in_doubt)

    def begin(self, key: str, plan: Plan) -> int:
        with self.db:
            self.db.execute("BEGIN")
            cursor = self.db.execute(
                "INSERT INTO runs (key, mode, started) VALUES (?, ?, ?)", (key, plan.mode.value, _now())
            )
            run_id = cursor.lastrowid
            self.db.executemany(
                "INSERT INTO items (run_id, seq, data) VALUES (?, ?, ?)",
                ((run_id, seq, _dump(item)) for seq, item in enumerate(plan.items)),
            )
        return run_id

    def recorder(self, run_id: int, plan: Plan) -> RunRecorder:
        return RunRecorder(self, run_id, plan.items)

    def finish(self, run_id: int) -> None:
        self.db.execute("UPDATE runs SET finished = ? WHERE id = ?", (_now(), run_id))

    def remember_verified(self, run_id: int, plan: Plan, outcomes) -> None:
        """After a run: what each (user, type) holds now, as far as this run saw or made it."""
        rows = []
        for item in plan.items:
            outcome = outcomes.get((item.row, item.phone_type))
            if outcome is None or outcome.status is not Status.OK:
                continue
            if item.action in (Action.CREATE, Action.UPDATE):
                rows.append((item.key, item.phone_type, item.number, run_id))
            elif item.action is Action.DELETE:
                rows.append((item.key, item.phone_type, "", run_id))
            elif item.action is Action.NOOP and item.number and canonical(item.current) == item.number:
                rows.append((item.key, item.phone_type, item.number, run_id))  # read from Graph, and already right
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO verified (user, phone_type, number, run_id) VALUES (?, ?, ?, ?)", rows
            )

    def verified(self) -> dict[tuple[str, str], str]:
        """(lower-cased user, phoneType) -> the number last verified ("" = none)."""
        return {(user, phone_type): number for user, phone_type, number in self.db.execute(
            "SELECT user, phone_type, number FROM verified")}


@dataclasses.dataclass
class ExportProgress:
    """How far an unfinished export got: the users listed so far (as the export names them),
    where listing goes on, and each user read so far (seq -> the exported row as JSON)."""

    export_id: int
    users: list[str]
    next_link: str | None
    listed: bool
    rows: dict[int, str]


class ExportJournal:
    """The export's checkpoints in the run journal: each page of users as it is listed, each
    slice of users as it is read. Exporting the same users again resumes an unfinished export."""

    def __init__(self, journal: Journal) -> None:
        self.db = journal.db

    def resume_or_begin(self, key: str) -> ExportProgress:
        found = self.db.execute(
            "SELECT id, next_link, listed FROM exports WHERE key = ? AND finished IS NULL ORDER BY id DESC LIMIT 1", (key,)
        ).fetchone()
        if found is None:
            cursor = self.db.execute("INSERT INTO exports (key, started) VALUES (?, ?)", (key, _now()))
            return ExportProgress(cursor.lastrowid, [], None, False, {})
        export_id, next_link, listed = found
        users, rows = [], {}
        for seq, user, data in self.db.execute(
            "SELECT seq, user, data FROM export_users WHERE export_id = ? ORDER BY seq", (export_id,)
        ):
            users.append(user)
            if data is not None:
                rows[seq] = data
        return ExportProgress(export_id, users, next_link, bool(listed), rows)

    def listed(self, progress: ExportProgress, users: list[str], next_link: str | None) -> None:
        """A page of users, and where the listing goes on (None: it's complete)."""
        first = len(progress.users)
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO export_users (export_id, seq, user) VALUES (?, ?, ?)",
                ((progress.export_id, first + offset, user) for offset, user in enumerate(users)),
            )
            self.db.execute(
                "UPDATE exports SET next_link = ?, listed = ? WHERE id = ?",
                (next_link, int(next_link is None), progress.export_id),
            )
        progress.users.extend(users)
        progress.next_link, progress.listed = next_link, next_link is None

    def read(self, progress: ExportProgress, rows: dict[int, str]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "UPDATE export_users SET data = ? WHERE export_id = ? AND seq = ?",
                ((data, progress.export_id, seq) for seq, data in rows.items()),
            )
        progress.rows.update(rows)

    def finish(self, progress: ExportProgress) -> None:
        self.db.execute("UPDATE exports SET finished = ? WHERE id = ?", (_now(), progress.export_id))


class RunRecorder:
    """What the executor calls around each change; one small transaction a call."""

    def __init__(self, journal: Journal, run_id: int, items: Iterable[PlanItem]) -> None:
        self.journal = journal
        self.run_id = run_id
        self.seq = {(item.row, item.phone_type): seq for seq, item in enumerate(items)}

    def started(self, item: PlanItem) -> None:
        self.journal.db.execute(
            "UPDATE items SET state = 'inflight' WHERE run_id = ? AND seq = ?", (self.run_id, self._seq(item))
        )

    def finished(self, item: PlanItem, outcome: Outcome) -> None:
        self.journal.db.execute(
            "UPDATE items SET state = 'done', outcome = ? WHERE run_id = ? AND seq = ?",
            (_dump(outcome), self.run_id, self._seq(item)),
        )

    def _seq(self, item: PlanItem) -> int:
        return self.seq[(item.row, item.phone_type)]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _dump(record: PlanItem | Outcome) -> str:
    return json.dumps(vars(record))  # flat records; the str enums are written as their values


def _load(kind, text: str, **convert):
    data = json.loads(text)
    for name, to_type in convert.items():
        data[name] = to_type(data[name])
    # a field added since the journal was written keeps its default
    return kind(**{f.name: data[f.name] for f in dataclasses.fields(kind) if f.name in data})
