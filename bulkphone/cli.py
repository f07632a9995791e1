"""The command line: parse options, call the library, print, choose the exit code."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click

from . import _pipeline as pipeline, _runs as runs
from ._auth import AUTH_MODES, AuthSettings
from ._clouds import CLOUDS
from ._console import ProgressDisplay, RowProgress, use_human_logs
from ._directory import DEFAULT_FIELDS, FromDirectory, directory_fields
from ._errors import BulkphoneError, UnsafePlanError
from ._executor import DEFAULT_CONCURRENCY, DEFAULT_WAIT_FOR_NEW_USERS
from ._ingest import count_rows, first_user
from ._jobs import load_job
from ._logs import event, logger, use_json_logs
from ._mapping import load_identity_map
from ._files import refuse_overwriting
from ._model import Mode
from ._safety import DEFAULT_LIMITS, SafetyLimits
from ._text import clip, printable
from ._throttle import DEFAULT_WRITES_PER_SECOND

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
            _fail(exc.in_words(_FLAGS), EXIT_UNSAFE)
        except BulkphoneError as exc:
            _fail(exc.in_words(_FLAGS), EXIT_CONFIG)
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


# How the command line sets each setting a library message names (BulkphoneError.in_words).
_FLAGS = {
    "tenant_id": "--tenant-id (or BULKPHONE_TENANT_ID)",
    "client_id": "--client-id (or BULKPHONE_CLIENT_ID)",
    "auth": "--auth",
    "certificate": "--certificate",
    "federated_token_file": "--federated-token-file",
    "graph_url": "--graph-url",
    "cloud": "--cloud",
    "allow_insecure_http": "--allow-insecure-http",
    "upn_domains": "--upn-domain",
    "journal": "--journal",
    "users": "--users",
    "groups": "--group",
    "everyone": "--all (with --from-directory)",
    "directory_fields": "--directory-fields",
    "only_unregistered": "--only-unregistered",
    "default_region": "--default-region",
    "sheet": "--sheet",
    "changed_only": "--changed-only",
    "mode": "--mode",
    "identity": "--map or --upn-domain",
    "force": "--force",
    "data": "--data FOLDER",
    "max_changes": "--max-changes",
    "max_update_share": "--max-update-percent",
    "max_delete_share": "--max-delete-percent",
}


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
    command = click.option("--sheet", metavar="NAME|N", help="The .xlsx sheet to read, by name or position from 1 (default: the first).")(command)
    command = click.option("--report", "report_path", required=True, type=click.Path(path_type=Path), help="Where to write the report CSV.")(command)
    metavar = "INPUT" if input_required else "[INPUT]"
    command = click.argument("source", metavar=metavar, required=input_required, type=click.Path(path_type=Path))(command)
    return command


def _group_option(command):
    return click.option("--group", "groups", multiple=True, metavar="GROUP", help="Only the members of this group (object id or exact display name), nested groups included; repeatable (members of any). Needs GroupMember.Read.All.")(command)


def _directory_options(command):
    """Who to plan for and where their numbers come from, when the directory has a say."""
    options = [
        _group_option,
        click.option("--from-directory", is_flag=True, help="Build the input from each target user's own directory attributes (mobilePhone -> mobile, businessPhones[0] -> office), regions from usageLocation, instead of INPUT. Needs --group, --users or --all, and User.Read.All."),
        click.option("--directory-fields", metavar="ATTR=TYPE,...", help="With --from-directory: which attribute feeds which type, e.g. mobilePhone=alternateMobile,businessPhones=office (default: mobilePhone=mobile,businessPhones=office)."),
        click.option("--all", "all_users", is_flag=True, help="With --from-directory: every user of the tenant."),
        click.option("--only-unregistered", is_flag=True, help="Leave out users who already have a second factor (from the registration report, AuditLog.Read.All; else from their methods); they are reported as skipped, with what they have."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _planned(source, from_directory: bool, fields: str | None, all_users: bool, *, plan_path=None):
    """What the command plans: INPUT, or the directory (--from-directory), checked for sense."""
    if (fields or all_users) and not from_directory:
        raise click.UsageError("--directory-fields and --all go with --from-directory")
    if from_directory:
        if source is not None or plan_path is not None:
            raise click.UsageError("--from-directory builds the input from the directory: give no INPUT (or --plan)")
        return FromDirectory(directory_fields(fields) if fields else DEFAULT_FIELDS, everyone=all_users)
    return source


def _connection_options(command, *, writes: bool = False):
    """The options that say how to reach and sign in to Graph. Commands that don't write accept
    --max-writes-per-second without listing it (it does nothing for them; scripts may pass it)."""
    options = [
        click.option("--cloud", type=click.Choice(list(CLOUDS)), default="global", show_default=True, help="Microsoft cloud: Graph root, sign-in authority and scope."),
        click.option("--graph-url", envvar="BULKPHONE_GRAPH_URL", help="Graph root URL (overrides --cloud), e.g. a test server or `bulkphone sandbox` (or env BULKPHONE_GRAPH_URL)."),
        click.option("--auth", "auth_mode", type=click.Choice(AUTH_MODES), help="How to sign in (default: chosen from what is configured; see README)."),
        click.option("--tenant-id", envvar="BULKPHONE_TENANT_ID", help="Entra tenant id (or env BULKPHONE_TENANT_ID)."),
        click.option("--client-id", envvar="BULKPHONE_CLIENT_ID", help="App (client) id (or env BULKPHONE_CLIENT_ID)."),
        click.option("--certificate", type=click.Path(), help="PEM (private key + certificate) or PFX for --auth certificate; password in env BULKPHONE_CERTIFICATE_PASSWORD."),
        click.option("--send-x5c", is_flag=True, help="Send the certificate chain (subject name / issuer authentication)."),
        click.option("--managed-identity-client-id", help="Client id of a user-assigned managed identity (default: system-assigned)."),
        click.option("--federated-token-file", type=click.Path(), help="Federated token for --auth workload-identity (default: env AZURE_FEDERATED_TOKEN_FILE)."),
        click.option("--authority-url", help="Sign-in authority (overrides --cloud's), e.g. a private or test authority."),
        click.option("--allow-insecure-http", is_flag=True, help="Let --graph-url be plain http beyond this machine (a test server on a network you trust): the token then crosses the network unencrypted."),
        click.option("--max-writes-per-second", type=click.FloatRange(min=0.1), default=DEFAULT_WRITES_PER_SECOND, show_default=True, hidden=not writes, help="Cap on writes per second. The default is Graph's own ceiling (3,000 writes per 150 s per app per tenant); lower it when other jobs of the same app share the tenant."),
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
    handler = use_json_logs(sys.stderr) if log_format == "json" else use_human_logs(sys.stderr)
    ctx.call_on_close(lambda: logger.removeHandler(handler))


@main.command()
@_input_options
@_handled
def normalize(source, report_path, default_region, sheet, users, map_file, upn_domains) -> int:
    """Check and normalise the numbers in INPUT offline (no network, no credentials)."""
    refuse_overwriting([source, users, map_file], [report_path])
    identity = load_identity_map(map_file, upn_domains)
    with RowProgress(total=lambda: count_rows(source)) as progress:
        run = runs.normalize_file(source, report_path, users=users, default_region=default_region,
                                  progress=progress.update, identity=identity, sheet=sheet)
    _say(f"normalize: {sum(run.counts.values())} values: " + _counts(run.counts) + f"; report: {report_path}{_kept(run.earlier)}")
    return EXIT_ROW_PROBLEMS if run.counts["invalid"] else EXIT_OK


@main.command()
@click.argument("source", metavar="[INPUT]", required=False, type=click.Path(path_type=Path))
@click.option("--probe-user", help="User whose phone methods to read as a test (default: the first user of INPUT).")
@click.option("--write/--read-only", default=True, show_default=True, help="Check for apply (write) or for plan (read).")
@click.option("--sheet", metavar="NAME|N", help="With an .xlsx INPUT: the sheet to take the probe user from.")
@_directory_options
@_connection_options
@_handled
def check(source, probe_user, write, sheet, groups, from_directory, directory_fields, all_users, only_unregistered,
          **options) -> int:
    """Sign in, check the token's permissions and probe one read, before any run. Given a run's
    directory options (--group, --from-directory, --only-unregistered), also what they need."""
    _planned(None, from_directory, directory_fields, all_users)
    connection = _connection(options)
    probe = probe_user or (first_user(source, sheet) if source else None)
    result = pipeline.check(connection, write=write, probe_user=probe, groups=groups, from_directory=from_directory,
                            only_unregistered=only_unregistered)
    _say(f"check: signed in ({result.kind} token); permissions: {', '.join(result.granted) or 'unknown'}")
    _say(f"check: Graph at {result.graph_url} answered the probe read")
    if result.probed_user and not any(result.probed_user in note for note in result.notes):
        _say(f"check: read {result.probed_user}'s phone methods: numbers are visible, not masked")
    for note in result.notes:
        _say(f"check: note: {note}")
    _say(f"check: ready to {'apply' if write else 'plan'}")
    return EXIT_OK


@main.command()
@functools.partial(_input_options, input_required=False)
@_directory_options
@_mode_option
@_connection_options
@_handled
def plan(source, report_path, default_region, sheet, users, map_file, upn_domains, groups, from_directory, directory_fields,
         all_users, only_unregistered, mode, **options) -> int:
    """Read current methods and write the plan for INPUT (or --from-directory). Never writes to Graph."""
    planned = _planned(source, from_directory, directory_fields, all_users)
    if planned is None:
        raise click.UsageError("give INPUT (a CSV or .xlsx) to plan, or --from-directory")
    # Checked here too, before signing in: a refused report costs no sign-in (or device-code prompt).
    refuse_overwriting([source, users, map_file], runs.report_files(report_path))
    identity = load_identity_map(map_file, upn_domains)
    settings = dict(source=source, from_directory=_described(planned), group=" | ".join(groups),
                    only_unregistered=only_unregistered, sheet=sheet, users=users, default_region=default_region,
                    mode=mode, map=map_file, upn_domain=" ".join(upn_domains), **options)
    connection = _connection(options)
    return _show_plan(pipeline.run_sync(runs.plan_to_report(
        planned, report_path, connection=connection, users=users, default_region=default_region, mode=mode,
        identity=identity, sheet=sheet, groups=groups, only_unregistered=only_unregistered, settings=settings)))


def _described(planned) -> str | None:
    return planned.describe() if isinstance(planned, FromDirectory) else None


def _show_plan(run: runs.PlanRun) -> int:
    _say(f"plan ({run.plan.mode.value}): {len(run.rows)} rows: {_counts(run.plan.counts())}; {run.reads} reads, 0 writes; "
         f"report: {run.report}{_kept(run.earlier)}")
    _say(f"plan checksum: {run.checksum} (apply exactly this plan: bulkphone apply --plan {run.report} --approve {run.checksum})")
    if unknown := run.unknown_users:
        _say(f"plan: users Graph doesn't know (yet): {len(unknown)}, e.g. {unknown[0]}. apply waits for new users to appear "
             "(--wait-for-new-users); a mistyped UPN or object id is reported then")
    return EXIT_ROW_PROBLEMS if run.needs_a_person else EXIT_OK


@main.command()
@functools.partial(_input_options, input_required=False)
@_directory_options
@_mode_option
@functools.partial(_connection_options, writes=True)
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
def apply(source, report_path, default_region, sheet, users, map_file, upn_domains, groups, from_directory, directory_fields,
          all_users, only_unregistered, mode, plan_path, approved, journal_path, max_update_percent, max_delete_percent,
          max_changes, force, changed_only, wait_for_new_users, **options) -> int:
    """Plan INPUT against current methods, then make the changes in Graph.

    With --plan, apply that reviewed plan instead: each user is read again first and skipped
    if it changed since the plan. If a previous apply of the same input (or plan) was killed,
    this resumes it: finished changes are not redone and changes in flight are read back first.
    """
    planned = _planned(source, from_directory, directory_fields, all_users, plan_path=plan_path)
    if (planned is None) == (plan_path is None):
        raise click.UsageError("give INPUT (or --from-directory) to plan and apply it, or --plan PLAN.csv to apply a reviewed plan (not both)")
    if approved is not None and plan_path is None:
        raise click.UsageError("--approve goes with --plan PLAN.csv: it names the checksum of the plan that was approved")
    journal_path = journal_path or runs.journal_beside(report_path)
    refuse_overwriting([source, plan_path, users, map_file], runs.report_files(report_path) + [journal_path])
    identity = load_identity_map(map_file, upn_domains)
    settings = dict(source=source, from_directory=_described(planned), group=" | ".join(groups),
                    only_unregistered=only_unregistered, sheet=sheet, plan=plan_path, users=users,
                    default_region=default_region, mode=mode,
                    map=map_file, upn_domain=" ".join(upn_domains), force=force, changed_only=changed_only,
                    max_update_percent=max_update_percent, max_delete_percent=max_delete_percent,
                    max_changes=max_changes, wait_for_new_users=wait_for_new_users, **options)
    limits = None if force else SafetyLimits(max_update_percent / 100, max_delete_percent / 100, max_changes)
    connection = _connection(options)
    with ProgressDisplay(json_events=_json_logs()) as display:
        run = runs.run_stoppable(lambda stop: runs.apply_to_report(
            planned, report_path, connection=connection, plan_file=plan_path, approved=approved, journal_path=journal_path,
            users=users, default_region=default_region, mode=mode, identity=identity, sheet=sheet, limits=limits,
            groups=groups, only_unregistered=only_unregistered,
            changed_only=changed_only, wait_for_new_users=wait_for_new_users, stop=stop, progress=display.update,
            settings=settings))
    return _show_apply(run)


def _show_apply(run: runs.ApplyRun) -> int:
    stats = run.result.stats
    resumed = f"resumed a killed run ({stats['resumed']} changes already done); " if stats["resumed"] else ""
    _say(f"apply ({run.result.plan.mode.value}): {len(run.rows)} rows: {_counts(run.summary['statuses'])}; {resumed}"
         f"{_stats(stats)}; report: {run.report}{_kept(run.earlier)}")
    if run.interrupted:
        raise Exit(EXIT_INTERRUPTED, f"interrupted: {run.report} lists what was done; run the same apply again to resume")
    if run.result.stopped:
        raise Exit(EXIT_CONFIG, f"run stopped: {run.result.stopped}")
    return EXIT_ROW_PROBLEMS if run.needs_a_person else EXIT_OK


@main.command()
@click.option("--report", "report_path", required=True, type=click.Path(path_type=Path), help="Where to write the export CSV (valid input for plan and apply).")
@click.option("--users", type=click.Path(path_type=Path), help="CSV of the users to export (a user column: UPNs or object ids).")
@click.option("--all", "all_users", is_flag=True, help="Export every user of the tenant (needs User.Read.All too).")
@_group_option
@click.option("--include-empty", is_flag=True, help="Also write users who have no phone methods (empty rows).")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path), help="Journal (SQLite) that lets a killed export resume; default: next to the report.")
@_connection_options
@_handled
def export(report_path, users, all_users, groups, include_empty, journal_path, **options) -> int:
    """Write the current phone methods of the listed users, of a group's members, or of every user,
    as a CSV that plan and apply take as it is (e.g. to carry them to another tenant). Never
    writes to Graph."""
    if all_users == bool(users or groups):
        raise click.UsageError("give --users USERS.csv and/or --group GROUP to export those users, or --all for every "
                               "user of the tenant")
    journal_path = journal_path or runs.journal_beside(report_path)
    refuse_overwriting([users], [report_path, journal_path])
    settings = dict(users=users, group=" | ".join(groups), all=all_users, include_empty=include_empty, **options)
    connection = _connection(options)
    with RowProgress(doing="exporting", unit="users") as progress:
        run = runs.run_stoppable(lambda stop: runs.export_to_report(
            report_path, connection=connection, users=users, groups=groups, include_empty=include_empty, journal_path=journal_path,
            stop=stop, progress=progress.update, settings=settings))
    return _show_export(run, include_empty)


def _show_export(run: runs.ExportRun, include_empty: bool) -> int:
    counts, result = run.counts, run.result
    resumed = f"resumed a killed export ({result.resumed_users} users already read); " if result.resumed_users else ""
    left_out = "" if include_empty else f", {counts['without phone methods']} without phone methods left out"
    _say(
        f"export: {counts['listed']} users, {counts['with numbers']} with numbers{left_out}, "
        f"{counts['not exported']} not fully exported (see notExported and note); {resumed}"
        f"{_reads(run.reads, run.batched_reads, run.batches)}; report: {run.report}{_kept(run.earlier)}"
    )
    if result.stopped:
        raise Exit(EXIT_INTERRUPTED, f"interrupted: run the same export again to resume ({run.report} holds what was read)")
    return EXIT_ROW_PROBLEMS if run.needs_a_person else EXIT_OK


@main.command()
@click.option("--report", "report_path", required=True, type=click.Path(path_type=Path), help="Where to write the audit CSV (with .summary.json and .html beside it).")
@click.option("--users", type=click.Path(path_type=Path), help="CSV of the users to audit (a user column: UPNs or object ids); default: every user of the tenant.")
@_group_option
@click.option("--propose", type=click.Path(path_type=Path), metavar="FIXES.csv", help="Also write the fixes bulkphone can make as a plan/apply input: a defaultMethod (push, or system) for each phone-default user.")
@click.option("--needs-passkey", type=click.Path(path_type=Path), metavar="USERS.csv", help="Also write the users bulkphone can't fix (phone-only, no-mfa), for a passkey campaign.")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path), help="Journal (SQLite) that lets a killed audit resume; default: next to the report.")
@_connection_options
@_handled
def audit(report_path, users, groups, propose, needs_passkey, journal_path, **options) -> int:
    """Who will be locked out when Microsoft-provided SMS and voice stop: each user's methods,
    in a category (phone-only, phone-default, no-mfa, ready). Never writes to Graph."""
    journal_path = journal_path or runs.journal_beside(report_path)
    refuse_overwriting([users], runs.report_files(report_path) + [journal_path, propose, needs_passkey])
    settings = dict(users=users, group=" | ".join(groups), propose=propose, needs_passkey=needs_passkey, **options)
    connection = _connection(options)
    with RowProgress(doing="auditing", unit="users") as progress:
        run = runs.run_stoppable(lambda stop: runs.audit_to_report(
            report_path, connection=connection, users=users, groups=groups, propose=propose, needs_passkey=needs_passkey,
            journal_path=journal_path, stop=stop, progress=progress.update, settings=settings))
    return _show_audit(run)


def _show_audit(run: runs.AuditRun) -> int:
    summary = run.summary
    admins = len(summary["phone_only_admins"])
    counts = {name: count for name, count in summary["categories"].items()}
    source = "the registration report" if run.result.source == "registration report" else "each user's methods"
    _say(f"audit: {summary['users']} users: {_counts(counts)}"
         f"{f'; phone-only admins: {admins}' if admins else ''}; read from {source}; "
         f"{run.reads} reads; report: {run.report}{_kept(run.earlier)}")
    if run.result.fallback_reason:
        _say(f"audit: the registration report wasn't used ({run.result.fallback_reason}), so each user's methods were "
             "read (slower). Fix for next time: grant the app AuditLog.Read.All, in a tenant with Entra ID P1/P2")
        if run.result.admins_unknown:
            _say(f"audit: who is an admin isn't known: {run.result.admins_unknown}")
    if run.proposed is not None:
        fixes = sum(summary["proposed_defaults"].values())
        _say(f"audit: {fixes} fixes proposed in {run.proposed}; review them with: bulkphone plan {run.proposed} --report plan.csv")
    if run.needs_passkey is not None:
        _say(f"audit: users who need a passkey (phone-only, no-mfa) in {run.needs_passkey}")
    if run.interrupted:
        raise Exit(EXIT_INTERRUPTED, f"interrupted: run the same audit again to resume ({run.report} holds what was read)")
    if unread := run.unread:
        _say(f"audit: {len(unread)} users couldn't be read, e.g. {', '.join(unread[:5])}; the report says why")
        return EXIT_ROW_PROBLEMS
    return EXIT_OK


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
    for cloud in {job.cloud, job.source.cloud if job.source else job.cloud}:
        _cloud_note(cloud)

    def display(stage: str):
        if stage == "export":
            return RowProgress(doing="exporting", unit="users")
        return ProgressDisplay(json_events=_json_logs())

    done = runs.run_stoppable(lambda stop: runs.run_job_async(
        job, apply=do_apply, force=force, changed_only=changed_only, stop=stop, displays=display, prompt=_prompt))
    code = _show_export(done.export, job.source.include_empty) if done.export is not None else EXIT_OK
    if done.run is None:
        return code
    return _show_apply(done.run) if isinstance(done.run, runs.ApplyRun) else _show_plan(done.run)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("bulkphone-demo"), show_default=True, help="Folder for the demo's reports.")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Folder with the demo's input files, phones.csv and directory.csv (default: the sample data shipped with bulkphone).")
@_handled
def demo(out, data) -> int:
    """Plan and apply the sample data against the embedded simulated tenant (no account, no network),
    from any install and any folder; writes the CSVs, summaries and HTML pages to --out."""
    from ._demo import run_demo

    summary = run_demo(out, data)
    for line in summary.lines:
        _say(line)
    return EXIT_OK


@main.command()
@click.option("--seed", type=click.Path(path_type=Path), help="CSV or .xlsx of the tenant's users and their current numbers (bulkphone's input shape; an export works as it is). Default: the demo's 16 users.")
@click.option("--default-region", help="Region for --seed numbers written without +.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port on 127.0.0.1 (0: a free one).")
@_handled
def sandbox(seed, default_region, port) -> int:
    """Serve a simulated tenant on this machine, to try plan, apply, export and run on your own
    files before touching a real tenant. No account, no network; nothing is kept when it stops."""
    from .sim import APP_TOKEN, serve
    from ._demo import sandbox_tenant

    tenant, problems = sandbox_tenant(seed, default_region)
    for problem in problems:
        _say(f"sandbox: left out of the tenant: {problem}", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with serve(tenant, port=port) as url:
        _say(f"sandbox: a simulated Graph tenant of {len(tenant.users)} users answers at {url} (this machine only).")
        _say(f"sandbox: sign in with the token {APP_TOKEN}; in another terminal, e.g.:")
        _say(f"  export BULKPHONE_ACCESS_TOKEN={APP_TOKEN} BULKPHONE_GRAPH_URL={url}")
        _say("  bulkphone plan  phones.csv --report plan.csv")
        _say("  bulkphone apply phones.csv --report results.csv")
        if seed is None:
            _say('  bulkphone plan --from-directory --group "New hires" --only-unregistered --report hires.csv')
            _say("  bulkphone audit --report audit.csv --propose fixes.csv --needs-passkey campaign.csv")
        _say(f"  (a job file: graph_url = \"{url}\" and auth = \"token\" in [connection])")
        _say("sandbox: Ctrl-C stops it.")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    _say(f"sandbox: stopped after {tenant.write_count()} writes; nothing was kept.")
    return EXIT_OK


def _connection(options: dict) -> pipeline.Connection:
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
    cloud = options.pop("cloud")
    _cloud_note(cloud)
    return pipeline.connect_with(
        settings, cloud, graph_url=options.pop("graph_url"), max_writes_per_second=options.pop("max_writes_per_second"),
        max_concurrency=options.pop("max_concurrency"), allow_insecure_http=options.pop("allow_insecure_http"),
        prompt=_prompt,
    )


def _prompt(message: str) -> None:
    _say(message, err=True)


def _cloud_note(cloud: str) -> None:
    if cloud.lower() == "china":
        _say(
            "bulkphone: note: older Microsoft pages list the phone methods API as unsupported in the China "
            "(21Vianet) cloud; if Graph answers that it is unavailable there, that is why.",
            err=True,
        )


def _counts(counts) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items() if count) or "nothing"


def _stats(stats: dict) -> str:
    return (
        f"{stats['writes']} writes, {_reads(stats['reads'], stats['batched_reads'], stats['batches'])}, {stats['retries']} retries, "
        f"{stats['throttled']} throttled, {stats['reconciled']} reconciled, {stats['seconds']:.1f}s"
    )


def _reads(reads: int, batched: int, batches: int) -> str:
    """`3431 reads in 215 batches`; reads made one by one (a resumed run's read-backs) said as such."""
    if not batches:
        return f"{reads} reads"
    if batched == reads:
        return f"{reads} reads in {batches} batches"
    return f"{reads} reads ({batched} in {batches} batches)"


def _kept(earlier) -> str:
    return f" (the earlier report of that name is kept as {earlier.name})" if earlier else ""
