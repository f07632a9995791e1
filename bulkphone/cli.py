"""The command line: parse options, call the library, print, choose the exit code."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys
from pathlib import Path

import click

from . import pipeline, report
from .auth import AUTH_MODES, AuthSettings, token_provider
from .clouds import CLOUDS, check_graph_url, cloud_named
from .console import ProgressDisplay, RowProgress
from .errors import BulkphoneError, UnsafePlanError
from .executor import DEFAULT_CONCURRENCY, DEFAULT_WAIT_FOR_NEW_USERS, INTERRUPTED
from .ingest import count_rows, iter_input
from .export import EXPORT_COLUMNS
from .jobs import load_job
from .journal import Journal
from .logs import event, logger, use_json_logs
from .mapping import load_identity_map
from .files import refuse_overwriting
from .model import Mode
from .planfile import plan_checksum, read_plan, write_plan
from .planner import Plan
from .safety import DEFAULT_LIMITS, SafetyLimits
from .text import clip, printable
from .throttle import DEFAULT_WRITES_PER_SECOND

EXIT_OK = 0
EXIT_ROW_PROBLEMS = 1
EXIT_CONFIG = 2
EXIT_UNSAFE = 3
EXIT_CRASH = 4
EXIT_INTERRUPTED = 130
MESSAGE_LIMIT = 2000  # characters of one message; a file's 50 MB line is not echoed whole


class Exit(Exception):
    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        self.message = message


def _handled(command):
    """Turn every expected error into one clear line and an exit code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            code = command(*args, **kwargs)
        except click.ClickException:
            raise  # click prints usage errors itself, exit code 2
        except Exit as stop:
            if stop.message:
                _fail(stop.message, stop.code)
            sys.exit(stop.code)
        except UnsafePlanError as exc:
            _fail(_refusal(exc, _FLAGS, "bulkphone plan", "--force"), EXIT_UNSAFE)
        except BulkphoneError as exc:
            _fail(str(exc), EXIT_CONFIG)
        except KeyboardInterrupt:
            _say("bulkphone: interrupted before any change was made", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader of our output went away (`| head`): the work is done; say nothing more.
            sys.stdout = open(os.devnull, "w")
            sys.exit(EXIT_OK)
        except Exception as exc:
            if os.environ.get("BULKPHONE_DEBUG"):
                raise
            _say(
                f"bulkphone: unexpected error ({type(exc).__name__}: {clip(exc, MESSAGE_LIMIT)}). "
                "Set BULKPHONE_DEBUG=1 to see the details, and please report it.",
                err=True,
            )
            sys.exit(EXIT_CRASH)
        sys.exit(code or EXIT_OK)

    return wrapper


# How each safety limit is set, on the command line and in a job file.
_FLAGS = {"max_changes": "--max-changes", "max_update_share": "--max-update-percent", "max_delete_share": "--max-delete-percent"}
_JOB_KEYS = {"max_changes": "max_changes", "max_update_share": "max_update_percent", "max_delete_share": "max_delete_percent"}


def _refusal(exc: UnsafePlanError, settings: dict[str, str], review: str, force: str) -> str:
    limits = " or ".join(settings[name] for name in exc.exceeded)
    return (
        f"refusing to apply: the plan {'; and '.join(exc.problems)}. Nothing was written. "
        f"Fix: review the plan ({review}), then run again with {force} or a higher {limits}."
    )


def _fail(message: str, code: int) -> None:
    message = clip(message, MESSAGE_LIMIT)
    if _json_logs():
        event("run.error", logging.ERROR, message=message, exit_code=code)
    else:
        _say(f"bulkphone: {message}", err=True)
    sys.exit(code)


def _say(text: str, *, err: bool = False) -> None:
    """Print a line; text from files and from Graph never drives the terminal (control characters shown escaped)."""
    click.echo(printable(text), err=err)


def _json_logs() -> bool:
    context = click.get_current_context(silent=True)
    return bool(context and (context.find_root().obj or {}).get("json_logs"))


def _input_options(command, *, input_required: bool = True):
    command = click.option("--upn-domain", "upn_domains", multiple=True, metavar="OLD=NEW", help="Map users by UPN domain (tenant-to-tenant moves), e.g. fabrikam.com=contoso.com; repeatable. Users no rule or map file places are reported.")(command)
    command = click.option("--map", "map_file", type=click.Path(path_type=Path), help="CSV sourceUser,targetUser: the target tenant's user for each source user (wins over --upn-domain).")(command)
    command = click.option("--users", "users", type=click.Path(path_type=Path), help="CSV of users (user[,region|usageLocation]): default regions, and only these users are processed.")(command)
    command = click.option("--default-region", help="Two-letter region for numbers written without +, e.g. US.")(command)
    command = click.option("--report", "report_path", required=True, type=click.Path(path_type=Path), help="Where to write the report CSV.")(command)
    metavar = "INPUT" if input_required else "[INPUT]"
    command = click.argument("source", metavar=metavar, required=input_required, type=click.Path(path_type=Path))(command)
    return command


def _connection_options(command):
    options = [
        click.option("--cloud", type=click.Choice(list(CLOUDS)), default="global", show_default=True, help="Microsoft cloud: Graph root, sign-in authority and scope."),
        click.option("--graph-url", help="Graph root URL (overrides --cloud), e.g. a test server."),
        click.option("--auth", "auth_mode", type=click.Choice(AUTH_MODES), help="How to sign in (default: chosen from what is configured; see README)."),
        click.option("--tenant-id", envvar="BULKPHONE_TENANT_ID", help="Entra tenant id (or env BULKPHONE_TENANT_ID)."),
        click.option("--client-id", envvar="BULKPHONE_CLIENT_ID", help="App (client) id (or env BULKPHONE_CLIENT_ID)."),
        click.option("--certificate", type=click.Path(), help="PEM (private key + certificate) or PFX for --auth certificate; password in env BULKPHONE_CERTIFICATE_PASSWORD."),
        click.option("--send-x5c", is_flag=True, help="Send the certificate chain (subject name / issuer authentication)."),
        click.option("--managed-identity-client-id", help="Client id of a user-assigned managed identity (default: system-assigned)."),
        click.option("--federated-token-file", type=click.Path(), help="Federated token for --auth workload-identity (default: env AZURE_FEDERATED_TOKEN_FILE)."),
        click.option("--authority-url", help="Sign-in authority (overrides --cloud's), e.g. a private or test authority."),
        click.option("--allow-insecure-http", is_flag=True, help="Let --graph-url be plain http beyond this machine (a test server on a network you trust): the token then crosses the network unencrypted."),
        click.option("--max-writes-per-second", type=click.FloatRange(min=0.1), default=DEFAULT_WRITES_PER_SECOND, show_default=True, help="Cap on writes per second. The default is Graph's own ceiling (3,000 writes per 150 s per app per tenant); lower it when other jobs of the same app share the tenant."),
        click.option("--max-concurrency", type=click.IntRange(min=1, max=256), default=DEFAULT_CONCURRENCY, show_default=True, help="Users worked on at once."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _mode_option(command):
    return click.option("--mode", type=click.Choice([m.value for m in Mode]), default=Mode.UPSERT.value, show_default=True, help="upsert: create and update, blanks leave a type alone; create-only: never touch an existing number; sync: a blank cell deletes that type.")(command)


@click.group()
@click.version_option(package_name="bulkphone")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human", envvar="BULKPHONE_LOG_FORMAT",
              show_default=True, help="json: one JSON object per event on stderr (run start/end, throttling, failures, progress), for schedulers.")
@click.pass_context
def main(ctx: click.Context, log_format: str) -> None:
    """Set phone sign-in methods for many Entra ID users from a CSV or Excel file."""
    ctx.obj = {"json_logs": log_format == "json"}
    if log_format == "json":
        handler = use_json_logs(sys.stderr)
        ctx.call_on_close(lambda: logger.removeHandler(handler))


@main.command()
@_input_options
@_handled
def normalize(source, report_path, default_region, users, map_file, upn_domains) -> int:
    """Check and normalise the numbers in INPUT offline (no network, no credentials)."""
    refuse_overwriting([source, users, map_file], [report_path])
    identity = load_identity_map(map_file, upn_domains)
    with RowProgress(total=count_rows(source)) as progress:
        counts = pipeline.normalize_file(source, report_path, users=users, default_region=default_region,
                                         progress=progress.update, identity=identity)
    _say(f"normalize: {sum(counts.values())} values: " + _counts(counts) + f"; report: {report_path}")
    return EXIT_ROW_PROBLEMS if counts["invalid"] else EXIT_OK


@main.command()
@click.argument("source", metavar="[INPUT]", required=False, type=click.Path(path_type=Path))
@click.option("--probe-user", help="User whose phone methods to read as a test (default: the first user of INPUT).")
@click.option("--write/--read-only", default=True, show_default=True, help="Check for apply (write) or for plan (read).")
@_connection_options
@_handled
def check(source, probe_user, write, **options) -> int:
    """Sign in, check the token's permissions and probe one read, before any run."""
    connection = _connection(options)
    probe = probe_user or (_first_user(source) if source else None)
    result = pipeline.check(connection, write=write, probe_user=probe)
    _say(f"check: signed in ({result.kind} token); permissions: {', '.join(result.granted) or 'unknown'}")
    _say(f"check: Graph at {result.graph_url} answered the probe read")
    if result.probed_user and not any(result.probed_user in note for note in result.notes):
        _say(f"check: read {result.probed_user}'s phone methods: numbers are visible, not masked")
    for note in result.notes:
        _say(f"check: note: {note}")
    _say(f"check: ready to {'apply' if write else 'plan'}")
    return EXIT_OK


@main.command()
@_input_options
@_mode_option
@_connection_options
@_handled
def plan(source, report_path, default_region, users, map_file, upn_domains, mode, **options) -> int:
    """Read current methods and write the plan for INPUT. Never writes to Graph."""
    refuse_overwriting([source, users, map_file], _report_files(report_path))
    identity = load_identity_map(map_file, upn_domains)
    settings = _settings(source=source, users=users, default_region=default_region, mode=mode, map=map_file,
                         upn_domain=" ".join(upn_domains), **options)
    return _plan_run(_connection(options), source, report_path, users=users, default_region=default_region, mode=mode,
                     settings=settings, identity=identity)


def _plan_run(connection, source, report_path: Path, *, users, default_region, mode, settings, identity=None) -> int:
    event("run.start", command="plan", settings=settings)
    the_plan = pipeline.plan(
        source, connection=connection, users=users, default_region=default_region, mode=mode, check_first=True,
        identity=identity,
    )
    saved = write_plan(the_plan, report_path)
    rows, checksum = saved.rows, saved.checksum
    _write_summaries(rows, report_path, "plan", settings, {"reads": connection.counters.reads, "writes": 0}, checksum)
    _say(f"plan ({mode}): {len(rows)} rows: {_counts(the_plan.counts())}; {connection.counters.reads} reads, 0 writes; report: {report_path}")
    _say(f"plan checksum: {checksum} (apply exactly this plan: bulkphone apply --plan {report_path} --approve {checksum})")
    missing = {item.key: item.user for item in the_plan.items if item.awaits_user}
    if missing:
        example = next(iter(missing.values()))
        _say(f"plan: users Graph doesn't know (yet): {len(missing)}, e.g. {example}. apply waits for new users to appear "
             "(--wait-for-new-users); a mistyped UPN or object id is reported then")
    return EXIT_ROW_PROBLEMS if report.has_problems(rows) else EXIT_OK


@main.command()
@functools.partial(_input_options, input_required=False)
@_mode_option
@_connection_options
@click.option("--plan", "plan_path", type=click.Path(path_type=Path), help="Apply this reviewed plan (from bulkphone plan --report) exactly, instead of planning INPUT.")
@click.option("--approve", "approved", metavar="SHA", help="With --plan: the plan checksum the change board approved; any other plan is refused. Without it, only a plan signed with this machine's plan key is applied.")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path), help="Run journal (SQLite) for resuming after a crash; default: next to the report.")
@click.option("--max-update-percent", type=click.FloatRange(0, 100), default=DEFAULT_LIMITS.max_update_share * 100, show_default=True, help="Refuse a plan that updates more than this share of the existing numbers.")
@click.option("--max-delete-percent", type=click.FloatRange(0, 100), default=DEFAULT_LIMITS.max_delete_share * 100, show_default=True, help="Refuse a plan that deletes more than this share of the existing numbers.")
@click.option("--max-changes", type=click.IntRange(min=0), help="Refuse a plan with more changes than this.")
@click.option("--force", is_flag=True, help="Apply even when the plan is above the safety limits.")
@click.option("--changed-only", is_flag=True, help="Skip rows whose number equals the one the journal last verified (cheap scheduled re-runs; plan always reads live state).")
@click.option("--wait-for-new-users", type=click.FloatRange(min=0), default=DEFAULT_WAIT_FOR_NEW_USERS, show_default=True, metavar="SECONDS", help="How long to wait for users Graph didn't know when planned (new users take a minute or two to replicate); everyone else proceeds meanwhile.")
@_handled
def apply(source, report_path, default_region, users, map_file, upn_domains, mode, plan_path, approved, journal_path, max_update_percent, max_delete_percent, max_changes, force, changed_only, wait_for_new_users, **options) -> int:
    """Plan INPUT against current methods, then make the changes in Graph.

    With --plan, apply that reviewed plan instead: each user is read again first and skipped
    if it changed since the plan. If a previous apply of the same input (or plan) was killed,
    this resumes it: finished changes are not redone and changes in flight are read back first.
    """
    if (source is None) == (plan_path is None):
        raise click.UsageError("give INPUT to plan and apply it, or --plan PLAN.csv to apply a reviewed plan (not both)")
    if approved is not None and plan_path is None:
        raise click.UsageError("--approve goes with --plan PLAN.csv: it names the checksum of the plan that was approved")
    journal_path = journal_path or _journal_beside(report_path)
    refuse_overwriting([source, plan_path, users, map_file], _report_files(report_path) + _journal_files(journal_path))
    target = read_plan(plan_path, mode, approved=approved) if plan_path else source
    settings = _settings(source=source, plan=plan_path, users=users, default_region=default_region, mode=mode,
                         map=map_file, upn_domain=" ".join(upn_domains), force=force, changed_only=changed_only,
                         max_update_percent=max_update_percent, max_delete_percent=max_delete_percent,
                         max_changes=max_changes, wait_for_new_users=wait_for_new_users, **options)
    limits = None if force else SafetyLimits(max_update_percent / 100, max_delete_percent / 100, max_changes)
    identity = load_identity_map(map_file, upn_domains)
    return _apply_run(_connection(options), target, report_path, journal_path, users=users,
                      default_region=default_region, mode=mode, limits=limits, settings=settings, changed_only=changed_only,
                      identity=identity, wait_for_new_users=wait_for_new_users)


