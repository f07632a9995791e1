"""The library's front door: ingest -> normalise -> plan -> apply, as plain functions."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import httpx

from .auth import BearerAuth, TokenProvider
from .clock import Clock, SystemClock
from .errors import AuthError, ForbiddenError, GraphError, InputError, NotFoundError
from .executor import RunResult, execute
from .graph import GraphClient
from .ingest import read_input, read_users
from .model import Mode, PhoneType
from .normalize import normalize_number, normalize_region
from .planner import Cell, Plan, UserState, build_plan, user_key
from .retry import RetryPolicy
from .throttle import DEFAULT_WRITES_PER_SECOND, RateLimiter

__all__ = ["apply", "connect", "load_cells", "plan", "read_current"]

_CANT_SMS = {"fixed_line", "toll_free", "premium_rate", "shared_cost", "uan", "voicemail", "personal_number"}


def connect(
    token: TokenProvider,
    *,
    graph_url: str = "https://graph.microsoft.com",
    transport: httpx.BaseTransport | None = None,
    max_writes_per_second: float = DEFAULT_WRITES_PER_SECOND,
    clock: Clock | None = None,
    policy: RetryPolicy | None = None,
    timeout: float = 30.0,
) -> GraphClient:
    """A GraphClient with bulkphone's retry policy and write-rate limit."""
    policy = policy or RetryPolicy(clock=clock or SystemClock())
    clock = policy.clock
    http = httpx.Client(auth=BearerAuth(token), transport=transport, timeout=timeout)
    return GraphClient(
        http,
        base_url=graph_url,
        policy=policy,
        limiter=RateLimiter(max_writes_per_second, clock=clock),
    )


def load_cells(
    source: str | Path,
    *,
    users: str | Path | dict[str, str] | None = None,
    default_region: str | None = None,
) -> list[Cell]:
    """Read and normalise an input file: one Cell per (input row, phone type)."""
    region_default, problem = normalize_region(default_region)
    if problem:
        raise InputError(f"--default-region: {problem}")
    known_users = read_users(users) if isinstance(users, (str, Path)) else users
    frame = read_input(source)
    cells = []
    for row, user, phone_type, raw, row_region, error in frame.itertuples(index=False):
        cells.append(_cell(row, user, phone_type, raw, row_region, error, known_users, region_default))
    return cells


def read_current(client: GraphClient, users: Iterable[str]) -> dict[str, UserState]:
    """Each user's phone methods as Graph holds them now. 401/403 stop everything."""
    current: dict[str, UserState] = {}
    for user in users:
        key = user_key(user)
        if key in current:
            continue
        try:
            current[key] = UserState(methods=client.list_phone_methods(user))
        except (AuthError, ForbiddenError):
            raise
        except NotFoundError:
            current[key] = UserState(
                error=f"user not found: check the UPN or object id (Graph answered 404 {client.policy.not_found_attempts} times)"
            )
        except GraphError as exc:
            current[key] = UserState(error=f"couldn't read the user's current methods: {exc.message}")
    return current


def plan(
    source: str | Path,
    *,
    client: GraphClient,
    users: str | Path | dict[str, str] | None = None,
    default_region: str | None = None,
    mode: Mode | str = Mode.UPSERT,
) -> Plan:
    """Read the input and the users' current methods, and decide every change. Never writes."""
    cells = load_cells(source, users=users, default_region=default_region)
    wanted = [cell.user for cell in cells if not cell.error and not cell.excluded]
    try:
        current = read_current(client, wanted)
    except ForbiddenError as exc:
        raise ForbiddenError(
            f"{exc.message}. Fix: grant the app UserAuthenticationMethod.Read.All (plan) or "
            "UserAuthenticationMethod.ReadWrite.All (apply) as an application permission, with admin consent",
            status=exc.status,
            code=exc.code,
            request_id=exc.request_id,
        ) from exc
    return build_plan(cells, current, Mode(mode))


def apply(plan_or_source: Plan | str | Path, *, client: GraphClient, **plan_options) -> RunResult:
    """Carry out a plan (or plan the input first, then carry it out)."""
    the_plan = plan_or_source if isinstance(plan_or_source, Plan) else plan(plan_or_source, client=client, **plan_options)
    return execute(the_plan, client)


def _cell(row, user, phone_type, raw, row_region, error, known_users, region_default) -> Cell:
    base = {"row": int(row), "user": user, "phone_type": phone_type, "raw": raw, "region": row_region}
    if error:
        return Cell(**base, error=error)
    if known_users is not None and user_key(user) not in known_users:
        return Cell(**base, excluded="not in the users file: left out of this run")
    region, problem = normalize_region(row_region)
    if problem:
        return Cell(**base, error=problem)
    region = region or (known_users or {}).get(user_key(user), "") or region_default
    result = normalize_number(raw, region)
    warning = ""
    if result.number and phone_type != PhoneType.OFFICE.value and result.number_type in _CANT_SMS:
        warning = f"{result.number_type.replace('_', ' ')} number in {phone_type}: it can't receive SMS codes"
    return Cell(**{**base, "region": region}, number=result.number, error=result.error, warning=warning)
