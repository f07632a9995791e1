"""The run-wide adaptive write limiter."""

import asyncio

import pytest

from bulkphone._clock import FakeClock, SystemClock
from bulkphone._throttle import RateLimiter


def acquire_times(limiter, count):
    async def go():
        times = []
        for _ in range(count):
            await limiter.acquire()
            times.append(limiter.clock.now())
        return times

    return asyncio.run(go())


def test_writes_are_spaced_at_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, start_fraction=1.0)
    times = acquire_times(limiter, 21)
    assert times[-1] - times[0] == pytest.approx(2.0)


def test_it_never_exceeds_the_ceiling_for_long_even_when_it_keeps_succeeding():
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock)

    async def go():
        for _ in range(1000):
            await limiter.acquire()
            limiter.succeeded()

    start = clock.now()
    asyncio.run(go())
    elapsed = clock.now() - start
    assert limiter.rate == 20
    assert 1000 / elapsed <= 20 * 1.02  # at most the one-second burst above the ceiling


def test_started_below_the_ceiling_it_climbs_and_steps_down_once_per_pause():
    clock = FakeClock()
    limiter = RateLimiter(40, clock=clock, start_fraction=0.5)
    assert limiter.rate == 20
    for _ in range(100):
        limiter.succeeded()
    assert limiter.rate == 40
    limiter.throttled_for(1)
    assert limiter.rate == pytest.approx(32)
    limiter.throttled_for(1)  # more 429s from requests already in flight: the same signal
    assert limiter.rate == pytest.approx(32)
    clock.advance(1)
    for _ in range(16):
        limiter.succeeded()
    assert limiter.rate == 40
    limiter.throttled_for(1)
    assert limiter.rate == pytest.approx(32)


def test_near_limit_holds_the_climb_for_a_second():
    clock = FakeClock()
    limiter = RateLimiter(40, clock=clock, start_fraction=0.5)
    limiter.near_limit()
    limiter.succeeded()
    assert limiter.rate == 20
    clock.advance(1.5)
    limiter.succeeded()
    assert limiter.rate > 20


def test_a_429_pauses_every_waiting_worker_until_retry_after():
    clock = SystemClock()
    limiter = RateLimiter(1000, clock=clock, start_fraction=1.0)

    async def go():
        start = clock.now()
        limiter.throttled_for(0.3)
        finished = await asyncio.gather(*(worker() for _ in range(8)))
        return start, finished

    async def worker():
        await limiter.acquire()
        return clock.now()

    start, finished = asyncio.run(go())
    assert min(finished) - start >= 0.29
    assert limiter.paused_seconds == pytest.approx(0.3)
    assert limiter.throttled == 1


def test_budget_refilled_during_a_pause_is_not_lost():
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, start_fraction=1.0)
    acquire_times(limiter, 5)
    limiter.throttled_for(2)
    resume = clock.now() + 2
    times = acquire_times(limiter, 8)
    assert times[0] == pytest.approx(resume)
    # after the pause, a short burst uses what the tenant refilled meanwhile
    assert times[5] - times[0] < 5 / limiter.rate


def test_a_reads_429_pauses_the_writes_without_lowering_their_rate():
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock, start_fraction=1.0)
    limiter.throttled_for(3, write=False)
    assert limiter.rate == 20
    assert acquire_times(limiter, 1)[0] == pytest.approx(clock.now()) and clock.sleeps[0] == pytest.approx(3)


def test_a_write_that_failed_without_a_429_hands_its_token_back_up_to_one_seconds_burst():
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, start_fraction=1.0)
    acquire_times(limiter, 1)
    start = clock.now()
    limiter.refund()
    acquire_times(limiter, 1)
    assert clock.now() == start  # the handed-back token was used at once
    for _ in range(50):
        limiter.refund()
    times = acquire_times(limiter, 12)
    assert times[9] == start and times[10] > start  # never more than the one second's burst



def test_after_a_429_it_climbs_back_to_the_rate_graph_accepted_even_near_the_limit():
    clock = FakeClock()
    limiter = RateLimiter(40, clock=clock, start_fraction=0.5)
    limiter.throttled_for(1)  # a 429 at 20/s (another app's burst, say)
    assert limiter.rate == 16
    clock.advance(1)
    for _ in range(10):
        limiter.near_limit()  # running near the limit, every answer says so
        limiter.succeeded()
    assert limiter.rate == 20  # back to the rate that drew the 429, and held there while Graph is near its limit
    clock.advance(1.5)
    limiter.succeeded()
    assert limiter.rate == 21


def test_reads_go_unpaced_until_graph_says_their_budget_is_spent_then_at_the_pace_it_granted():
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock)
    limiter.throttled_for(5, write=True)
    asyncio.run(limiter.reads.acquire(20))
    assert clock.sleeps == []  # a write's 429 says nothing about reads, and reads start unpaced
    limiter.reads.granted(300)  # answered within Graph's 10-second read window
    limiter.reads.spent(3)
    assert limiter.reads.rate == 30.0  # what Graph granted over its window
    asyncio.run(limiter.reads.acquire(20))
    asyncio.run(limiter.reads.acquire(20))
    # Everyone waits out the Retry-After; then 20 reads cost 2/3 s at 30 a second.
    assert clock.sleeps[0] == 3 and sum(clock.sleeps[1:]) == pytest.approx(20 / 30 * 2)
    limiter.reads.granted(50)
    assert limiter.reads.rate == pytest.approx(31.0)  # creeping up while nothing is refused
