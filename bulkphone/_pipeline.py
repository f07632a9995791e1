"""The library's front door: connect, then plan, apply, check or export, as plain functions.

Each is a coroutine function (`plan_async`, `apply_async`, ...) for callers that already run
an event loop, and a plain function of the same signature (`plan`, `apply`, ...) that runs it
for you, in a worker thread if a loop is running (a notebook). Reading the input is
_cells.py; a whole command with its reports is _runs.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Iterable, ParamSpec, Sequence, TypeVar

import httpx

from ._audit import AuditResult, audit_users
from ._auth import AuthSettings, BearerAuth, TokenProvider, token_provider
from ._cells import NOT_IN_USERS_FILE, Users, input_defaults, load_cells
from ._directory import (FromDirectory, Targets, directory_cells, directory_readiness, find_targets, leave_out_phone_holders,
                         leave_out_registered)
from ._clock import Clock, SystemClock
from ._clouds import check_graph_url, cloud_named
from ._errors import ForbiddenError, GraphError, InputError, NotFoundError
from ._executor import DEFAULT_CONCURRENCY, DEFAULT_WAIT_FOR_NEW_USERS, INTERRUPTED, Progress, RunResult, execute
from ._export import ExportResult, export_users
from ._files import require_regular_file
from ._graph import USER_FIELDS, Counters, GraphClient
from ._ingest import read_users
from ._journal import ExportJournal, Journal, ResumedRun, run_key
from ._mapping import IdentityMap
from ._model import DEFAULT_METHOD, SETTINGS, Mode, user_key
from ._planner import Cell, Plan, UserState, build_plan, settle_cells
from ._preflight import PreflightReport, check_directory_permissions, preflight
from ._retry import RetryPolicy
from ._safety import SafetyLimits, check_safety
from ._throttle import DEFAULT_WRITES_PER_SECOND, RateLimiter

__all__ = [
    "Connection",
    "apply",
    "apply_async",
    "audit",
    "audit_async",
    "check",
    "check_async",
    "connect",
    "connect_with",
    "export",
    "export_async",
    "plan",
    "plan_async",
    "read_current",
    "run_sync",
]

T = TypeVar("T")
P = ParamSpec("P")
GRAPH_URL_ENV = "BULKPHONE_GRAPH_URL"


@dataclass
class Connection:
    """How to reach Graph, and the state runs share: retry policy and write limiter. `counters`
    are those of the latest client opened (each run opens one, so each run counts its own)."""

    token: TokenProvider
    graph_url: str = "https://graph.microsoft.com"
    transport: httpx.AsyncBaseTransport | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    counters: Counters = field(default_factory=Counters)
    max_concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = 30.0
    allow_insecure_http: bool = False  # plain http beyond loopback: only for a test server on a trusted network

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[GraphClient]:
        self.counters = Counters()
        http = httpx.AsyncClient(
            auth=BearerAuth(self.token),
            transport=self.transport,
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=self.max_concurrency + 8, max_keepalive_connections=self.max_concurrency + 8),
        )
        async with GraphClient(
            http, base_url=self.graph_url, policy=self.policy, limiter=self.limiter, counters=self.counters,
            allow_insecure_http=self.allow_insecure_http,
        ) as client:
            yield client


def connect(
    token: TokenProvider,
    *,
    graph_url: str = "https://graph.microsoft.com",
    transport: httpx.AsyncBaseTransport | None = None,
    max_writes_per_second: float = DEFAULT_WRITES_PER_SECOND,
    max_concurrency: int = DEFAULT_CONCURRENCY,
    clock: Clock | None = None,
    policy: RetryPolicy | None = None,
    timeout: float = 30.0,
    allow_insecure_http: bool = False,
) -> Connection:
    """A Connection with bulkphone's retry policy and adaptive write-rate limit.

    The token goes only over https (or plain http to this machine's loopback), unless
    `allow_insecure_http`: the GraphClient it opens refuses anything else."""
    policy = policy or RetryPolicy(clock=clock or SystemClock())
    return Connection(
        token=token,
        graph_url=graph_url,
        transport=transport,
        policy=policy,
        limiter=RateLimiter(max_writes_per_second, clock=policy.clock),
        max_concurrency=max_concurrency,
        timeout=timeout,
        allow_insecure_http=allow_insecure_http,
    )


def connect_with(
    auth: AuthSettings,
    cloud: str = "global",
    *,
    graph_url: str | None = None,
    max_writes_per_second: float = DEFAULT_WRITES_PER_SECOND,
    max_concurrency: int = DEFAULT_CONCURRENCY,
    allow_insecure_http: bool = False,
    prompt: Callable[[str], None] | None = None,
) -> Connection:
    """Sign in as `auth` says to `cloud` (or to `graph_url`, which overrides the cloud's Graph;
    else the environment variable BULKPHONE_GRAPH_URL, e.g. a `bulkphone sandbox`). The Graph
    URL is checked before the sign-in: msal may reach the authority at once. `prompt` shows
    device-code instructions."""
    the_cloud = cloud_named(cloud)
    url = graph_url or os.environ.get(GRAPH_URL_ENV) or the_cloud.graph_url
    check_graph_url(url, allow_insecure_http=allow_insecure_http)
    return connect(token_provider(auth, the_cloud, prompt=prompt), graph_url=url, max_writes_per_second=max_writes_per_second,
                   max_concurrency=max_concurrency, allow_insecure_http=allow_insecure_http)


async def read_current(client: GraphClient, users: Iterable[str], *, defaults_of: Iterable[str] = ()) -> dict[str, UserState]:
    """Each user's phone methods as Graph holds them now, read in batches, and the default
    method of the users in `defaults_of` (beta signInPreferences). 401/403 raise."""
    spelled: dict[str, str] = {}
    for user in users:
        spelled.setdefault(user_key(user), user)
    answers = await client.read_phone_methods(list(spelled.values()))
    wanted = {user_key(user) for user in defaults_of}
    found = [user for key, user in spelled.items() if key in wanted and not isinstance(answers[user], GraphError)]
    preferences = await client.read_sign_in_preferences(found) if found else {}
    current: dict[str, UserState] = {}
    for key, user in spelled.items():
        answer = answers[user]
        if isinstance(answer, NotFoundError):
            current[key] = UserState(missing=True)
        elif isinstance(answer, GraphError):
            current[key] = UserState(error=f"couldn't read the user's current methods: {answer.message}")
        else:
            default = preferences.get(user)
            current[key] = UserState(
                methods=answer,
                preferences=None if isinstance(default, GraphError) else default,
                preferences_error=f"couldn't read the user's default method: {default.message}" if isinstance(default, GraphError) else "",
            )
    return current


def _blocking(coroutine_function: Callable[P, Awaitable[T]]) -> Callable[P, T]:
    """The plain twin of a coroutine function: same signature (for IDEs and help()), same doc."""

    @functools.wraps(coroutine_function)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(coroutine_function(*args, **kwargs))

    run.__name__ = run.__qualname__ = coroutine_function.__name__.removesuffix("_async")
    return run


async def plan_async(
    source: str | Path | FromDirectory,
    *,
    connection: Connection,
    users: Users = None,
    default_region: str | None = None,
    mode: Mode | str = Mode.UPSERT,
    check_first: bool = False,
    identity: IdentityMap | None = None,
    sheet: str | None = None,
    groups: Sequence[str] = (),
    only_unregistered: bool = False,
) -> Plan:
    """Read the input and the users' current methods, and decide every change. Never writes.

    `source`: an input file, or `FromDirectory()` to build the input from the users' own
    mobilePhone and businessPhones. `users`: a users file (or {user: region}) giving default
    regions; only its users are planned. `groups`: object ids or exact display names; only
    their members (nested groups included) are planned, and their usageLocation is their
    region. `only_unregistered`: users who already have a second factor are left out, with
    what they have. `identity`: who each user of the file is in this tenant
    (bulkphone.IdentityMap). `sheet`: a workbook's sheet, by name or 1-based position.
    With `check_first=True` the sign-in is checked before any row (see `check`)."""
    async with connection.open() as client:
        return await _plan(
            client, source, users=users, default_region=default_region, mode=mode,
            signin=connection.token if check_first else None, identity=identity, sheet=sheet, groups=groups,
            only_unregistered=only_unregistered,
        )


async def check_async(connection: Connection, *, write: bool, probe_user: str | None = None, groups: Sequence[str] = (),
                      from_directory: bool = False, only_unregistered: bool = False) -> PreflightReport:
    """Sign in, read the token's permissions, probe one user's methods; raise PreflightError if
    the run can't work. With the directory options of a run (`groups`, `from_directory`,
    `only_unregistered`), also what they need: the permissions, each group found (and its size),
    the registration report; said in the report's notes."""
    async with connection.open() as client:
        report = await preflight(connection.token, client, write=write, probe_user=probe_user)
        check_directory_permissions(connection.token, groups=bool(groups), attributes=from_directory)
        report.notes.extend(await directory_readiness(client, groups=groups, attributes=from_directory,
                                                      only_unregistered=only_unregistered))
        return report


