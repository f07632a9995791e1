"""Carry out a plan against Graph, one user at a time, never writing twice or wrongly.

After any write whose outcome is unknown (a dropped connection, a 5xx, a 404 on a method
the plan saw) the user's methods are read again and the change is re-decided from what
Graph now holds, so a lost response never causes a duplicate or a wrong write.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from tenacity import RetryCallState

from .errors import AmbiguousWriteError, AuthError, ForbiddenError, GraphError, NotFoundError, PermanentError
from .graph import GraphClient
from .model import Action, PhoneMethod, PhoneType, Status
from .normalize import canonical
from .planner import Plan, PlanItem

__all__ = ["Outcome", "RunResult", "execute"]

NOT_UNIQUE = "phoneNumberNotUnique"
NOT_UNIQUE_WARNING = "phoneNumberNotUnique: another user has this mobile number, so it can't be used for SMS sign-in"


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
    stopped: str = ""  # why the run stopped before the end (a systemic error), "" if it did not
    stats: dict = field(default_factory=dict)

    def outcome(self, item: PlanItem) -> Outcome:
        return self.outcomes[(item.row, item.phone_type)]


class _Verdict(enum.Enum):
    DONE = "done"
    AGAIN = "again"
    CONFLICT = "conflict"


class StopRun(Exception):
    """A systemic error (401/403): every further request would fail the same way."""


INTERRUPTED = "interrupted (Ctrl-C)"


def execute(plan: Plan, client: GraphClient) -> RunResult:
    started = time.monotonic()
    outcomes: dict[tuple[int, str], Outcome] = {}
    for item in plan.items:
        if item.action is Action.SKIP:
            outcomes[(item.row, item.phone_type)] = Outcome(Status.SKIPPED, error=item.error, warning=item.warning)
        elif item.action is Action.NOOP:
            outcomes[(item.row, item.phone_type)] = Outcome(Status.OK, warning=item.warning)
    stopped = ""
    done_writes = 0
    for changes in plan.changes_by_user():
        failed: PlanItem | None = None
        for item in changes:
            if stopped:
                outcome = Outcome(Status.SKIPPED, error=f"not attempted: the run stopped ({stopped})")
            elif failed is not None:
                outcome = Outcome(
                    Status.SKIPPED,
                    error=f"not attempted: the {failed.action} of {failed.phone_type} (row {failed.row}) failed first",
                )
            else:
                try:
                    outcome = _apply_change(item, client, first_write=done_writes == 0)
                except StopRun as exc:
                    stopped = str(exc)
                    outcome = Outcome(Status.FAILED, error=stopped)
                except KeyboardInterrupt:
                    stopped = INTERRUPTED
                    outcome = Outcome(
                        Status.FAILED, error="interrupted during this change: run plan again to see whether it landed"
                    )
            if item.warning and not outcome.warning:
                outcome.warning = item.warning
            if outcome.status is Status.OK:
                done_writes += 1
            else:
                failed = item
            outcomes[(item.row, item.phone_type)] = outcome
    stats = {
        "reads": client.reads,
        "writes": client.writes,
        "throttled": client.throttled,
        "retries": client.policy.retries,
        "reconciled": sum(outcome.reconciled for outcome in outcomes.values()),
        "seconds": round(time.monotonic() - started, 3),
    }
    return RunResult(plan=plan, outcomes=outcomes, stopped=stopped, stats=stats)


def _apply_change(item: PlanItem, client: GraphClient, *, first_write: bool) -> Outcome:
    outcome = Outcome(Status.OK)

    def unknown_outcome(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return isinstance(exc, (AmbiguousWriteError, NotFoundError))

    try:
        for attempt in client.policy.retrying(unknown_outcome):
            with attempt:
                outcome.attempts = attempt.retry_state.attempt_number
                if outcome.attempts > 1:
                    methods = client.list_phone_methods(item.user)
                    verdict, why = _reconcile(item, methods)
                    if verdict is _Verdict.DONE:
                        return _landed(outcome, methods.get(item.type))
                    if verdict is _Verdict.CONFLICT:
                        return _failed(outcome, why)
                _perform(item, client, outcome)
                return outcome
    except AuthError as exc:
        raise StopRun(_systemic_message(exc)) from exc
    except ForbiddenError as exc:
        if first_write:
            raise StopRun(_systemic_message(exc)) from exc
        # Other users' writes went through, so the permission is there: this user is protected
        # (a privileged admin, or the caller's own account).
        _note_http(outcome, exc)
        return _failed(
            outcome,
            f"{exc.message}: this user's methods need a Privileged Authentication Administrator, "
            "or this is the signed-in admin's own account (change it in My Sign-Ins instead)",
        )
    except (AmbiguousWriteError, NotFoundError) as exc:
        # Out of attempts with the outcome still unknown: one last look decides it.
        _note_http(outcome, exc)
        try:
            methods = client.list_phone_methods(item.user)
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


def _perform(item: PlanItem, client: GraphClient, outcome: Outcome) -> None:
    phone_type = item.type
    method: PhoneMethod | None = None
    if item.action is Action.CREATE:
        method = client.create_phone_method(item.user, phone_type, item.number)
    elif item.action is Action.UPDATE:
        client.update_phone_method(item.user, phone_type, item.number)
        if phone_type is PhoneType.MOBILE:
            # v1.0 answers an update with 204; the SMS sign-in verdict needs a read.
            method = client.get_phone_method(item.user, phone_type)
    else:
        client.delete_phone_method(item.user, phone_type)
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


def _reconcile(item: PlanItem, methods: dict[PhoneType, PhoneMethod]) -> tuple[_Verdict, str]:
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


def _systemic_message(exc: GraphError) -> str:
    if isinstance(exc, AuthError):
        return f"{exc.message}. Fix: check that the token is for this tenant and for Graph (scope <graph-url>/.default)"
    return (
        f"{exc.message}. Fix: grant the app the application permission UserAuthenticationMethod.ReadWrite.All "
        "(or UserAuthMethod-Phone.ReadWrite.All) with admin consent"
    )
