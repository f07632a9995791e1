"""Carry out a plan against Graph: many users at once, each user's changes in order.

After any write whose outcome is unknown (a dropped connection, a 5xx, a 404 on a method
the plan saw) the user's methods are read again and the change is re-decided from what
Graph now holds, so a lost response never causes a duplicate or a wrong write. The same
read-back settles changes that a killed run left in flight.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

from tenacity import RetryCallState

from .errors import AmbiguousWriteError, AuthError, ForbiddenError, GraphError, NotFoundError, PermanentError
from .graph import GraphClient, Methods
from .logs import event
from .model import Action, PhoneMethod, PhoneType, Status
from .normalize import canonical
from .planner import Plan, PlanItem

__all__ = ["INTERRUPTED", "Outcome", "Progress", "Recorder", "RunResult", "execute"]

NOT_UNIQUE = "phoneNumberNotUnique"
NOT_UNIQUE_WARNING = "phoneNumberNotUnique: another user has this mobile number, so it can't be used for SMS sign-in"
INTERRUPTED = "interrupted"
GRANT_WRITE = (
    "grant the app the application permission UserAuthenticationMethod.ReadWrite.All "
    "(or UserAuthMethod-Phone.ReadWrite.All) with admin consent"
)
RESUME_HINT = "run apply again with the same input to resume"
DEFAULT_CONCURRENCY = 16
# This many users in a row failing with the same error means the error is not about them.
SAME_ERROR_LIMIT = 10
# A 403 can be about one protected user; this many with no write succeeding means the app lacks permission.
FORBIDDEN_LIMIT = 3


@dataclass
class Outcome:
    status: Status
    error: str = ""
    warning: str = ""
    attempts: int = 0
    http_status: int | None = None
    request_id: str = ""
    sms_sign_in_state: str = ""
    reconciled: bool = False


@dataclass
class RunResult:
    plan: Plan
    outcomes: dict[tuple[int, str], Outcome]
    stopped: str = ""  # INTERRUPTED, or why a systemic error stopped the run; "" if it ran to the end
    stats: dict = field(default_factory=dict)

    def outcome(self, item: PlanItem) -> Outcome:
        return self.outcomes[(item.row, item.phone_type)]


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    writes: int
    throttled: int
    seconds: float


class Recorder(Protocol):
    def started(self, item: PlanItem) -> None: ...

    def finished(self, item: PlanItem, outcome: Outcome) -> None: ...


class _Verdict(enum.Enum):
    DONE = "done"
    AGAIN = "again"
    CONFLICT = "conflict"


class StopRun(Exception):
    """A systemic error (401/403): every further request would fail the same way."""


def _key(item: PlanItem) -> tuple[int, str]:
    return (item.row, item.phone_type)


class _Run:
    def __init__(self, plan, client, *, recorder, done, in_doubt, stop, progress, max_concurrency, verify_unchanged) -> None:
        self.plan = plan
        self.verify_unchanged = verify_unchanged
        self.seen: dict[str, list[PlanItem]] = defaultdict(list)  # what the plan saw, per user
        for item in plan.items:
            if item.action is not Action.SKIP:
                self.seen[item.key].append(item)
        self.client = client
        self.recorder = recorder
        self.done = done
        self.in_doubt = in_doubt
        self.stop = stop
        self.progress = progress
        self.max_concurrency = max_concurrency
        self.outcomes: dict[tuple[int, str], Outcome] = {}
        self.stopped = ""
        self.successes = 0
        self.forbidden = 0
        self.same_error: tuple[tuple | None, int] = (None, 0)
        self.started = time.monotonic()
        self.total = plan.write_count
        self.finished = 0

    async def run(self) -> RunResult:
        for item in self.plan.items:
            if item.action is Action.SKIP:
                self.outcomes[_key(item)] = Outcome(Status.SKIPPED, error=item.error, warning=item.warning)
            elif item.action is Action.NOOP:
                self.outcomes[_key(item)] = Outcome(Status.OK, warning=item.warning)
        queue = deque(self.plan.changes_by_user())
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(min(self.max_concurrency, len(queue)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
        for item in self.plan.items:
            if _key(item) not in self.outcomes:
                reason = f"{INTERRUPTED}: {RESUME_HINT}" if self.stopped == INTERRUPTED else f"the run stopped ({self.stopped})"
                self.outcomes[_key(item)] = Outcome(Status.SKIPPED, error=f"not attempted: {reason}")
        counters = self.client.counters
        stats = {
            "reads": counters.reads,
            "writes": counters.writes,
            "batches": counters.batches,
            "throttled": counters.throttled,
            "retries": self.client.policy.retries,
            "reconciled": sum(outcome.reconciled for outcome in self.outcomes.values()),
            "resumed": len(self.done),
            "seconds": round(time.monotonic() - self.started, 3),
        }
        return RunResult(plan=self.plan, outcomes=self.outcomes, stopped=self.stopped, stats=stats)

    def _halted(self) -> bool:
        if self.stop is not None and self.stop.is_set() and not self.stopped:
            self.stopped = INTERRUPTED
        return bool(self.stopped)

    async def _worker(self, queue: deque[list[PlanItem]]) -> None:
        while queue and not self._halted():
            await self._user(queue.popleft())

    async def _user(self, changes: list[PlanItem]) -> None:
        failed: PlanItem | None = None
        drift = await self._drift(changes)
        for item in changes:
            if _key(item) in self.done:
                outcome = self.done[_key(item)]
            elif self._halted():
                return
            elif drift:
                outcome = Outcome(Status.SKIPPED, error=f"changed since plan: {drift}: make a new plan and review it")
            elif failed is not None:
                outcome = Outcome(
                    Status.SKIPPED,
                    error=f"not attempted: the {failed.action} of {failed.phone_type} (row {failed.row}) failed first",
                )
            else:
                outcome = await self._change(item)
            if item.warning and not outcome.warning:
                outcome.warning = item.warning
            if outcome.status is not Status.OK and failed is None:
                failed = item
            if outcome.status is Status.FAILED:
                event("change.failed", logging.WARNING, row=item.row, user=item.user, phoneType=item.phone_type,
                      action=item.action.value, error=outcome.error, httpStatus=outcome.http_status,
                      requestId=outcome.request_id)
            self.outcomes[_key(item)] = outcome
            self.finished += 1
            if self.progress is not None:
                counters = self.client.counters
                self.progress(
                    Progress(self.finished, self.total, counters.writes, counters.throttled, time.monotonic() - self.started)
                )
        self._watch_for_systemic(failed)

    async def _drift(self, changes: list[PlanItem]) -> str:
        """For a reviewed plan: how the user's methods differ from what the plan saw ("" if not)."""
        if not self.verify_unchanged or any(_key(i) in self.done or _key(i) in self.in_doubt for i in changes):
            return ""
        try:
            methods = await self.client.list_phone_methods(changes[0].user)
        except GraphError as exc:
            return f"couldn't read the user's methods again ({exc.message})"
        for item in self.seen[changes[0].key]:
            now = methods.get(item.type)
            if canonical(now.phone_number if now else "") != canonical(item.current):
                return f"{item.phone_type} is now {now.phone_number if now else 'empty'}, the plan saw {item.current or 'empty'}"
        return ""

    async def _change(self, item: PlanItem) -> Outcome:
        if self.recorder is not None:
            self.recorder.started(item)
        try:
            outcome = await _apply_change(item, self.client, settle_first=_key(item) in self.in_doubt)
        except StopRun as exc:
            if not self.stopped:
                self.stopped = str(exc)
            outcome = Outcome(Status.FAILED, error=str(exc))
        if outcome.status is Status.OK:
            self.successes += 1
        if self.recorder is not None:
            self.recorder.finished(item, outcome)
        return outcome

    def _watch_for_systemic(self, failed: PlanItem | None) -> None:
        if failed is None:
            self.same_error = (None, 0)
            return
        outcome = self.outcomes[_key(failed)]
        if outcome.http_status == 403 and self.successes == 0:
            self.forbidden += 1
            if self.forbidden >= FORBIDDEN_LIMIT and not self.stopped:
                self.stopped = (
                    f"{self.forbidden} users got 403 and no write has succeeded: the app lacks permission. "
                    f"Fix: {GRANT_WRITE}"
                )
        error = (outcome.http_status, outcome.error)
        count = self.same_error[1] + 1 if error == self.same_error[0] else 1
        self.same_error = (error, count)
        if count >= SAME_ERROR_LIMIT and not self.stopped:
            self.stopped = f"the last {count} users all failed with the same error: {outcome.error}"
        if self.stopped and self.stopped != INTERRUPTED:
            event("run.stopping", logging.ERROR, reason=self.stopped)


