"""What a person or a scheduler sees while apply runs: a progress bar on a terminal,
plain periodic lines when the output goes to a log."""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ._executor import Progress as RunProgress
from ._logs import event, logger

__all__ = ["HumanFormatter", "ProgressDisplay", "RowProgress", "use_human_logs"]


class ProgressDisplay:
    def __init__(self, stream: TextIO | None = None, *, every_seconds: float = 10.0, json_events: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.every_seconds = every_seconds
        self.json_events = json_events
        self.interactive = self.stream.isatty() and not json_events
        self._last_line = float("-inf")
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> ProgressDisplay:
        if self.interactive:
            self._bar = _bar(self.stream, "applying", "{task.fields[rate]:.1f} writes/s, {task.fields[throttled]} throttled")
            self._bar.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)

    def update(self, progress: RunProgress) -> None:
        # Over at least a second: the first burst (Graph allows one) isn't a rate.
        rate = progress.writes / max(progress.seconds, 1.0)
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task("apply", total=progress.total, rate=0.0, throttled=0)
            self._bar.update(self._task, completed=progress.done, rate=rate, throttled=progress.throttled)
            return
        now = time.monotonic()
        if now - self._last_line >= self.every_seconds or progress.done == progress.total:
            self._last_line = now
            if self.json_events:
                event("progress", done=progress.done, total=progress.total, writes=progress.writes,
                      writes_per_second=round(rate, 2), throttled=progress.throttled, seconds=round(progress.seconds, 1))
                return
            print(
                f"bulkphone: {progress.done}/{progress.total} changes, {progress.writes} writes "
                f"({rate:.1f}/s), {progress.throttled} throttled, {progress.seconds:.0f}s",
                file=self.stream,
                flush=True,
            )


class RowProgress:
    """Rows (or users) done so far, as a live bar on a terminal (nothing in a log)."""

    def __init__(self, total: Callable[[], int | None] | None = None, stream: TextIO | None = None, *,
                 doing: str = "normalising", unit: str = "rows") -> None:
        """`total` works out how many there will be; it is called only when a bar is shown (on a
        terminal), so a scheduled run reads its input once."""
        stream = stream or sys.stderr
        self._bar = None
        self._total = None
        if stream.isatty():
            self._bar = _bar(stream, doing, unit)
            self._total = total() if total is not None else None

    def __enter__(self) -> RowProgress:
        if self._bar is not None:
            self._bar.__enter__()
            self._task = self._bar.add_task("normalize", total=self._total)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)

    def update(self, done: int, total: int | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, **({"total": total} if total is not None else {}))


def _bar(stream: TextIO, doing: str, detail: str) -> Progress:
    """A live bar that disappears when done: what, the bar, done/total, `detail`, time left."""
    return Progress(TextColumn(doing), BarColumn(), MofNCompleteColumn(), TextColumn(detail), TimeRemainingColumn(),
                    console=Console(file=stream), transient=True)


class HumanFormatter(logging.Formatter):
    """An event as a person reads it: `bulkphone: run.stopping: reason=...`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "bulkphone_fields", {})
        message = fields.get("message")
        details = message if message else "; ".join(f"{name}={value}" for name, value in fields.items())
        return f"bulkphone: {record.getMessage()}: {details}" if details else f"bulkphone: {record.getMessage()}"


def use_human_logs(stream: TextIO) -> logging.Handler:
    """Show the library's errors as they happen (a run stopping, a second Ctrl-C); the rest is
    in the summary line and the reports."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(HumanFormatter())
    handler.setLevel(logging.ERROR)
    logger.addHandler(handler)
    return handler
