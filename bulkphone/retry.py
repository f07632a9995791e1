"""The one retry policy: what is transient, how long to wait, when to give up.

Used through tenacity for single requests, and by the batch reader for sub-requests that
come back 429/5xx inside a 200 batch response, so both follow the same rules.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, stop_after_delay

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
    retries: int = 0  # retries made under this policy, for the run summary

    def should_retry(self, exc: BaseException | None, attempt: int, *, retry_not_found: bool = False) -> bool:
        """Is `exc`, raised by attempt number `attempt`, worth another attempt?"""
        if attempt >= self.attempts:
            return False
        if isinstance(exc, (ThrottledError, TransientError)):
            return True
        return retry_not_found and isinstance(exc, NotFoundError) and attempt < self.not_found_attempts

    def wait_for(self, exc: BaseException | None, attempt: int) -> float:
        """Retry-After when Graph gave one, else capped exponential backoff with jitter."""
        if isinstance(exc, GraphError) and exc.retry_after is not None:
            return exc.retry_after
        backoff = min(self.max_wait, self.initial_wait * 2 ** (attempt - 1))
        return backoff + random.uniform(0, self.initial_wait)

    async def run(self, fn: Callable[[], Awaitable[T]], *, retry_not_found: bool = False) -> T:
        """Await fn(), retrying 429, 5xx and connection failures (and 404 if asked)."""

        def predicate(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return self.should_retry(exc, state.attempt_number, retry_not_found=retry_not_found)

        return await self.retrying(predicate)(fn)

    def retrying(self, predicate: Callable[[RetryCallState], bool]) -> AsyncRetrying:
        return AsyncRetrying(
            retry=predicate,
            wait=lambda state: self.wait_for(state.outcome.exception() if state.outcome else None, state.attempt_number),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_seconds),
            sleep=self.clock.sleep,
            before_sleep=self._count,
            reraise=True,
        )

    def _count(self, state: RetryCallState) -> None:
        self.retries += 1