def _apply_run(connection, target, report_path: Path, journal_path: Path, *, users, default_region, mode, limits, settings,
               changed_only=False, identity=None, wait_for_new_users=DEFAULT_WAIT_FOR_NEW_USERS) -> int:
    event("run.start", command="apply", settings=settings)
    with Journal(journal_path, purpose="bulkphone apply") as journal, ProgressDisplay(json_events=_json_logs()) as display:
        result = _run_until_signalled(
            lambda stop: pipeline.apply_async(
                target,
                connection=connection,
                journal=journal,
                stop=stop,
                progress=display.update,
                users=users,
                default_region=default_region,
                mode=mode,
                check_first=True,
                limits=limits,
                verify_unchanged=True,
                changed_only=changed_only,
                identity=identity,
                wait_for_new_users=wait_for_new_users,
            )
        )
    rows = report.result_rows(result)
    report.write_csv(rows, report_path)
    checksum = plan_checksum(result.plan) if isinstance(target, Plan) else ""
    _write_summaries(rows, report_path, "apply", settings, result.stats, checksum)
    resumed = f"resumed a killed run ({result.stats['resumed']} changes already done); " if result.stats["resumed"] else ""
    _say(f"apply ({mode}): {len(rows)} rows: {_counts(report.summarize(rows)['status'])}; {resumed}{_stats(result.stats)}; report: {report_path}")
    if result.stopped == INTERRUPTED:
        raise Exit(EXIT_INTERRUPTED, f"interrupted: {report_path} lists what was done; run the same apply again to resume")
    if result.stopped:
        raise Exit(EXIT_CONFIG, f"run stopped: {result.stopped}")
    return EXIT_ROW_PROBLEMS if report.has_problems(rows) else EXIT_OK