async def execute(
    plan: Plan,
    client: GraphClient,
    *,
    max_concurrency: int = DEFAULT_CONCURRENCY,
    recorder: Recorder | None = None,
    done: dict[tuple[int, str], Outcome] | None = None,
    in_doubt: set[tuple[int, str]] | None = None,
    stop: asyncio.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    verify_unchanged: bool = False,
) -> RunResult:
    """Apply the plan's changes, `max_concurrency` users at a time.

    `done` holds outcomes of a resumed run (not redone); `in_doubt` the changes it left in
    flight (read back before any write). Setting `stop` ends the run after the requests in
    flight: the rest is reported as not attempted. With `verify_unchanged` (a reviewed plan
    applied later) each user is read again first and skipped if it changed since the plan.
    """
    run = _Run(
        plan,
        client,
        recorder=recorder,
        done=done or {},
        in_doubt=in_doubt or set(),
        stop=stop,
        progress=progress,
        max_concurrency=max(1, max_concurrency),
        verify_unchanged=verify_unchanged,
    )
    return await run.run()


async def _apply_change(item: PlanItem, client: GraphClient, *, settle_first: bool) -> Outcome:
    outcome = Outcome(Status.OK)

    def unknown_outcome(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return isinstance(exc, (AmbiguousWriteError, NotFoundError))

    try:
        async for attempt in client.policy.retrying(unknown_outcome):
            with attempt:
                outcome.attempts = attempt.retry_state.attempt_number
                if outcome.attempts > 1 or settle_first:
                    methods = await client.list_phone_methods(item.user)
                    verdict, why = _reconcile(item, methods)
                    if verdict is _Verdict.DONE:
                        return _landed(outcome, methods.get(item.type))
                    if verdict is _Verdict.CONFLICT:
                        return _failed(outcome, why)
                await _perform(item, client, outcome)
                return outcome
    except AuthError as exc:
        raise StopRun(
            f"{exc.message}. Fix: check that the token is for this tenant and for Graph (scope <graph-url>/.default)"
        ) from exc
    except ForbiddenError as exc:
        _note_http(outcome, exc)
        return _failed(
            outcome,
            f"{exc.message}: either the app lacks permission ({GRANT_WRITE}), or this user is protected "
            "(a privileged admin's methods need a Privileged Authentication Administrator; "
            "a signed-in admin's own methods can't be changed here)",
        )
    except (AmbiguousWriteError, NotFoundError) as exc:
        # Out of attempts with the outcome still unknown: one last look decides it.
        _note_http(outcome, exc)
        try:
            methods = await client.list_phone_methods(item.user)
        except GraphError as read_error:
            return _failed(outcome, f"outcome unknown: {exc.message}; reading back failed too: {read_error.message}")
        verdict, why = _reconcile(item, methods)
        if verdict is _Verdict.DONE:
            outcome.http_status = None
            return _landed(outcome, methods.get(item.type))
        return _failed(outcome, why or f"gave up after {outcome.attempts} attempts: {exc.message}")
    except PermanentError as exc:
        _note_http(outcome, exc)
        return _failed(outcome, _permanent_message(item, exc))
    except GraphError as exc:
        _note_http(outcome, exc)
        return _failed(outcome, f"gave up after {outcome.attempts} attempts: {exc.message}")


async def _perform(item: PlanItem, client: GraphClient, outcome: Outcome) -> None:
    phone_type = item.type
    method: PhoneMethod | None = None
    if item.action is Action.CREATE:
        method = await client.create_phone_method(item.user, phone_type, item.number)
    elif item.action is Action.UPDATE:
        await client.update_phone_method(item.user, phone_type, item.number)
        if phone_type is PhoneType.MOBILE:
            # v1.0 answers an update with 204; the SMS sign-in verdict needs a read.
            method = await client.get_phone_method(item.user, phone_type)
    else:
        await client.delete_phone_method(item.user, phone_type)
    _note_sms_state(outcome, method)


def _landed(outcome: Outcome, method: PhoneMethod | None) -> Outcome:
    """The read-back shows the change is in place although its response was lost."""
    outcome.reconciled = True
    _note_sms_state(outcome, method)
    return outcome


def _note_sms_state(outcome: Outcome, method: PhoneMethod | None) -> None:
    if method is not None:
        outcome.sms_sign_in_state = method.sms_sign_in_state
        if method.sms_sign_in_state == NOT_UNIQUE:
            outcome.warning = NOT_UNIQUE_WARNING


def _reconcile(item: PlanItem, methods: Methods) -> tuple[_Verdict, str]:
    """Decide from what Graph holds now whether the change is done, still needed, or overtaken."""
    current = methods.get(item.type)
    now = canonical(current.phone_number) if current else None
    if item.action is Action.DELETE:
        return (_Verdict.DONE, "") if current is None else (_Verdict.AGAIN, "")
    if now == item.number:
        return _Verdict.DONE, ""
    if item.action is Action.CREATE:
        if current is None:
            return _Verdict.AGAIN, ""
        return _Verdict.CONFLICT, f"changed during the run: {item.phone_type} now holds {current.phone_number}"
    if current is None:
        return _Verdict.CONFLICT, f"changed during the run: the {item.phone_type} method was deleted"
    if now == canonical(item.current):
        return _Verdict.AGAIN, ""
    return _Verdict.CONFLICT, f"changed during the run: {item.phone_type} now holds {current.phone_number}"


def _failed(outcome: Outcome, error: str) -> Outcome:
    outcome.status = Status.FAILED
    outcome.error = error
    return outcome


def _note_http(outcome: Outcome, exc: GraphError) -> None:
    outcome.http_status = exc.status
    outcome.request_id = exc.request_id


def _permanent_message(item: PlanItem, exc: GraphError) -> str:
    text = exc.message.lower()
    if "default" in text and item.action is Action.DELETE:
        return (
            f"Graph won't delete the user's default sign-in method ({item.phone_type}): "
            "change the user's default method first, then run again"
        )
    if "already exists" in text:
        return f"{item.phone_type} was added by someone else since the plan: run again to update it"
    return exc.message
