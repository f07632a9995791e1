"""The one retry policy: what is transient, how long to wait, when to give up.

Each operation has exactly one retry loop built from this policy (a read in GraphClient, the
sub-requests of a batch in GraphClient._read_many, a write in the executor), never a loop
around a call that retries itself. Retries are reported through `on_retry`, so the policy
holds no run state and one policy can serve any number of runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, stop_after_delay

from ._clock import Clock, SystemClock
from ._errors import GraphError, ThrottledError, TransientError

__all__ = ["OnRetry", "RetryPolicy"]

T = TypeVar("T")
# Told of each retry before its wait: the error, the attempt that failed, the seconds to wait.
OnRetry = Callable[[BaseException, int, float], None]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    max_seconds: float = 600.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    clock: Clock = field(default_factory=SystemClock)

    def should_retry(self, exc: BaseException | None, attempt: int) -> bool:
        """Is `exc`, raised by attempt number `attempt`, worth another attempt? Only when
        nothing can have happened (429, a 5xx or lost connection on a read, no connection)."""
        return attempt < self.attempts and isinstance(exc, (ThrottledError, TransientError))

    def wait_for(self, exc: BaseException | None, attempt: int) -> float:
        """Retry-After when Graph gave one, else capped exponential backoff with jitter."""
        if isinstance(exc, GraphError) and exc.retry_after is not None:
            return exc.retry_after
        backoff = min(self.max_wait, self.initial_wait * 2 ** (attempt - 1))
        return backoff + random.uniform(0, self.initial_wait)

    async def run(self, fn: Callable[[], Awaitable[T]], *, on_retry: OnRetry | None = None) -> T:
        """Await fn(), retrying 429, 5xx and connection failures."""

        def transient(state: RetryCallState) -> bool:
            return self.should_retry(_error(state), state.attempt_number)

        return await self.retrying(transient, on_retry=on_retry)(fn)

    def retrying(self, predicate: Callable[[RetryCallState], bool], *, on_retry: OnRetry | None = None) -> AsyncRetrying:
        def wait(state: RetryCallState) -> float:
            return self.wait_for(_error(state), state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is not None:
                on_retry(_error(state), state.attempt_number, state.next_action.sleep if state.next_action else 0.0)

        return AsyncRetrying(
            retry=predicate,
            wait=wait,
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_seconds),
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )


def _error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None