@main.command()
@click.option("--report", "report_path", required=True, type=click.Path(path_type=Path), help="Where to write the export CSV (valid input for plan and apply).")
@click.option("--users", type=click.Path(path_type=Path), help="CSV of the users to export (a user column: UPNs or object ids).")
@click.option("--all", "all_users", is_flag=True, help="Export every user of the tenant (needs User.Read.All too).")
@click.option("--include-empty", is_flag=True, help="Also write users who have no phone methods (empty rows).")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path), help="Journal (SQLite) that lets a killed export resume; default: next to the report.")
@_connection_options
@_handled
def export(report_path, users, all_users, include_empty, journal_path, **options) -> int:
    """Write the current phone methods of the listed users, or of every user, as a CSV that plan and
    apply take as it is (e.g. to carry them to another tenant). Never writes to Graph."""
    if (users is None) == (not all_users):
        raise click.UsageError("give --users USERS.csv to export those users, or --all for every user of the tenant")
    journal_path = journal_path or _journal_beside(report_path)
    refuse_overwriting([users], [report_path, *_journal_files(journal_path)])
    settings = _settings(users=users, all=all_users, include_empty=include_empty, **options)
    connection = _connection(options)
    event("run.start", command="export", settings=settings)
    return _export_run(connection, report_path, journal_path, users=users, include_empty=include_empty)