async def apply_async(
    plan_or_source: Plan | str | Path | FromDirectory,
    *,
    connection: Connection,
    journal: Journal | None = None,
    stop: asyncio.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    users: Users = None,
    default_region: str | None = None,
    mode: Mode | str | None = None,
    check_first: bool = False,
    limits: SafetyLimits | None = None,
    verify_unchanged: bool = False,
    changed_only: bool = False,
    identity: IdentityMap | None = None,
    sheet: str | None = None,
    groups: Sequence[str] = (),
    only_unregistered: bool = False,
    wait_for_new_users: float = DEFAULT_WAIT_FOR_NEW_USERS,
) -> RunResult:
    """Carry out a plan, or plan the input file first (see `plan`) and carry that out.

    With a journal, an unfinished run of the same input (or plan) is resumed instead of
    planned again: its done changes are kept, its in-flight ones read back first.
    With `limits`, a new plan that changes too much raises UnsafePlanError before any write.
    With `verify_unchanged` (for a plan reviewed earlier), users changed since are skipped.
    With `changed_only` (an input file and a journal), rows whose wanted number equals the one
    the journal last verified are not read or written: a cheap scheduled re-run.
    Users Graph didn't know when planned (new hires still replicating) are waited for, apart
    from everyone else, for up to `wait_for_new_users` seconds.
    """
    planning = {"users": users, "default_region": default_region, "mode": mode, "identity": identity, "sheet": sheet,
                "changed_only": changed_only or None, "groups": groups or None, "only_unregistered": only_unregistered or None}
    if isinstance(plan_or_source, Plan) and (given := [name for name, value in planning.items() if value is not None]):
        raise InputError(", ".join("{" + name + "}" for name in given) + ": these shape planning an input file; "
                         "a plan is applied as it was planned", settings=tuple(given))
    if changed_only and journal is None:
        raise InputError("{changed_only} needs the run journal of the earlier runs", settings=("changed_only",))
    async with connection.open() as client:
        # The directory is read first when it shapes the run: a resumed run is one whose targets are unchanged.
        if check_first and not isinstance(plan_or_source, Plan):
            check_directory_permissions(connection.token, groups=bool(groups), attributes=isinstance(plan_or_source, FromDirectory))
        known_users = _read_users(users)
        targets = None if isinstance(plan_or_source, Plan) else await _find_targets(client, plan_or_source, known_users, groups)
        key = _run_key(plan_or_source, users, default_region, mode or Mode.UPSERT, connection.graph_url, identity, sheet,
                       groups, targets, only_unregistered)
        resumed = journal.resume(key) if journal is not None else None
        the_plan, preflight_first = await _plan_to_apply(
            client, connection, plan_or_source, resumed, users=known_users, default_region=default_region,
            mode=mode or Mode.UPSERT, check_first=check_first, identity=identity, sheet=sheet, groups=groups,
            targets=targets, only_unregistered=only_unregistered, verified=journal.verified() if changed_only else None)
        if preflight_first:
            probe = next((item.user for item in the_plan.items if item.action.writes), None)
            settings = any(item.is_setting and item.action.writes for item in the_plan.items)
            await preflight(connection.token, client, write=True, probe_user=probe, settings=settings)
        if limits is not None and resumed is None:
            check_safety(the_plan, limits)
        run_id = resumed.run_id if resumed else journal.begin(key, the_plan) if journal is not None else None
        result = await execute(
            the_plan,
            client,
            max_concurrency=connection.max_concurrency,
            recorder=journal.recorder(run_id, the_plan) if journal is not None else None,
            done=resumed.done if resumed else None,
            in_doubt=resumed.in_doubt if resumed else None,
            stop=stop,
            progress=progress,
            verify_unchanged=isinstance(plan_or_source, Plan) and verify_unchanged,
            wait_for_new_users=wait_for_new_users,
        )
        # Only an interrupted run is left open to resume. After a systemic stop the next apply
        # plans afresh from live state, so it retries what failed once the cause is fixed.
        if journal is not None:
            journal.remember_verified(run_id, the_plan, result.outcomes)
            if result.stopped != INTERRUPTED:
                journal.finish(run_id)
        return result


