"""Whole runs, as the commands do them: make sure no input is overwritten, plan, apply or
export, write the reports (CSV, summary.json, HTML page), and return what happened.

A job file is one call, `run_job`: a migration job exports its source tenant first. The CLI
only prints what these return and picks the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import os
import signal
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, ContextManager, Iterator, Mapping, Sequence, TypeVar

import pandas as pd

from . import _report as report
from ._auth import decode_claims
from ._cells import CHUNK_ROWS, Users, cell_fields, input_defaults
from ._directory import FromDirectory
from ._errors import BulkphoneError
from ._executor import DEFAULT_WAIT_FOR_NEW_USERS, INTERRUPTED, Progress, RunResult
from ._audit import AUDIT_COLUMNS, AuditResult
from ._export import EXPORT_COLUMNS, ExportResult
from ._files import keep_earlier, refuse_overwriting
from ._ingest import iter_input
from ._jobs import Job, load_job
from ._journal import Journal
from ._logs import event
from ._mapping import IdentityMap, load_identity_map
from ._model import Category, Mode
from ._normalize import Normalizer
from ._parallel import map_in_order
from ._pipeline import Connection, apply_async, audit_async, connect_with, export_async, plan_async, run_sync
from ._planfile import plan_checksum, read_plan, write_plan
from ._planner import Plan
from ._safety import SafetyLimits

__all__ = [
    "ApplyRun",
    "AuditRun",
    "ExportRun",
    "JobRun",
    "NormalizeRun",
    "PlanRun",
    "apply_to_report",
    "audit_to_report",
    "export_to_report",
    "job_words",
    "journal_beside",
    "normalize_file",
    "plan_to_report",
    "report_files",
    "run_context",
    "run_job",
    "run_job_async",
    "run_stoppable",
    "write_reports",
]

T = TypeVar("T")
SECOND_SIGNAL_EXIT = 130


@dataclass
class NormalizeRun:
    counts: Counter  # values by status: ok, blank, invalid, skipped
    report: Path
    earlier: Path | None = None  # where an earlier report of the same name was kept


@dataclass
class PlanRun:
    plan: Plan
    report: Path
    rows: list[dict]
    summary: dict
    checksum: str
    reads: int
    earlier: Path | None = None

    @property
    def needs_a_person(self) -> bool:
        """A row is to fix (the CLI's exit code 1)."""
        return report.has_problems(self.rows)

    @property
    def unknown_users(self) -> list[str]:
        """Users Graph didn't know when planned (apply waits for them), each once."""
        return list({item.key: item.user for item in self.plan.items if item.awaits_user}.values())


@dataclass
class ApplyRun:
    result: RunResult
    report: Path
    rows: list[dict]
    summary: dict
    checksum: str  # of the plan applied (a reviewed one, or the one made from the input in this run)
    earlier: Path | None = None

    @property
    def needs_a_person(self) -> bool:
        return report.has_problems(self.rows)

    @property
    def interrupted(self) -> bool:
        return self.result.stopped == INTERRUPTED


@dataclass
class AuditRun:
    result: AuditResult
    report: Path
    summary: dict
    reads: int
    earlier: Path | None = None
    proposed: Path | None = None  # the fixes, as a plan/apply input (with how many)
    needs_passkey: Path | None = None

    @property
    def unread(self) -> list[str]:
        """Users that couldn't be read (the CLI's exit code 1)."""
        return [row.user for row in self.result.rows if row.category is Category.UNREAD]

    @property
    def interrupted(self) -> bool:
        return self.result.stopped


@dataclass
class ExportRun:
    result: ExportResult
    report: Path
    counts: dict[str, int]
    reads: int
    batches: int
    batched_reads: int
    earlier: Path | None = None

    @property
    def needs_a_person(self) -> bool:
        return bool(self.counts["not exported"])


@dataclass
class JobRun:
    job: Job
    export: ExportRun | None  # a migration's export of its source tenant
    run: PlanRun | ApplyRun | None  # None when the export was interrupted


def report_files(report_path: Path) -> list[Path]:
    """What a plan or apply run writes for people: the CSV, its summary and its HTML page."""
    return [report_path, report_path.with_suffix(".summary.json"), report_path.with_suffix(".html")]


def journal_beside(report_path: Path) -> Path:
    """The default journal of a run: next to its report (results.csv -> results.csv.journal.sqlite)."""
    return report_path.with_name(report_path.name + ".journal.sqlite")


def _journal_files(journal_path: Path) -> list[Path]:
    """The journal and the files SQLite and the run lock keep beside it."""
    return [journal_path, *(journal_path.with_name(journal_path.name + end) for end in ("-wal", "-shm", ".lock"))]


def _inputs(source, users: Users, identity: IdentityMap | None) -> list:
    files = [source if isinstance(source, (str, Path)) else None, users if isinstance(users, (str, Path)) else None]
    return files + ([identity.source] if identity is not None and identity.source else [])


def write_reports(rows: list[dict], report_path: Path, *, command: str, settings: Mapping[str, object] | None = None,
                  stats: dict | None = None, checksum: str = "", run: dict | None = None) -> dict:
    """The summary.json and the HTML page beside a written report CSV; returns the summary.
    `run` says when and where it ran (see run_context)."""
    data = report.summary(rows, command=command, settings=describe_settings(settings or {}), stats=stats,
                          plan_checksum=checksum, run=run)
    report.write_summary(data, report_path.with_suffix(".summary.json"))
    report.write_html(data, report_path.with_suffix(".html"))
    event("run.end", command=command, report=str(report_path), rows=data["rows"], actions=data["actions"],
          statuses=data["statuses"], errors=sum(data["errors"].values()), warnings=sum(data["warnings"].values()),
          stats=stats or {})
    return data


def run_context(connection: Connection, started: datetime.datetime, rows: list[dict]) -> dict[str, str]:
    """When and where a run ran, for people reading its report: start time in UTC and local
    time, the Graph it used, the tenant id the token names (when it can be read) and the
    domain most of its users are in."""
    try:
        claims = decode_claims(connection.token.token())
    except BulkphoneError:
        claims = {}
    domains = Counter(user.rpartition("@")[2].lower() for user in (row["user"] for row in rows) if "@" in user)
    return {
        "started_utc": started.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "started_local": started.astimezone().strftime("%Y-%m-%d %H:%M:%S %z"),
        "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "graph_url": connection.graph_url,
        "tenant_id": str(claims.get("tid", "")),
        "users_domain": domains.most_common(1)[0][0] if domains else "",
    }


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def describe_settings(settings: Mapping[str, object]) -> dict[str, str]:
    """What a run was asked to do, for its summary: the settings given, as text (secrets never reach them)."""
    return {name.replace("_", "-"): str(value) for name, value in settings.items() if value not in (None, False, "", ())}


def normalize_file(
    source: str | Path,
    report_path: str | Path,
    *,
    users: Users = None,
    default_region: str | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    processes: int | None = None,
    identity: IdentityMap | None = None,
    sheet: str | None = None,
) -> NormalizeRun:
    """Normalise a file of any size into the normalize report, a chunk at a time, on every core.

    Returns the count of values by status. The report may not be the input (or the users file);
    an earlier report of that name is kept under a timestamped name."""
    report_path = Path(report_path)
    refuse_overwriting([source, users if isinstance(users, (str, Path)) else None], [report_path])
    known_users, region_default = input_defaults(users, default_region)
    earlier = keep_earlier(report_path)
    statuses: Counter = Counter()
    work = functools.partial(_normalize_chunk, known_users, region_default)
    with report.new_report(report_path, report.NORMALIZE_COLUMNS) as handle:
        for rows_done, text, counts in map_in_order(work, iter_input(source, chunk_rows, identity, sheet), processes=processes):
            handle.write(text)
            statuses.update(counts)
            if progress is not None:
                progress(rows_done)
    return NormalizeRun(statuses, report_path, earlier)


def _normalize_chunk(known_users, region_default: str, frame: pd.DataFrame) -> tuple[int, str, Counter]:
    """One chunk's report text and status counts (runs in a worker process)."""
    rows = [report.normalize_row(*fields) for fields in cell_fields(frame, known_users, region_default, Normalizer())]
    last_row = int(frame["row"].iloc[-1]) - 1 if len(frame) else 0
    status = report.NORMALIZE_COLUMNS.index("status")
    return last_row, report.csv_text(rows), Counter(row[status] for row in rows)


async def plan_to_report(
    source: str | Path | FromDirectory,
    report_path: str | Path,
    *,
    connection: Connection,
    users: Users = None,
    default_region: str | None = None,
    mode: Mode | str = Mode.UPSERT,
    identity: IdentityMap | None = None,
    sheet: str | None = None,
    groups: Sequence[str] = (),
    only_unregistered: bool = False,
    settings: Mapping[str, object] | None = None,
) -> PlanRun:
    """Plan `source` (the sign-in checked first) and write the plan CSV, its summary and HTML page.
    Never writes to Graph. `groups`, `only_unregistered`: see bulkphone.plan."""
    report_path = Path(report_path)
    refuse_overwriting(_inputs(source, users, identity), report_files(report_path))
    started = _now()
    event("run.start", command="plan", settings=describe_settings(settings or {}))
    the_plan = await plan_async(source, connection=connection, users=users, default_region=default_region, mode=mode,
                                check_first=True, identity=identity, sheet=sheet, groups=groups,
                                only_unregistered=only_unregistered)
    earlier = keep_earlier(*report_files(report_path))
    saved = write_plan(the_plan, report_path)
    reads = connection.counters.reads
    summary = write_reports(saved.rows, report_path, command="plan", settings=settings,
                            stats={"reads": reads, "writes": 0}, checksum=saved.checksum,
                            run=run_context(connection, started, saved.rows))
    return PlanRun(the_plan, report_path, saved.rows, summary, saved.checksum, reads, earlier)


async def apply_to_report(
    target: Plan | str | Path | FromDirectory | None,
    report_path: str | Path,
    *,
    connection: Connection,
    plan_file: str | Path | None = None,
    approved: str | None = None,
    journal_path: str | Path | None = None,
    users: Users = None,
    default_region: str | None = None,
    mode: Mode | str | None = None,
    identity: IdentityMap | None = None,
    sheet: str | None = None,
    groups: Sequence[str] = (),
    only_unregistered: bool = False,
    limits: SafetyLimits | None = None,
    changed_only: bool = False,
    wait_for_new_users: float = DEFAULT_WAIT_FOR_NEW_USERS,
    stop: asyncio.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    settings: Mapping[str, object] | None = None,
) -> ApplyRun:
    """Apply a plan, or plan the input file `target` and apply it, with the run journal
    (default: beside the report) that resumes a killed run; write the results CSV, summary and
    HTML page.

    With `plan_file` (and `target` None), apply that reviewed plan CSV, approved by its checksum
    `approved` (see planfile.read_plan). A reviewed plan is applied only to users unchanged
    since it was made. `limits` refuse a plan that changes too much (UnsafePlanError, nothing
    written)."""
    report_path = Path(report_path)
    journal_path = Path(journal_path) if journal_path is not None else journal_beside(report_path)
    source = None if isinstance(target, Plan) else target
    refuse_overwriting(_inputs(source, users, identity) + [plan_file], report_files(report_path) + _journal_files(journal_path))
    if plan_file is not None:
        target, mode = read_plan(plan_file, mode or Mode.UPSERT, approved=approved), None
    started = _now()
    event("run.start", command="apply", settings=describe_settings(settings or {}))
    with Journal(journal_path, purpose="bulkphone apply") as journal:
        result = await apply_async(
            target, connection=connection, journal=journal, stop=stop, progress=progress, users=users,
            default_region=default_region, mode=mode, check_first=True, limits=limits, verify_unchanged=True,
            changed_only=changed_only, identity=identity, sheet=sheet, wait_for_new_users=wait_for_new_users,
            groups=groups, only_unregistered=only_unregistered,
        )
    rows = report.result_rows(result)
    earlier = keep_earlier(*report_files(report_path))
    report.write_csv(rows, report_path)
    checksum = plan_checksum(result.plan)
    summary = write_reports(rows, report_path, command="apply", settings=settings, stats=result.stats, checksum=checksum,
                            run=run_context(connection, started, rows))
    return ApplyRun(result, report_path, rows, summary, checksum, earlier)


async def export_to_report(
    report_path: str | Path,
    *,
    connection: Connection,
    users: str | Path | list[str] | None = None,
    groups: Sequence[str] = (),
    include_empty: bool = False,
    journal_path: str | Path | None = None,
    stop: asyncio.Event | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    settings: Mapping[str, object] | None = None,
) -> ExportRun:
    """Export the current phone methods of `users` (a users file or list), of the members of
    `groups` (narrowed to `users` when both are given), or of every user of the tenant (neither),
    to a CSV that plan and apply take as it is. Never writes to Graph; a killed export resumes
    from its journal (default: beside the report)."""
    report_path = Path(report_path)
    journal_path = Path(journal_path) if journal_path is not None else journal_beside(report_path)
    refuse_overwriting([users if isinstance(users, (str, Path)) else None], [report_path, *_journal_files(journal_path)])
    event("run.start", command="export", settings=describe_settings(settings or {}))
    with Journal(journal_path, purpose="bulkphone export") as journal:
        result = await export_async(connection, journal=journal, users=users, progress=progress, stop=stop,
                                    check_first=True, groups=groups)
    earlier = keep_earlier(report_path)
    report.write_csv([row.csv_row() for row in result.exported(include_empty)], report_path, EXPORT_COLUMNS)
    counts = result.counts()
    event("run.end", command="export", report=str(report_path), **{k.replace(" ", "_"): v for k, v in counts.items()})
    counters = connection.counters
    return ExportRun(result, report_path, counts, counters.reads, counters.batches, counters.batched_reads, earlier)


PROPOSE_COLUMNS = ["user", "defaultMethod"]
NEEDS_PASSKEY_COLUMNS = ["user", "objectId", "category", "isAdmin", "isGuest", "phoneMethods", "blockedFrom"]


async def audit_to_report(
    report_path: str | Path,
    *,
    connection: Connection,
    users: str | Path | list[str] | None = None,
    groups: Sequence[str] = (),
    propose: str | Path | None = None,
    needs_passkey: str | Path | None = None,
    journal_path: str | Path | None = None,
    stop: asyncio.Event | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    settings: Mapping[str, object] | None = None,
) -> AuditRun:
    """Audit `users` (a users file or list), the members of `groups`, or the whole tenant, and
    write the audit CSV, its summary and HTML page; with `propose`, the fixes bulkphone can make
    (a plan/apply input: each phone-default user's defaultMethod); with `needs_passkey`, the
    users it can't fix (phone-only, and no-mfa) for a registration campaign. Reads only; a
    killed audit resumes from its journal (default: beside the report)."""
    report_path = Path(report_path)
    journal_path = Path(journal_path) if journal_path is not None else journal_beside(report_path)
    extra = [Path(path) for path in (propose, needs_passkey) if path is not None]
    refuse_overwriting([users if isinstance(users, (str, Path)) else None],
                       report_files(report_path) + _journal_files(journal_path) + extra)
    started = _now()
    event("run.start", command="audit", settings=describe_settings(settings or {}))
    with Journal(journal_path, purpose="bulkphone audit") as journal:
        result = await audit_async(connection, journal=journal, users=users, groups=groups, progress=progress,
                                   stop=stop, check_first=True)
    rows = [row.csv_row() for row in result.rows]
    earlier = keep_earlier(*report_files(report_path))
    report.write_csv(rows, report_path, AUDIT_COLUMNS)
    counters = connection.counters
    stats = {"reads": counters.reads, "batches": counters.batches, "throttled": counters.throttled,
             "retries": counters.retries, "seconds": round((_now() - started).total_seconds(), 1)}
    summary = report.audit_summary(rows, settings=describe_settings(settings or {}), source=result.source,
                                   fallback_reason=result.fallback_reason, admins_unknown=result.admins_unknown,
                                   run=run_context(connection, started, rows),
                                   stats=stats)
    report.write_summary(summary, report_path.with_suffix(".summary.json"))
    report.write_audit_html(summary, report_path.with_suffix(".html"))
    if propose is not None:
        keep_earlier(Path(propose))
        report.write_csv([{"user": row.user, "defaultMethod": row.proposed_default} for row in result.rows
                          if row.proposed_default], propose, PROPOSE_COLUMNS)
    if needs_passkey is not None:
        keep_earlier(Path(needs_passkey))
        report.write_csv([line for line in rows if line["category"] in (Category.PHONE_ONLY.value, Category.NO_MFA.value)],
                         needs_passkey, NEEDS_PASSKEY_COLUMNS)
    event("run.end", command="audit", report=str(report_path), users=len(rows), categories=summary["categories"],
          source=result.source, stats=stats)
    return AuditRun(result, report_path, summary, counters.reads, earlier,
                    Path(propose) if propose is not None else None, Path(needs_passkey) if needs_passkey is not None else None)


def job_words(job: Job, table: str = "connection") -> dict[str, str]:
    """How a job file sets each setting a message may name (see BulkphoneError.in_words)."""
    where = f"of {job.path}"
    words = {name: f"{name} in [{table}] {where}" for name in (
        "tenant_id", "client_id", "certificate", "federated_token_file", "graph_url", "cloud", "allow_insecure_http")}
    words["auth"] = f"auth in [{table}] {where}"
    words.update(
        users=f"users in [{'source' if table == 'source' else 'input'}] {where}",
        groups=f"group in [input] {where}",
        everyone=f"all_users in [input] {where}",
        directory_fields=f"directory_fields in [input] {where}",
        mode=f"mode in [input] {where}",
        default_region=f"default_region in [input] {where}",
        sheet=f"sheet in [input] {where}",
        upn_domains=f"upn_domains in [mapping] {where}",
        journal=f"the report folder ([report] folder {where})",
        changed_only="--changed-only",
        force="--force",
        max_changes=f"max_changes in [limits] {where}",
        max_update_share=f"max_update_percent in [limits] {where}",
        max_delete_share=f"max_delete_percent in [limits] {where}",
    )
    return words


@contextlib.contextmanager
def _in_job_words(job: Job, table: str) -> Iterator[None]:
    try:
        yield
    except BulkphoneError as exc:
        if not exc.settings:
            raise
        raise exc.reworded(job_words(job, table)) from exc.__cause__


def _no_display(stage: str) -> ContextManager[Any]:
    return contextlib.nullcontext(None)


async def run_job_async(
    job: Job | str | Path,
    *,
    apply: bool = False,
    force: bool = False,
    changed_only: bool = False,
    stop: asyncio.Event | None = None,
    displays: Callable[[str], ContextManager[Any]] = _no_display,
    prompt: Callable[[str], None] | None = None,
) -> JobRun:
    """Run a job file: a dry run that writes plan.csv, or with `apply` the changes (results.csv),
    in the job's report folder. A migration job exports its source tenant first (to the job's
    input file) and then writes only what changed since its last verified run.

    `displays(stage)` ("export" or "apply") gives a context manager whose value has an
    `update` method fed that stage's progress (or is None). Errors name the job's keys."""
    job = job if isinstance(job, Job) else load_job(job)
    plan_csv, results = job.report_folder / "plan.csv", job.report_folder / "results.csv"
    inputs = [job.path, job.users, job.map_file] + ([] if job.source is not None else [job.file])  # file: None from the directory
    outputs = report_files(plan_csv) + report_files(results) + _journal_files(journal_beside(results))
    if job.source is not None:
        outputs += [job.file, *_journal_files(journal_beside(job.file))]
    refuse_overwriting(inputs, outputs)
    with _in_job_words(job, "mapping"):
        identity = load_identity_map(job.map_file, job.upn_domains)
    with _in_job_words(job, "connection"):
        connection = connect_with(job.auth, job.cloud, graph_url=job.graph_url,
                                  max_writes_per_second=job.max_writes_per_second,
                                  max_concurrency=job.max_concurrency, allow_insecure_http=job.allow_insecure_http,
                                  prompt=prompt)
    settings = {"job": job.path, "name": job.name, "source": job.file, "from_directory": job.from_directory and job.from_directory.describe(),
                "group": " | ".join(job.groups), "only_unregistered": job.only_unregistered,
                "sheet": job.sheet, "users": job.users, "mode": job.mode,
                "default_region": job.default_region, "cloud": job.cloud, "graph_url": job.graph_url,
                "auth": job.auth.mode, "apply": apply, "force": force, "changed_only": changed_only,
                "migrate_from": job.source and (job.source.graph_url or job.source.cloud), "map": job.map_file,
                "upn_domain": " ".join(job.upn_domains)}
    exported = None
    if job.source is not None:
        source = job.source
        with _in_job_words(job, "source"):
            reader = connect_with(source.auth, source.cloud, graph_url=source.graph_url,
                                  max_writes_per_second=job.max_writes_per_second,
                                  max_concurrency=job.max_concurrency,
                                  allow_insecure_http=source.allow_insecure_http, prompt=prompt)
            with displays("export") as display:
                exported = await export_to_report(job.file, connection=reader, users=source.users,
                                                  include_empty=source.include_empty, stop=stop,
                                                  progress=display.update if display else None, settings=settings)
        if exported.result.stopped:
            return JobRun(job, exported, None)
        # Scheduled re-runs during the migration window write only what changed in the source.
        changed_only = True
    options = {"connection": connection, "users": job.users, "default_region": job.default_region, "mode": job.mode,
               "identity": identity, "sheet": job.sheet, "groups": job.groups, "only_unregistered": job.only_unregistered,
               "settings": settings}
    with _in_job_words(job, "connection"):
        if not apply:
            return JobRun(job, exported, await plan_to_report(job.input, plan_csv, **options))
        limits = None if force else SafetyLimits(job.max_update_percent / 100, job.max_delete_percent / 100,
                                                 job.max_changes)
        with displays("apply") as display:
            applied = await apply_to_report(job.input, results, limits=limits, changed_only=changed_only,
                                            wait_for_new_users=job.wait_for_new_users, stop=stop,
                                            progress=display.update if display else None, **options)
        return JobRun(job, exported, applied)


def run_job(
    job: Job | str | Path,
    *,
    apply: bool = False,
    force: bool = False,
    changed_only: bool = False,
    stop: asyncio.Event | None = None,
    prompt: Callable[[str], None] | None = None,
) -> JobRun:
    """Run a job file (see run_job_async), e.g. `bulkphone.run_job("jobs/onboarding-import.toml")`."""
    return run_sync(run_job_async(job, apply=apply, force=force, changed_only=changed_only, stop=stop, prompt=prompt))


def run_stoppable(start: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run `start(stop)` in a new event loop, with Ctrl-C and SIGTERM setting `stop`: work in
    flight ends and the reports are written. A second signal quits at once (the journal still
    lets the next run resume)."""

    async def main() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                event("run.abandoned", logging.ERROR,
                      message="second interrupt: quitting at once; run the same command again to resume")
                logging.shutdown()
                os._exit(SECOND_SIGNAL_EXIT)
            stop.set()

        with _signals_set(loop, on_signal):
            return await start(stop)

    return asyncio.run(main())


@contextlib.contextmanager
def _signals_set(loop: asyncio.AbstractEventLoop, on_signal: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM call `on_signal` in the loop, for the time of the run. Windows has no
    loop signal handlers, so there the handler hands over to the loop itself; a thread other
    than the main one can't catch signals at all."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [signal.SIGINT, signal.SIGTERM]
    try:
        for signum in wanted:
            loop.add_signal_handler(signum, on_signal)
    except NotImplementedError:
        previous = {signum: signal.signal(signum, lambda *_: loop.call_soon_threadsafe(on_signal)) for signum in wanted}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return
    try:
        yield
    finally:
        for signum in wanted:
            loop.remove_signal_handler(signum)
