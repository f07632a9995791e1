"""Carry out a plan against Graph: many users at once, each user's changes in order.

Each write has one retry loop (here): a 429 or a request that never left is sent again; after
a write whose outcome is unknown (a dropped connection, a 5xx) the next attempt first reads the
user back and re-decides the change from what Graph now holds, so a lost response never causes
a duplicate or a wrong write. The same read-back settles a 409 phoneNumberNotUnique (typically
saved anyway), a create that meets its own earlier success, changes a killed run left in
flight, and a 404 (a user deleted since the plan: one read says it no longer exists).

Users that were 404 when planned (perhaps new hires still replicating) wait in a side lane,
read again every few seconds for up to `wait_for_new_users`, while everyone else proceeds.

Only run-wide errors stop a run early (401, 403 for several users with nothing succeeding, the
same connection or 5xx failure for many users in a row); a rule about one user (a default
method, a shared number, a user not found) is that user's row to fix.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Protocol

from tenacity import RetryCallState

from ._errors import (
    AmbiguousWriteError,
    AuthError,
    ConflictError,
    ForbiddenError,
    GraphError,
    NotFoundError,
    PermanentError,
)
from ._graph import GraphClient, Methods
from ._logs import event
from ._model import DEFAULT_METHOD, SMS_READY, SMS_SIGN_IN, Action, PhoneMethod, PhoneType, Status
from ._normalize import canonical
from ._planner import Plan, PlanItem, execution_rank

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_WAIT_FOR_NEW_USERS", "INTERRUPTED", "Outcome", "Progress", "Recorder", "RunResult", "execute"]

NOT_UNIQUE = "phoneNumberNotUnique"
NOT_UNIQUE_WARNING = "phoneNumberNotUnique: another user has this mobile number, so it can't be used for SMS sign-in"
INTERRUPTED = "interrupted"
GRANT_WRITE = (
    "grant the app the application permission UserAuthenticationMethod.ReadWrite.All "
    "(or UserAuthMethod-Phone.ReadWrite.All) with admin consent"
)
RESUME_HINT = "run apply again with the same input to resume"
DEFAULT_CONCURRENCY = 16
# Directory replication of a new user takes "tens of seconds, up to a minute or two".
DEFAULT_WAIT_FOR_NEW_USERS = 120.0
# A user not yet replicated is read again after this many seconds, growing to the cap.
NEW_USER_POLL = (2.0, 1.5, 15.0)
# This many users in a row failing with the same run-wide error means the error is not about them.
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
    run_wide: bool = False  # the failure may be about the run (connection, 5xx), not about this user
    already_done: bool = False  # a reviewed plan applied again: Graph already holds what the plan wanted


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
    def __init__(self, plan, client, *, recorder, done, in_doubt, stop, progress, max_concurrency, verify_unchanged,
                 wait_for_new_users) -> None:
        self.plan = plan
        self.verify_unchanged = verify_unchanged
        self.wait_for_new_users = wait_for_new_users
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
        waiting: dict[str, list[PlanItem]] = defaultdict(list)  # users 404 when planned: all their rows
        for item in self.plan.items:
            if item.awaits_user and _key(item) not in self.done:
                waiting[item.key].append(item)
            elif item.action is Action.SKIP:
                self.outcomes[_key(item)] = Outcome(Status.SKIPPED, error=item.error, warning=item.warning)
            elif item.action is Action.NOOP:
                self.outcomes[_key(item)] = Outcome(Status.OK, warning=item.warning)
        groups = self.plan.changes_by_user()
        queue: asyncio.Queue[tuple[list[PlanItem], bool] | None] = asyncio.Queue()
        for changes in groups:
            if changes[0].key not in waiting:
                queue.put_nowait((changes, False))
        count = min(self.max_concurrency, len(groups))
        tasks = [asyncio.create_task(self._worker(queue)) for _ in range(count)]
        tasks.append(asyncio.create_task(self._side_lane(list(waiting.values()), queue, count)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        for item in self.plan.items:
            if _key(item) not in self.outcomes:
                reason = f"{INTERRUPTED}: {RESUME_HINT}" if self.stopped == INTERRUPTED else f"the run stopped ({self.stopped})"
                self.outcomes[_key(item)] = Outcome(Status.SKIPPED, error=f"not attempted: {reason}")
        counters = self.client.counters
        stats = {
            "reads": counters.reads,
            "writes": counters.writes,
            "batches": counters.batches,
            "batched_reads": counters.batched_reads,
            "throttled": counters.throttled,
            "retries": counters.retries,
            "reconciled": sum(outcome.reconciled for outcome in self.outcomes.values()),
            "resumed": len(self.done),
            "seconds": round(time.monotonic() - self.started, 3),
        }
        return RunResult(plan=self.plan, outcomes=self.outcomes, stopped=self.stopped, stats=stats)

    def _halted(self) -> bool:
        if self.stop is not None and self.stop.is_set() and not self.stopped:
            self.stopped = INTERRUPTED
        return bool(self.stopped)

    async def _worker(self, queue: asyncio.Queue) -> None:
        while (entry := await queue.get()) is not None:
            if not self._halted():
                await self._user(*entry)

    async def _side_lane(self, waiting: list[list[PlanItem]], queue: asyncio.Queue, workers: int) -> None:
        """Read users that were 404 when planned every few seconds until they appear (then a
        worker takes their changes, reading them back before any write) or the wait is over."""
        clock = self.client.policy.clock
        deadline = clock.now() + self.wait_for_new_users
        pause, growth, longest = NEW_USER_POLL
        try:
            while waiting and not self._halted():
                event("users.waiting", count=len(waiting), seconds_left=round(max(0.0, deadline - clock.now()), 1))
                try:
                    answers = await self.client.read_phone_methods([changes[0].user for changes in waiting])
                except (AuthError, ForbiddenError) as exc:
                    self.stopped = self.stopped or f"{exc.message}. Fix: {GRANT_WRITE}"
                    return
                still = []
                for items in waiting:
                    if isinstance(answers[items[0].user], GraphError):
                        still.append(items)
                        continue
                    for item in items:
                        if item.action is Action.NOOP:
                            self.outcomes[_key(item)] = Outcome(Status.OK, warning=item.warning)
                    changes = sorted((i for i in items if i.action.writes), key=execution_rank)
                    if changes:
                        queue.put_nowait((changes, True))
                waiting = still
                left = deadline - clock.now()
                if not waiting or left <= 0:
                    break
                await self._nap(min(pause, left))
                pause = min(longest, pause * growth)
            if not self._halted():
                for items in waiting:
                    self._never_appeared(items)
        finally:
            for _ in range(workers):
                queue.put_nowait(None)

    async def _nap(self, seconds: float) -> None:
        """Sleep, but wake within a second of a stop (Ctrl-C, or a run-wide error)."""
        clock = self.client.policy.clock
        end = clock.now() + seconds
        while not self._halted() and (left := end - clock.now()) > 0:
            await clock.sleep(min(left, 1.0))

    def _never_appeared(self, items: list[PlanItem]) -> None:
        error = (
            f"user not found: Graph still answered 404 after waiting {self.wait_for_new_users:g} s for a new user "
            "to replicate. Fix: check the UPN or object id; for a user created moments ago, run apply again later"
        )
        for item in items:
            outcome = Outcome(Status.SKIPPED, error=error, http_status=404)
            if item.action.writes:
                self._record(item, outcome)
            else:
                self.outcomes[_key(item)] = outcome

    async def _user(self, changes: list[PlanItem], settle: bool = False) -> None:
        failed: PlanItem | None = None
        drift, already = ("", set()) if settle else await self._drift(changes)
        for item in changes:
            if _key(item) in self.done:
                outcome = self.done[_key(item)]
            elif self._halted():
                return
            elif _key(item) in already:
                outcome = Outcome(Status.OK, already_done=True)
            elif drift:
                outcome = Outcome(Status.SKIPPED, error=f"changed since plan: {drift}: make a new plan and review it")
            elif failed is not None:
                outcome = Outcome(
                    Status.SKIPPED,
                    error=f"not attempted: the {failed.action} of {failed.phone_type} (row {failed.row}) failed first",
                )
            else:
                outcome = await self._change(item, settle or _key(item) in self.in_doubt)
            if outcome.status is not Status.OK and failed is None:
                failed = item
            if outcome.status is Status.FAILED:
                event("change.failed", logging.WARNING, row=item.row, user=item.user, phoneType=item.phone_type,
                      action=item.action.value, error=outcome.error, httpStatus=outcome.http_status,
                      requestId=outcome.request_id)
            self._record(item, outcome)
        self._watch_for_systemic(failed)

    def _record(self, item: PlanItem, outcome: Outcome) -> None:
        if item.warning and not outcome.warning:
            outcome.warning = item.warning
        self.outcomes[_key(item)] = outcome
        self.finished += 1
        if self.progress is not None:
            counters = self.client.counters
            self.progress(Progress(self.finished, self.total, counters.writes, counters.throttled,
                                   time.monotonic() - self.started))

    async def _drift(self, changes: list[PlanItem]) -> tuple[str, set[tuple[int, str]]]:
        """For a reviewed plan: how the user's methods differ from what the plan saw ("" if not),
        and which changes Graph already holds (the plan applied before: nothing to write).

        Each method must be as the plan saw it or as the plan wants it; anything else is a change
        since the plan, and the user is left alone."""
        if not self.verify_unchanged or any(_key(i) in self.done or _key(i) in self.in_doubt for i in changes):
            return "", set()
        try:
            methods = await self.client.list_phone_methods(changes[0].user)
        except NotFoundError:
            return "the user no longer exists (Graph answers 404; it was found when the plan was made)", set()
        except GraphError as exc:
            return f"couldn't read the user's methods again ({exc.message})", set()
        already = set()
        for item in self.seen[changes[0].key]:
            if item.is_setting:  # the numbers decide whether the plan still holds
                continue
            now = canonical(methods[item.type].phone_number if item.type in methods else "")
            wanted = canonical(item.number) if item.action in (Action.CREATE, Action.UPDATE) else (
                "" if item.action is Action.DELETE else canonical(item.current))
            if item.action.writes and now == wanted and now != canonical(item.current):
                already.add(_key(item))
            elif now != canonical(item.current):
                shown = methods[item.type].phone_number if item.type in methods else "empty"
                return f"{item.phone_type} is now {shown}, the plan saw {item.current or 'empty'}", set()
        return "", already

    async def _change(self, item: PlanItem, settle_first: bool) -> Outcome:
        if self.recorder is not None:
            self.recorder.started(item)
        try:
            outcome = await _apply_change(item, self.client, settle_first=settle_first)
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
        """Stop on errors about the run; a user's own rule (400, 404, 409) neither counts nor resets."""
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
        if outcome.run_wide:
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
    wait_for_new_users: float = DEFAULT_WAIT_FOR_NEW_USERS,
) -> RunResult:
    """Apply the plan's changes, `max_concurrency` users at a time.

    `done` holds outcomes of a resumed run (not redone); `in_doubt` the changes it left in
    flight (read back before any write). Setting `stop` ends the run after the requests in
    flight: the rest is reported as not attempted. With `verify_unchanged` (a reviewed plan
    applied later) each user is read again first and skipped if it changed since the plan.
    Users that were 404 when planned are waited for up to `wait_for_new_users` seconds.
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
        wait_for_new_users=max(0.0, wait_for_new_users),
    )
    return await run.run()


async def _apply_change(item: PlanItem, client: GraphClient, *, settle_first: bool) -> Outcome:
    """One change, in one retry loop; after an unknown outcome the next attempt reads back first."""
    outcome = Outcome(Status.OK)
    uncertain = settle_first

    def worth_another_attempt(state: RetryCallState) -> bool:
        # What the policy calls transient (nothing happened, or a read-back failed), and a write
        # whose outcome is unknown: the next attempt reads back before writing again.
        exc = state.outcome.exception() if state.outcome else None
        return isinstance(exc, AmbiguousWriteError) or client.policy.should_retry(exc, state.attempt_number)

    try:
        async for attempt in client.policy.retrying(worth_another_attempt, on_retry=client.retried):
            with attempt:
                outcome.attempts = attempt.retry_state.attempt_number
                if uncertain:
                    verdict, why, method = await _read_back(item, client)
                    uncertain = False
                    if verdict is _Verdict.DONE:
                        return _landed(outcome, method)
                    if verdict is _Verdict.CONFLICT:
                        return _failed(outcome, why)
                try:
                    await _perform(item, client, outcome)
                except AmbiguousWriteError:
                    uncertain = True
                    raise
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
    except (AmbiguousWriteError, ConflictError, NotFoundError) as exc:
        return await _settle(item, client, outcome, exc)
    except PermanentError as exc:
        _note_http(outcome, exc)
        if item.action is Action.CREATE and "already exist" in exc.message.lower():
            return await _settle(item, client, outcome, exc)
        return _failed(outcome, _permanent_message(item, exc))
    except GraphError as exc:
        _note_http(outcome, exc)
        outcome.run_wide = True
        return _failed(outcome, f"gave up after {outcome.attempts} attempts: {exc.message}")


async def _settle(item: PlanItem, client: GraphClient, outcome: Outcome, exc: GraphError) -> Outcome:
    """The write's outcome is unknown or surprising: a read of the user decides it. It runs after
    the write's retry loop, so the read has its own retries: a 503 on it must not leave a write
    that Graph typically saves (409 phoneNumberNotUnique) reported as unknown."""
    _note_http(outcome, exc)
    try:
        verdict, why, method = await _read_back(item, client, retry=True)
    except NotFoundError:
        return _failed(outcome, "user no longer exists: it was found when the plan was made, and Graph now answers 404 "
                                "(deleted since?). Fix: remove the row, or restore the user and run again")
    except GraphError as read_error:
        outcome.run_wide = isinstance(exc, AmbiguousWriteError)
        return _failed(outcome, f"outcome unknown: {exc.message}; reading back failed too: {read_error.message}")
    if verdict is _Verdict.DONE:
        outcome.http_status = None
        outcome.request_id = ""
        _landed(outcome, method)
        if isinstance(exc, ConflictError) and not outcome.warning:
            outcome.warning = NOT_UNIQUE_WARNING
        return outcome
    if isinstance(exc, ConflictError):
        return _failed(outcome, f"{exc.message}; the number was not saved. Fix: give this user a mobile number no other "
                                "user has, or put the shared number in alternateMobile or office")
    if isinstance(exc, AmbiguousWriteError):
        outcome.run_wide = True
        return _failed(outcome, why or f"gave up after {outcome.attempts} attempts: {exc.message}")
    return _failed(outcome, why or _permanent_message(item, exc))


async def _read_back(
    item: PlanItem, client: GraphClient, *, retry: bool = False
) -> tuple[_Verdict, str, PhoneMethod | None]:
    """A read of what Graph holds now for this change: whether it is done, still to do, or
    overtaken, and the method it concerns. Inside the write's retry loop it is one request
    (the loop retries it); after the loop, retry=True."""
    if item.phone_type == DEFAULT_METHOD:
        preferences = await client.get_sign_in_preferences(item.user, retry=retry)
        return (_Verdict.DONE if preferences.default == item.number else _Verdict.AGAIN), "", None
    methods = await client.list_phone_methods(item.user, retry=retry)
    if item.phone_type == SMS_SIGN_IN:
        mobile = methods.get(PhoneType.MOBILE)
        if mobile is None:
            return _Verdict.CONFLICT, "changed during the run: the mobile method was deleted", None
        enabled = mobile.sms_sign_in_state == SMS_READY
        return (_Verdict.DONE if enabled == (item.number == "enabled") else _Verdict.AGAIN), "", mobile
    verdict, why = _reconcile(item, methods)
    return verdict, why, methods.get(item.type)


async def _perform(item: PlanItem, client: GraphClient, outcome: Outcome) -> None:
    if item.phone_type == DEFAULT_METHOD:
        if item.number == "system":
            await client.set_sign_in_preferences(item.user, system_preferred=True)
        else:  # the user's own default counts only while Entra doesn't choose
            await client.set_sign_in_preferences(item.user, preferred=item.number, system_preferred=False)
        return
    if item.phone_type == SMS_SIGN_IN:
        await client.set_sms_sign_in(item.user, item.number == "enabled")
        return
    phone_type = item.type
    method: PhoneMethod | None = None
    if item.action is Action.CREATE:
        method = await client.create_phone_method(item.user, phone_type, item.number)
    elif item.action is Action.UPDATE:
        await client.update_phone_method(item.user, phone_type, item.number)
        if phone_type is PhoneType.MOBILE:
            # v1.0 answers an update with 204; the SMS sign-in verdict needs a read. It is only
            # a note on a change already made, so one try, and no retry of the write for it.
            try:
                method = await client.get_phone_method(item.user, phone_type, retry=False)
            except GraphError:
                method = None
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
            f"Graph won't delete {item.phone_type}: it is the user's default sign-in method and the user has other "
            f"methods ({exc.message}). Fix: give the user another default in the defaultMethod column (e.g. sms for "
            "the mobile) in the same row, then run again: the default moves before the delete"
        )
    if item.phone_type == SMS_SIGN_IN and NOT_UNIQUE.lower() in text:
        return (f"another user has this mobile number, so SMS sign-in can't be turned on ({exc.message}). Fix: give "
                "this user a mobile number no other user has")
    if item.phone_type == SMS_SIGN_IN and "policy" in text:
        return (f"SMS sign-in isn't allowed for this user ({exc.message}). Fix: include the user in the SMS sign-in "
                "policy (Entra admin center → Authentication methods → SMS), then run again")
    if item.phone_type == DEFAULT_METHOD:
        return f"Graph refused this default method ({exc.message}). Fix: give a default the user has a method for"
    if "already exist" in text:
        return f"{item.phone_type} was added by someone else since the plan: run again to update it"
    if isinstance(exc, NotFoundError):
        return f"{exc.message}: the {item.phone_type} method is gone; make a new plan"
    return exc.message