async def _plan_to_apply(client: GraphClient, connection: Connection, plan_or_source, resumed: ResumedRun | None, *,
                         check_first: bool, verified, **planning) -> tuple[Plan, bool]:
    """The plan to carry out (resumed, given, or made now), and whether the sign-in is still
    to be checked (planning checks it while reading)."""
    if resumed is not None:
        return resumed.plan, check_first
    if isinstance(plan_or_source, Plan):
        return plan_or_source, check_first
    signin = connection.token if check_first else None
    return await _plan(client, plan_or_source, signin=signin, write=True, verified=verified, **planning), False


async def _plan(client: GraphClient, source, *, users: Users, default_region, mode, signin: TokenProvider | None = None,
                write: bool = False, verified=None, identity=None, sheet: str | None = None, groups: Sequence[str] = (),
                targets: Targets | None = None, only_unregistered: bool = False) -> Plan:
    """Read and settle the cells, check the sign-in first when `signin` is given (for a run that
    will `write` or not), read the users' current methods, and decide."""
    users = _read_users(users)
    if isinstance(source, FromDirectory) and Mode(mode) is Mode.SYNC:
        raise InputError("{mode} sync deletes what a blank cell leaves out, and a blank directory attribute isn't a "
                         "request to delete: plan an input from the directory in upsert or create-only mode",
                         settings=("mode",))
    if targets is None:
        if signin is not None:
            check_directory_permissions(signin, groups=bool(groups), attributes=isinstance(source, FromDirectory))
        targets = await _find_targets(client, source, users, groups)
    cells = _input_cells(source, targets, users=users, default_region=default_region, identity=identity, sheet=sheet,
                         groups=groups)
    if only_unregistered:
        ids = {} if targets is None else {key: p.id for p in targets.people for key in (user_key(p.upn), user_key(p.id))}
        cells = await leave_out_registered(client, cells, ids)
    cells = settle_cells(cells, Mode(mode), verified)
    wanted = [cell.user for cell in cells if not cell.error and not cell.excluded and not cell.unchanged]
    defaults_of = [cell.user for cell in cells if cell.phone_type == DEFAULT_METHOD and cell.number and not cell.excluded
                   and not cell.unchanged]
    if signin is not None:
        settings = any(cell.phone_type in SETTINGS and cell.number for cell in cells if not cell.excluded)
        await preflight(signin, client, write=write, probe_user=wanted[0] if wanted else None, settings=settings)
    try:
        current = await read_current(client, wanted, defaults_of=defaults_of)
    except ForbiddenError as exc:
        raise ForbiddenError(
            f"{exc.message}. Fix: grant the app UserAuthenticationMethod.Read.All (plan) or "
            "UserAuthenticationMethod.ReadWrite.All (apply) as an application permission, with admin consent",
            status=exc.status,
            code=exc.code,
            request_id=exc.request_id,
        ) from exc
    if only_unregistered:
        cells = leave_out_phone_holders(cells, current)
    return build_plan(cells, current, Mode(mode))


