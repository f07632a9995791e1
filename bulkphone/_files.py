"""Files bulkphone reads and writes, handled so that nothing is destroyed or exposed.

- Inputs must be regular files: a FIFO, a device (`/dev/zero` behind a symlink) or a socket
  would hang a run or feed it forever.
- Outputs (reports, summaries, HTML pages, journals) hold user names and phone numbers: they
  are created readable by their owner only (0600), written to a temporary file beside the
  target and renamed over it when complete, and never onto a file the run reads.
- A journal is used by one run at a time: a second run on it stops, naming the first.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import stat
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator

from ._errors import InputError, JournalInUseError

__all__ = ["RunLock", "keep_earlier", "private_file", "refuse_overwriting", "require_regular_file", "write_private"]

PRIVATE = 0o600


def require_regular_file(path: Path, what: str = "input") -> os.stat_result:
    """The file's status; an InputError unless it is an existing regular file (symlinks followed)."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found. Fix: check the path and the current folder.") from None
    except OSError as exc:
        raise InputError(f"{path}: can't read this {what} ({exc.strerror}). Fix: check the path and its permissions.") from None
    if stat.S_ISDIR(status.st_mode):
        raise InputError(f"{path}: is a folder, not a file. Fix: give the CSV or .xlsx file inside it.")
    if not stat.S_ISREG(status.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(status.st_mode) else "a device or socket"
        raise InputError(
            f"{path}: is {kind}, not a regular file, so it could hang or never end. Fix: give a file saved on disk."
        )
    return status


def keep_earlier(report: Path, *companions: Path) -> Path | None:
    """Move an earlier run's report aside before a new one is written in its place: `results.csv`
    becomes `results.20261126T175803Z.csv` (when it was written, UTC), and its companions
    (`results.summary.json`, `results.html`) take the same stamp. Returns the earlier report's
    new name (None when there was none)."""
    report = Path(report)
    if not report.exists():
        return None
    written = datetime.datetime.fromtimestamp(report.stat().st_mtime, datetime.timezone.utc)
    stamp = written.strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1000):  # two runs within a second: results.<stamp>-1.csv
        base = f"{report.stem}.{stamp}" + (f"-{attempt}" if attempt else "")
        moves = [(path, path.with_name(base + path.name[len(report.stem):])) for path in (report, *companions)]
        if not any(new.exists() for _, new in moves):
            break
    for path, new in moves:
        if path.exists():
            os.replace(path, new)
    return moves[0][1]


def refuse_overwriting(inputs: Iterable[Path | str | None], outputs: Iterable[Path | str | None]) -> None:
    """An InputError when an output would land on one of the run's inputs (the same file by any path)."""
    existing_inputs = [Path(p) for p in inputs if p is not None and Path(p).exists()]
    for output in outputs:
        if output is None or not Path(output).exists():
            continue
        for source in existing_inputs:
            with contextlib.suppress(OSError):
                if os.path.samefile(output, source):
                    raise InputError(
                        f"{output}: is also this run's input {source}, and writing it would destroy that input. "
                        "Fix: give the report (or journal) a name of its own."
                    )


@contextlib.contextmanager
def private_file(path: Path | str, *, newline: str | None = "") -> Iterator[IO[str]]:
    """A text file opened for writing that appears at `path` (mode 0600) only once it is complete.

    The rows go to a temporary file beside it, renamed over `path` at the end, so a killed run
    never leaves half a report and an earlier report stays whole until the new one is done."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), PRIVATE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_private(path: Path | str, text: str) -> Path:
    with private_file(path, newline=None) as handle:
        handle.write(text)
    return Path(path)


class RunLock:
    """An exclusive lock on `PATH.lock` for one run's life, released by the OS if the process dies.

    The holder's process id, host, command and start time are written after the first byte
    (the one byte Windows locks), so a second run can say who holds it."""

    def __init__(self, path: Path | str, purpose: str) -> None:
        self.path = Path(f"{path}.lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), PRIVATE)
        try:
            _lock(self.descriptor)
        except OSError:
            holder = _read_holder(self.descriptor)
            os.close(self.descriptor)
            raise JournalInUseError(
                f"{path}: another bulkphone run is using this journal ({holder}). Fix: wait for that run to finish, "
                "or give this run a journal of its own."
            ) from None
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose, "started": started}
        os.ftruncate(self.descriptor, 1)
        os.lseek(self.descriptor, 1, os.SEEK_SET)
        os.write(self.descriptor, json.dumps(holder).encode())

    def release(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)  # closing the descriptor releases the lock
            self.descriptor = None


def _read_holder(descriptor: int) -> str:
    try:
        os.lseek(descriptor, 1, os.SEEK_SET)
        holder = json.loads(os.read(descriptor, 4096) or b"{}")
        return f"process {holder['pid']} on {holder['host']}, {holder['purpose']} started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that did not say who it is"


if sys.platform == "win32":
    import msvcrt

    def _lock(descriptor: int) -> None:
        os.lseek(descriptor, 0, os.SEEK_SET)
        msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(descriptor: int) -> None:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