def _export_run(connection, report_path: Path, journal_path: Path, *, users, include_empty: bool) -> int:
    with Journal(journal_path, purpose="bulkphone export") as journal, RowProgress(doing="exporting", unit="users") as progress:
        result = _run_until_signalled(
            lambda stop: pipeline.export_async(connection, journal=journal, users=users, progress=progress.update,
                                               stop=stop, check_first=True)
        )
    rows = result.exported(include_empty)
    report.write_csv([row.csv_row() for row in rows], report_path, EXPORT_COLUMNS)
    counts = result.counts()
    resumed = f"resumed a killed export ({result.resumed_users} users already read); " if result.resumed_users else ""
    left_out = "" if include_empty else f", {counts['without phone methods']} without phone methods left out"
    _say(
        f"export: {counts['listed']} users, {counts['with numbers']} with numbers{left_out}, "
        f"{counts['not exported']} not fully exported (see notExported and note); {resumed}"
        f"{connection.counters.reads} reads in {connection.counters.batches} batches; report: {report_path}"
    )
    event("run.end", command="export", report=str(report_path), **{k.replace(" ", "_"): v for k, v in counts.items()})
    if result.stopped:
        raise Exit(EXIT_INTERRUPTED, f"interrupted: run the same export again to resume ({report_path} holds what was read)")
    return EXIT_ROW_PROBLEMS if counts["not exported"] else EXIT_OK


