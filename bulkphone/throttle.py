"""One adaptive write-rate limiter for the whole run.

A token bucket whose rate starts below the ceiling and climbs back to it after every success
(additive increase), drops on every 429 (multiplicative decrease) and holds still when Graph
says the app is near its limit (`x-ms-throttle-limit-percentage`). A 429's Retry-After pauses
every worker, not just the one that was told. The bucket holds a little burst so that the
budget Graph refills during a pause isn't thrown away when the pause ends.
"""

from __future__ import annotations

from .clock import Clock, SystemClock

__all__ = ["DEFAULT_WRITES_PER_SECOND", "RateLimiter"]

# Graph allows 3,000 writes per 2.5 minutes per app per tenant (20/s); stay below it
# so that other jobs of the same app, and our own retries, fit in the budget.
DEFAULT_WRITES_PER_SECOND = 15.0


class RateLimiter:
    def __init__(
        self,
        ceiling: float = DEFAULT_WRITES_PER_SECOND,
        clock: Clock | None = None,
        *,
        start_fraction: float = 0.5,
        burst_seconds: float = 1.0,
        decrease: float = 0.7,
        climb_seconds: float = 2.0,
    ) -> None:
        if ceiling <= 0:
            raise ValueError("the write ceiling must be positive")
        self.ceiling = ceiling
        self.clock = clock or SystemClock()
        self.rate = ceiling * start_fraction
        self.floor = min(1.0, ceiling)
        self.capacity = max(1.0, ceiling * burst_seconds)
        self.decrease = decrease
        # Adding ceiling/(ceiling*climb_seconds) per write climbs from 0 to the ceiling in ~climb_seconds.
        self.step = 1.0 / climb_seconds
        self._tokens = 1.0
        self._updated = self.clock.now()
        self._next_free = self._updated
        self._resume_at = 0.0
        self._hold_until = 0.0
        self.paused_seconds = 0.0
        self.throttled = 0

    async def acquire(self) -> None:
        """Wait until this caller may send one write."""
        slot = self._reserve()
        wait = slot - self.clock.now()
        if wait > 0:
            await self.clock.sleep(wait)

    def _reserve(self) -> float:
        # Reservations are decided synchronously, so concurrent workers queue up fairly
        # without a lock: asyncio never switches tasks inside this method.
        now = self.clock.now()
        start = max(now, self._resume_at, self._next_free)
        self._refill(start)
        if self._tokens >= 1:
            self._tokens -= 1
            self._next_free = start
            return start
        slot = start + (1 - self._tokens) / self.rate
        self._tokens = 0.0
        self._updated = slot
        self._next_free = slot
        return slot

    def _refill(self, at: float) -> None:
        if at > self._updated:
            self._tokens = min(self.capacity, self._tokens + (at - self._updated) * self.rate)
            self._updated = at

    def succeeded(self) -> None:
        if self.clock.now() >= self._hold_until:
            self.rate = min(self.ceiling, self.rate + self.step)

    def throttled_for(self, retry_after: float) -> None:
        """Graph answered 429: everyone waits Retry-After, and the rate steps down."""
        self.throttled += 1
        now = self.clock.now()
        resume_at = now + retry_after
        if resume_at > self._resume_at:
            self.paused_seconds += resume_at - max(self._resume_at, now)
            self._refill(max(now, self._updated))
            self._resume_at = resume_at
        self.rate = max(self.floor, self.rate * self.decrease)

    def near_limit(self, used_fraction: float) -> None:
        """Graph says the app has used this share of its limit (sent only above 0.8)."""
        self._hold_until = self.clock.now() + 1.0
        if used_fraction >= 0.95:
            self.rate = max(self.floor, self.rate * 0.95)