def _read_users(users: Users) -> Users:
    """A users file read once, for all a run's steps (directory targets, regions, cells)."""
    return read_users(users) if isinstance(users, (str, Path)) else users


async def _find_targets(client: GraphClient, source, users: Users, groups: Sequence[str]) -> Targets | None:
    """Whom the directory says the run is about, when it has a say: with groups, or an input
    built from the directory. None: the input file alone says."""
    directory = isinstance(source, FromDirectory)
    if not groups and not directory:
        return None
    if directory and not (groups or users or source.everyone):
        raise InputError("an input from the directory needs whom to take: {groups}, {users} or every user "
                         "({everyone})", settings=("groups", "users", "everyone"))
    named = input_defaults(users, None)[0]
    return await find_targets(client, groups=groups, users=list(named) if named is not None else None,
                              everyone=directory and source.everyone)


def _input_cells(source, targets: Targets | None, *, users: Users, default_region, identity, sheet,
                 groups: Sequence[str]) -> list[Cell]:
    """The cells to plan: the directory's (FromDirectory) or the input file's, narrowed to the targets."""
    users_file, region_default = input_defaults(users, default_region)
    if isinstance(source, FromDirectory):
        if identity is not None or sheet is not None:
            raise InputError("{identity} and {sheet} are about an input file; an input from the directory has neither",
                             settings=("identity", "sheet"))
        return directory_cells(targets, source, region_default, targets.regions(users_file))
    if targets is None:
        return load_cells(source, users=users, default_region=default_region, identity=identity, sheet=sheet)
    cells = load_cells(source, users=targets.regions(users_file), default_region=default_region, identity=identity, sheet=sheet)
    outside = f"not a member of {', '.join(repr(group) for group in groups)} (nested groups included): left out of this run"
    return [cell._replace(excluded=outside)
            if cell.excluded == NOT_IN_USERS_FILE and (users_file is None or user_key(cell.user) in users_file) else cell
            for cell in cells]