@main.command()
@click.argument("job_path", metavar="JOB.toml", type=click.Path(path_type=Path))
@click.option("--apply", "do_apply", is_flag=True, help="Apply the changes (default: a dry run that writes the plan).")
@click.option("--force", is_flag=True, help="Apply even when the plan is above the job's safety limits.")
@click.option("--changed-only", is_flag=True, help="With --apply: skip rows unchanged since the last verified run.")
@_handled
def run(job_path, do_apply, force, changed_only) -> int:
    """Run a job file: a dry run that writes the plan, or with --apply, the changes.

    Reports go to the job's report folder: plan.csv (dry run) or results.csv (apply), each with
    its .summary.json and .html; the journal that lets a killed apply resume sits beside them.
    """
    job = load_job(job_path)
    results = job.report_folder / "results.csv"
    inputs = [job_path, job.users, job.map_file] + ([] if job.source is not None else [job.file])
    outputs = _report_files(job.report_folder / "plan.csv") + _report_files(results) + _journal_files(_journal_beside(results))
    if job.source is not None:
        outputs += [job.file, *_journal_files(_journal_beside(job.file))]
    refuse_overwriting(inputs, outputs)
    identity = load_identity_map(job.map_file, job.upn_domains)
    connection = _connect(job.auth, job.cloud, job.graph_url, job.max_writes_per_second, job.max_concurrency,
                          allow_insecure_http=job.allow_insecure_http)
    settings = _settings(job=job.path, name=job.name, source=job.file, users=job.users, mode=job.mode,
                         default_region=job.default_region, cloud=job.cloud, graph_url=job.graph_url,
                         auth=job.auth.mode, apply=do_apply, force=force, changed_only=changed_only,
                         migrate_from=job.source and (job.source.graph_url or job.source.cloud),
                         map=job.map_file, upn_domain=" ".join(job.upn_domains))
    if job.source is not None:
        # A migration: export the source tenant first; its CSV is this run's input.
        source = job.source
        reader = _connect(source.auth, source.cloud, source.graph_url, job.max_writes_per_second, job.max_concurrency,
                          allow_insecure_http=source.allow_insecure_http)
        event("run.start", command="export", settings=settings)
        _export_run(reader, job.file, _journal_beside(job.file), users=source.users, include_empty=source.include_empty)
        # Scheduled re-runs during the migration window write only what changed in the source.
        changed_only = True
    options = {"users": job.users, "default_region": job.default_region, "mode": job.mode, "settings": settings,
               "identity": identity}
    if not do_apply:
        return _plan_run(connection, job.file, job.report_folder / "plan.csv", **options)
    limits = None if force else SafetyLimits(job.max_update_percent / 100, job.max_delete_percent / 100, job.max_changes)
    try:
        return _apply_run(connection, job.file, results, _journal_beside(results),
                          limits=limits, changed_only=changed_only, wait_for_new_users=job.wait_for_new_users, **options)
    except UnsafePlanError as exc:  # in the job file's words: its [limits] keys, not the flags
        keys = {name: f"{key} in [limits] of {job.path}" for name, key in _JOB_KEYS.items()}
        raise Exit(EXIT_UNSAFE, _refusal(exc, keys, f"bulkphone run {job.path}", "--force")) from None


