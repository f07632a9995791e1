"""The one retry policy: what is transient, how long to wait, when to give up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, TypeVar

from tenacity import RetryCallState, Retrying, stop_after_attempt, stop_after_delay, wait_exponential, wait_random

from .clock import Clock, SystemClock
from .errors import GraphError, NotFoundError, ThrottledError, TransientError

__all__ = ["RetryPolicy"]

T = TypeVar("T")


@dataclass
class RetryPolicy:
    attempts: int = 6
    max_seconds: float = 600.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    # A user created a moment ago can answer 404 while the directory replicates.
    not_found_attempts: int = 4
    clock: Clock = field(default_factory=SystemClock)
    retries: int = 0  # how many retries this policy has made, for the run summary

    def run(self, fn: Callable[[], T], *, retry_not_found: bool = False, also: tuple[type, ...] = ()) -> T:
        """Call fn, retrying 429, 5xx and connection failures (and `also`)."""

        def should_retry(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, (ThrottledError, TransientError) + also):
                return True
            if retry_not_found and isinstance(exc, NotFoundError):
                return state.attempt_number < self.not_found_attempts
            return False

        return self.retrying(should_retry)(fn)

    def retrying(self, should_retry: Callable[[RetryCallState], bool]) -> Retrying:
        return Retrying(
            retry=should_retry,
            wait=self._wait,
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_seconds),
            sleep=self.clock.sleep,
            before_sleep=self._count,
            reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, GraphError) and exc.retry_after is not None:
            return exc.retry_after
        backoff = wait_exponential(multiplier=self.initial_wait, max=self.max_wait) + wait_random(0, self.initial_wait)
        return backoff(state)

    def _count(self, state: RetryCallState) -> None:
        self.retries += 1
