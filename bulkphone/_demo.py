"""`bulkphone demo`: the whole pipeline on the sample data against the embedded simulated tenant."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import _pipeline as pipeline
from ._auth import StaticToken
from ._clock import Clock, SystemClock
from ._errors import InputError
from ._executor import RunResult
from ._planner import Plan
from ._retry import RetryPolicy
from ._cells import load_cells
from ._runs import AuditRun, apply_to_report, audit_to_report, plan_to_report
from .sim import APP_TOKEN, Faults, Principal, SimTenant, SimTransport

__all__ = ["DEMO_FAULTS", "DemoSummary", "run_demo", "sandbox_tenant"]

TENANT_FILE = Path(__file__).parent / "sim" / "demo_tenant.json"


def _sample_data() -> Path:
    """sample_data/ as installed inside the package (pip install, a wheel), else the clone's."""
    packaged = Path(__file__).with_name("sample_data")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "sample_data"


SAMPLE_DATA = _sample_data()
# Enough trouble to show the retries and read-backs at work on a few dozen writes.
DEMO_FAULTS = Faults(error_503=0.05, drop_before=0.03, drop_after=0.06, latency=0.005, writes_per_second=20, seed=9)
# The demo tenant's new hire replicates in 2 s; a user that never appears shouldn't hold the demo up long.
DEMO_WAIT_FOR_NEW_USERS = 4.0


@dataclass
class DemoSummary:
    out: Path
    plan: Plan
    result: RunResult
    rerun: RunResult
    audit: AuditRun
    tenant: SimTenant
    lines: list[str] = field(default_factory=list)


def run_demo(out: Path, data: Path | None = None, *, clock: Clock | None = None) -> DemoSummary:
    data = Path(data) if data else SAMPLE_DATA
    source, directory = data / "phones.csv", data / "directory.csv"
    if not source.exists():
        raise InputError(f"{source}: demo input not found. Fix: give "
                         "the folder with phones.csv and directory.csv ({data}).", settings=("data",))
    tenant = SimTenant.from_json(TENANT_FILE, faults=DEMO_FAULTS, clock=clock)
    # The app may read the registration report and list users, so the demo ends with an audit.
    tenant.tokens[APP_TOKEN] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All", "User.Read.All",
                                                    "AuditLog.Read.All"}))
    # The simulated tenant recovers at once, so short backoffs keep the demo brisk.
    policy = RetryPolicy(initial_wait=0.05, max_wait=1.0, clock=clock or SystemClock())
    connection = pipeline.connect(
        StaticToken(APP_TOKEN), graph_url="https://graph.sim.invalid", transport=SimTransport(tenant), policy=policy
    )
    out = Path(out)
    settings = {"demo": "the embedded simulated tenant", "source": source, "users": directory}
    # The demo's journals are thrown away: each demo starts from a fresh simulated tenant.
    with tempfile.TemporaryDirectory(prefix="bulkphone-demo-") as journals:
        planned = pipeline.run_sync(plan_to_report(source, out / "plan.csv", connection=connection, users=directory,
                                                   settings=settings))
        the_plan = planned.plan
        writes_during_plan = tenant.write_count()
        applied = pipeline.run_sync(apply_to_report(
            the_plan, out / "results.csv", connection=connection, journal_path=Path(journals) / "apply.sqlite",
            wait_for_new_users=DEMO_WAIT_FOR_NEW_USERS, settings=settings))
        result, result_rows = applied.result, applied.rows
        writes_before_rerun = tenant.write_count()
        rerun = pipeline.run_sync(apply_to_report(
            source, out / "rerun.csv", connection=connection, journal_path=Path(journals) / "rerun.sqlite",
            users=directory, wait_for_new_users=DEMO_WAIT_FOR_NEW_USERS, settings=settings)).result
        audited = pipeline.run_sync(audit_to_report(
            out / "audit.csv", connection=connection, propose=out / "fixes.csv", journal_path=Path(journals) / "audit.sqlite",
            settings={"demo": "the embedded simulated tenant"}))
    plan_rows = planned.rows

    summary = DemoSummary(out=out, plan=the_plan, result=result, rerun=rerun, audit=audited, tenant=tenant)
    landed = writes_before_rerun - writes_during_plan
    summary.lines = [
        f"bulkphone demo: {source.name} ({len(plan_rows)} report rows) against a simulated tenant of {len(tenant.users)} users",
        f"  plan    -> {out / 'plan.csv'}: {_counts(the_plan.counts())}; writes to the tenant: {writes_during_plan}",
        f"  apply   -> {out / 'results.csv'}: {_counts(applied.summary['statuses'])}; "
        f"{the_plan.write_count} changes planned, {landed} written to the tenant, "
        f"{result.stats['retries']} retries, {result.stats['reconciled']} read-backs after lost responses",
        f"  faults survived: {_counts(tenant.injected)}",
        f"  re-run  -> {out / 'rerun.csv'}: {_counts(rerun.plan.counts())}; new writes: {tenant.write_count() - writes_before_rerun}",
        f"  audit   -> {out / 'audit.csv'}: {_counts(audited.summary['categories'])} "
        f"(who is blocked when Microsoft-provided SMS and voice stop); fixes it can make: {out / 'fixes.csv'}",
        f"  for people: {out / 'results.html'} (open it in a browser), {out / 'results.summary.json'}; "
        f"the plan's: {out / 'plan.html'}; the audit's: {out / 'audit.html'}",
        "  rows that need a person:",
    ]
    seen = set()
    for row in result_rows:
        for kind in ("error", "warning"):
            if row[kind] and (row["row"], row[kind]) not in seen:
                seen.add((row["row"], row[kind]))
                summary.lines.append(f"    row {row['row']} {row['user']} {row['phoneType']}: {kind}: {row[kind]}")
    return summary


def _counts(counts) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items() if count) or "none"


def sandbox_tenant(seed: Path | None = None, default_region: str | None = None) -> tuple[SimTenant, list[str]]:
    """A simulated tenant to try bulkphone on: the users of `seed` (a CSV or .xlsx in bulkphone's
    input shape, e.g. an export) with their numbers as current phone methods, or the demo's
    users. Writes are limited as Graph limits them (20 per second). Also returns the seed's
    cells that couldn't be used, as lines for a person."""
    faults = Faults(writes_per_second=20)
    tenant = SimTenant.from_json(TENANT_FILE, faults=faults) if seed is None else SimTenant(faults=faults)
    # Like an app granted what every command needs: `export --all`, `--group`, `--from-directory`
    # and `--only-unregistered` (the registration report) included.
    tenant.tokens[APP_TOKEN] = Principal(frozenset({"UserAuthenticationMethod.ReadWrite.All", "User.Read.All",
                                                    "GroupMember.Read.All", "AuditLog.Read.All"}))
    if seed is None:
        for user in tenant.users.values():
            user.visible_from = 0.0  # no one is still replicating in a tenant made to be tried
        return tenant, []
    methods: dict[str, dict[str, str]] = {}
    problems = []
    for cell in load_cells(seed, default_region=default_region):
        if not cell.user:
            continue
        numbers = methods.setdefault(cell.user, {})
        if cell.number:
            numbers[cell.phone_type] = cell.number
        elif cell.error:
            problems.append(f"row {cell.row} {cell.user} {cell.phone_type}: {cell.error}")
    for user, numbers in methods.items():
        tenant.add_user(user, numbers)
    return tenant, problems