def _journal_beside(report_path: Path) -> Path:
    """The default journal of a run: next to its report (results.csv -> results.csv.journal.sqlite)."""
    return report_path.with_name(report_path.name + ".journal.sqlite")


def _report_files(report_path: Path) -> list[Path]:
    """What a plan or apply run writes for people: the CSV, its summary and its HTML page."""
    return [report_path, report_path.with_suffix(".summary.json"), report_path.with_suffix(".html")]


def _journal_files(journal_path: Path) -> list[Path]:
    """The journal and the files SQLite and the run lock keep beside it."""
    return [journal_path, *(journal_path.with_name(journal_path.name + end) for end in ("-wal", "-shm", ".lock"))]


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("bulkphone-demo"), show_default=True, help="Folder for the demo's reports.")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Folder with the demo's input files (default: the repository's sample_data).")
@_handled
def demo(out, data) -> int:
    """Plan and apply sample_data against the embedded simulated tenant (no account, no network)."""
    from .demo import run_demo

    summary = run_demo(out, data)
    for line in summary.lines:
        _say(line)
    return EXIT_OK


def _connection(options: dict):
    settings = AuthSettings(
        mode=options.pop("auth_mode"),
        tenant_id=options.pop("tenant_id"),
        client_id=options.pop("client_id"),
        certificate=options.pop("certificate"),
        send_x5c=options.pop("send_x5c"),
        managed_identity_client_id=options.pop("managed_identity_client_id"),
        federated_token_file=options.pop("federated_token_file"),
        authority_url=options.pop("authority_url"),
    )
    return _connect(settings, options.pop("cloud"), options.pop("graph_url"),
                    options.pop("max_writes_per_second"), options.pop("max_concurrency"),
                    allow_insecure_http=options.pop("allow_insecure_http"))