def _run_key(plan_or_source, users: Users, default_region, mode, graph_url: str, identity: IdentityMap | None = None,
             sheet: str | None = None, groups: Sequence[str] = (), targets: Targets | None = None,
             only_unregistered: bool = False) -> str:
    if isinstance(plan_or_source, Plan):
        return run_key("plan", *(json.dumps(item.__dict__, default=str) for item in plan_or_source.items))
    users_part = _content(users) if isinstance(users, (str, Path)) else json.dumps(users, sort_keys=True)
    mapping = identity.describe() if identity is not None else None
    # What is new joins the key only when given, so runs resumed across versions still match.
    extra = [*([f"sheet={sheet}"] if sheet is not None else []),
             *([f"groups={sorted(groups)}"] if groups else []),
             *([targets.fingerprint()] if targets is not None else []),
             *(["only-unregistered"] if only_unregistered else [])]
    if isinstance(plan_or_source, FromDirectory):
        return run_key("directory", plan_or_source.describe(), users_part, default_region, str(mode), graph_url, *extra)
    return run_key("input", _content(plan_or_source), users_part, default_region, str(mode), graph_url, mapping, *extra)


def _content(path: str | Path) -> bytes:
    try:
        require_regular_file(Path(path))
        return Path(path).read_bytes()
    except (OSError, InputError):
        return b""  # planning reports the unreadable file, with its fix


async def export_async(
    connection: Connection,
    *,
    journal: Journal,
    users: str | Path | list[str] | None = None,
    page_size: int = 999,
    progress: Callable[[int, int | None], None] | None = None,
    stop: asyncio.Event | None = None,
    check_first: bool = False,
    groups: Sequence[str] = (),
) -> ExportResult:
    """Every listed user's current phone methods: the users of a users file (or a list), the
    members of `groups` (nested groups included; narrowed to `users` when both are given), or
    with neither, every user of the tenant. The journal makes a killed export resume."""
    user_list = list(read_users(users)) if isinstance(users, (str, Path)) else users
    async with connection.open() as client:
        if check_first:
            await preflight(connection.token, client, write=False)
            check_directory_permissions(connection.token, groups=bool(groups), attributes=False)
        found = (await find_targets(client, groups=groups, users=user_list, fields=USER_FIELDS)).people if groups else None
        listed = sorted(user.id for user in found) if found is not None else user_list
        key = run_key("export", connection.graph_url, json.dumps(sorted(listed)) if listed is not None else "all",
                      *([f"groups={sorted(groups)}"] if groups else []))
        return await export_users(client, ExportJournal(journal), key, users=user_list, found=found, page_size=page_size,
                                  progress=progress, stop=stop)


async def audit_async(
    connection: Connection,
    *,
    journal: Journal,
    users: str | Path | list[str] | None = None,
    groups: Sequence[str] = (),
    progress: Callable[[int, int | None], None] | None = None,
    stop: asyncio.Event | None = None,
    check_first: bool = False,
) -> AuditResult:
    """Where each listed user stands when Microsoft-provided SMS and voice stop: the users of a
    users file (or a list), the members of `groups` (narrowed to `users` when both are given),
    or every user of the tenant. Reads only; the journal makes a killed audit resume."""
    user_list = list(read_users(users)) if isinstance(users, (str, Path)) else users
    key = run_key("audit", connection.graph_url, json.dumps(sorted(user_list)) if user_list is not None else "all",
                  *([f"groups={sorted(groups)}"] if groups else []))
    async with connection.open() as client:
        if check_first:
            await preflight(connection.token, client, write=False)
            check_directory_permissions(connection.token, groups=bool(groups), attributes=False)
        return await audit_users(client, ExportJournal(journal), key, users=user_list, groups=groups, progress=progress,
                                 stop=stop)


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run a coroutine to completion, also from code that already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(awaitable)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, awaitable).result()


plan = _blocking(plan_async)
check = _blocking(check_async)
apply = _blocking(apply_async)
export = _blocking(export_async)
audit = _blocking(audit_async)
