"""One adaptive write-rate limiter for the whole run.

A token bucket whose rate starts at the ceiling (by default Graph's documented one), drops when
Graph answers a write with 429 (multiplicative decrease, once per pause, so a burst of 429s
counts as one signal) and climbs back after every success (additive increase): freely up to
the rate the 429 came at, and beyond it only while Graph doesn't say the app is near its limit
(`x-ms-throttle-limit-percentage`). A 429's Retry-After pauses every worker, not just the one
that was told.

Graph counts writes over a 150-second window (3,000 per window, 20/s on average), not per
second. Normally the bucket holds one second of burst; but the budget Graph frees during a
pause it imposed (up to a whole window's worth) is credited and spent as a burst when the
pause ends, so a long Retry-After after a burst costs no sustained throughput. A 429 after
that drops whatever credit is left. A write that failed without a 429 hands its token back
(Graph's budget counts writes); if Graph counted it after all, its next 429 corrects the rate.

Reads are paced apart (ReadPacer): unpaced until Graph says their budget is spent, then at the
rate Graph granted over its own read window.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ._clock import Clock, SystemClock

__all__ = ["DEFAULT_WRITES_PER_SECOND", "GRAPH_READ_WINDOW_SECONDS", "GRAPH_WRITE_WINDOW_SECONDS", "RateLimiter",
           "ReadPacer"]

# Graph allows 3,000 writes per 2.5 minutes per app per tenant: 20/s sustained. Running at that
# ceiling by default wastes none of the budget; 429s and Retry-After correct it when another job
# of the same app shares the tenant (or lower it with the cap).
DEFAULT_WRITES_PER_SECOND = 20.0
GRAPH_WRITE_WINDOW_SECONDS = 150.0
# Graph counts reads in resource units per 10 seconds (8,000 for a tenant of more than 500 users).
GRAPH_READ_WINDOW_SECONDS = 10.0
# Refilling by rate x wait can land a hair under a whole token; don't wait for the hair.
_EPSILON = 1e-9


class RateLimiter:
    def __init__(
        self,
        ceiling: float = DEFAULT_WRITES_PER_SECOND,
        clock: Clock | None = None,
        *,
        start_fraction: float = 1.0,
        burst_seconds: float = 1.0,
        decrease: float = 0.8,
        climb_seconds: float = 1.0,
        window_seconds: float = GRAPH_WRITE_WINDOW_SECONDS,
    ) -> None:
        if ceiling <= 0:
            raise ValueError("the write ceiling must be positive")
        self.ceiling = ceiling
        self.clock = clock or SystemClock()
        self.rate = ceiling * start_fraction
        self.floor = min(1.0, ceiling)
        self.capacity = max(1.0, ceiling * burst_seconds)
        self.credit_limit = max(self.capacity, ceiling * window_seconds)
        self.decrease = decrease
        # Each success adds 1/climb_seconds: while writes succeed, the rate grows e-fold
        # every climb_seconds until it reaches the ceiling.
        self.step = 1.0 / climb_seconds
        self._tokens = 1.0
        self._updated = self.clock.now()
        self._resume_at = 0.0
        self._hold_until = 0.0
        # Reads have a budget of their own; a write's 429 may be about the write quota alone.
        self.reads = ReadPacer(self.clock)
        self._queue: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self.paused_seconds = 0.0
        self.throttled = 0
        self._throttled_at = 0.0  # the rate the last write's 429 came at

    async def acquire(self) -> None:
        """Wait until this caller may send one write. Callers are served in turn."""
        async with self._lock():
            while True:
                now = self.clock.now()
                wait = self._resume_at - now
                if wait <= 0:
                    self._refill(now)
                    if self._tokens >= 1 - _EPSILON:
                        self._tokens = max(0.0, self._tokens - 1)
                        return
                    wait = (1 - self._tokens) / self.rate
                await self.clock.sleep(wait)

    def refund(self) -> None:
        """A write that failed without a 429 (no connection, a 5xx, a lost response) hands its
        token back, up to one second's burst: the budget is Graph's count of writes, and should
        Graph have counted it after all, its next 429 corrects the rate. (A 429's own token is
        not handed back: the pause's credit already counts what Graph refills.)"""
        if self._tokens < self.capacity:
            self._tokens = min(self.capacity, self._tokens + 1)

    def succeeded(self) -> None:
        if self.clock.now() >= self._hold_until:
            self.rate = min(self.ceiling, self.rate + self.step)

    def throttled_for(self, retry_after: float, *, write: bool = True) -> None:
        """Graph answered 429: everyone waits Retry-After, and (for a write) the rate steps down
        once. A read's 429 pauses the writes too (one budget of resource units) but says
        nothing about the write rate."""
        self.throttled += 1
        now = self.clock.now()
        already_paused = now < self._resume_at
        resume_at = now + retry_after
        if not already_paused:
            # A 429 says the budget is spent now: a credit still banked was wrong.
            self._tokens = 0.0
            self._updated = now
        if resume_at > self._resume_at:
            # Graph refills its budget during the pause at its own pace (the ceiling), whatever
            # our rate was and whatever we learn now: credit the pause, up to a window's worth.
            start = max(self._updated, now)
            self._tokens = min(self.credit_limit, self._tokens + (resume_at - start) * self.ceiling)
            self._updated = resume_at
            self.paused_seconds += resume_at - max(self._resume_at, now)
            self._resume_at = resume_at
        if write and not already_paused:
            self._throttled_at = self.rate
            self.rate = max(self.floor, self.rate * self.decrease)

    def near_limit(self) -> None:
        """Graph says the app is near its limit (`x-ms-throttle-limit-percentage`, sent above 80%
        used): stop climbing for a second, unless the rate is still below the one the last 429
        came at.
        Not a step down: running at the ceiling, every response carries the header, and only
        a 429 says the rate is too high; nor a reason to stay below a rate Graph accepted (a
        429 can be about another app's burst)."""
        if self.rate >= self._throttled_at:
            self._hold_until = self.clock.now() + 1.0

    def _refill(self, now: float) -> None:
        """Add the tokens earned since the last refill, up to one second's burst (a pause's
        credit above that is kept until spent)."""
        if now > self._updated:
            cap = max(self.capacity, self._tokens)
            self._tokens = min(cap, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def _lock(self) -> asyncio.Lock:
        # One limiter may serve several event loops in turn (plan, then apply); a lock
        # belongs to one loop.
        loop = asyncio.get_running_loop()
        if self._queue is None or self._queue[0] is not loop:
            self._queue = (loop, asyncio.Lock())
        return self._queue[1]


class ReadPacer:
    """The pace of reads. Unpaced until Graph says their budget is spent (a batch mostly
    answered 429): then every reader waits out the Retry-After, and reads go on at the rate
    Graph granted over its own read window (the reads it answered in the last 10 s), creeping
    up while nothing is refused, so a spent budget is met again only now and then: as fast as
    Graph allows, and no faster for long."""

    def __init__(self, clock: Clock, *, window_seconds: float = GRAPH_READ_WINDOW_SECONDS, creep: float = 0.02) -> None:
        self.clock = clock
        self.window = window_seconds
        self.creep = creep  # reads per second added for each read granted
        self.rate: float | None = None
        self._granted: deque[tuple[float, int]] = deque()
        self._granted_total = 0
        self._tokens = 0.0
        self._updated = clock.now()
        self._resume_at = 0.0

    def granted(self, count: int) -> None:
        """`count` reads were answered (not refused)."""
        now = self.clock.now()
        self._granted.append((now, count))
        self._granted_total += count
        self._forget(now)
        if self.rate is not None:
            self.rate += self.creep * count

    def spent(self, retry_after: float) -> None:
        """Graph said the reads' budget is spent: everyone waits `retry_after`, then reads go on
        at the rate Graph granted over its window."""
        now = self.clock.now()
        self._resume_at = max(self._resume_at, now + retry_after)
        self._forget(now)
        self.rate = max(1.0, self._granted_total / self.window)
        self._tokens = 0.0
        self._updated = self._resume_at

    async def acquire(self, count: int) -> None:
        """Wait until `count` reads may be sent."""
        while True:
            now = self.clock.now()
            if now < self._resume_at:
                await self.clock.sleep(self._resume_at - now)
                continue
            if self.rate is None:
                return
            if now > self._updated:
                self._tokens = min(self.rate, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
            needed = min(count, self.rate)
            if self._tokens >= needed - _EPSILON:
                self._tokens -= needed
                return
            await self.clock.sleep((needed - self._tokens) / self.rate)

    def _forget(self, now: float) -> None:
        while self._granted and self._granted[0][0] <= now - self.window:
            self._granted_total -= self._granted.popleft()[1]