def _connect(auth: AuthSettings, cloud_name: str, graph_url, max_writes_per_second, max_concurrency, *,
             allow_insecure_http: bool = False):
    cloud = cloud_named(cloud_name)
    if cloud.name == "china":
        _say(
            "bulkphone: note: older Microsoft pages list the phone methods API as unsupported in the China "
            "(21Vianet) cloud; if Graph answers that it is unavailable there, that is why.",
            err=True,
        )
    # Before sign-in: msal may already reach the authority when the token provider is made.
    check_graph_url(graph_url or cloud.graph_url, allow_insecure_http=allow_insecure_http)
    token = token_provider(auth, cloud, prompt=lambda message: _say(message, err=True))
    return pipeline.connect(
        token,
        graph_url=graph_url or cloud.graph_url,
        max_writes_per_second=max_writes_per_second,
        max_concurrency=max_concurrency,
        allow_insecure_http=allow_insecure_http,
    )


def _settings(**options) -> dict:
    """What a run was asked to do, for its summary; secrets never reach options."""
    return {name.replace("_", "-"): str(value) for name, value in options.items() if value not in (None, False, "")}


def _write_summaries(rows: list[dict], report_path: Path, command: str, settings: dict, stats: dict,
                     plan_checksum: str = "") -> None:
    data = report.summary(rows, command=command, settings=settings, stats=stats, plan_checksum=plan_checksum)
    report.write_summary(data, report_path.with_suffix(".summary.json"))
    report.write_html(data, report_path.with_suffix(".html"))
    event("run.end", command=command, report=str(report_path), rows=data["rows"], actions=data["actions"],
          statuses=data["statuses"], errors=sum(data["errors"].values()), warnings=sum(data["warnings"].values()), stats=stats)


def _first_user(source: Path) -> str | None:
    """The input's first usable user, to probe; reads the first rows only."""
    for frame in iter_input(source, chunk_rows=1000):
        users = frame.loc[(frame["error"] == "") & (frame["user"] != ""), "user"]
        if len(users):
            return users.iloc[0]
    return None


def _run_until_signalled(start):
    """Run start(stop) with Ctrl-C and SIGTERM setting `stop`: in-flight work ends, the report is written.

    A second signal quits at once; the journal still lets the next apply resume.
    """

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                os._exit(EXIT_INTERRUPTED)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        try:
            return await start(stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    return asyncio.run(main())


def _counts(counts) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items() if count) or "nothing"


def _stats(stats: dict) -> str:
    return (
        f"{stats['writes']} writes, {stats['reads']} reads in {stats['batches']} batches, {stats['retries']} retries, "
        f"{stats['throttled']} throttled, {stats['reconciled']} reconciled, {stats['seconds']:.1f}s"
    )
