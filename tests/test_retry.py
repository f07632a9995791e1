"""The one retry policy's predicates and waits."""

import asyncio

import pytest

from bulkphone._clock import FakeClock
from bulkphone._errors import (
    AmbiguousWriteError,
    AuthError,
    ForbiddenError,
    NotFoundError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from bulkphone._retry import RetryPolicy


@pytest.mark.parametrize(
    "error, retried",
    [
        (ThrottledError("429", status=429), True),
        (TransientError("503", status=503), True),
        (TransientError("connection reset"), True),
        (PermanentError("400", status=400), False),
        (AuthError("401", status=401), False),
        (ForbiddenError("403", status=403), False),
        (AmbiguousWriteError("lost"), False),  # the executor reads back instead
        (NotFoundError("404", status=404), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_is_transient(error, retried):
    assert RetryPolicy().should_retry(error, 1) is retried


def test_attempts_are_capped():
    policy = RetryPolicy(attempts=3)
    error = TransientError("503")
    assert [policy.should_retry(error, n) for n in (1, 2, 3)] == [True, True, False]


def test_retry_after_wins_over_backoff_and_backoff_is_capped_with_jitter():
    policy = RetryPolicy(initial_wait=0.5, max_wait=4)
    assert policy.wait_for(ThrottledError("429", retry_after=12), 1) == 12
    waits = [policy.wait_for(TransientError("503"), n) for n in range(1, 8)]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 1.5
    assert all(4 <= w <= 4.5 for w in waits[4:])


def test_run_retries_until_success_without_real_sleeping():
    clock = FakeClock()
    policy = RetryPolicy(clock=clock)
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ThrottledError("429", retry_after=2)
        return "ok"

    retried = []
    assert asyncio.run(policy.run(flaky, on_retry=lambda exc, attempt, wait: retried.append((attempt, wait)))) == "ok"
    assert clock.sleeps == [2, 2] and retried == [(1, 2), (2, 2)]


def test_run_passes_permanent_errors_through_at_once():
    policy = RetryPolicy(clock=FakeClock())
    calls = []

    async def broken():
        calls.append(1)
        raise PermanentError("400")

    with pytest.raises(PermanentError):
        asyncio.run(policy.run(broken))
    assert len(calls) == 1
