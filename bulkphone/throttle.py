"""One write-rate limiter for the whole run, which a 429 pauses for everyone."""

from __future__ import annotations

import threading

from .clock import Clock, SystemClock

__all__ = ["DEFAULT_WRITES_PER_SECOND", "RateLimiter"]

# Graph allows 3,000 writes per 2.5 minutes per app per tenant (20/s); stay below it
# so that other jobs of the same app, and our own retries, fit in the budget.
DEFAULT_WRITES_PER_SECOND = 15.0


class RateLimiter:
    def __init__(self, per_second: float = DEFAULT_WRITES_PER_SECOND, clock: Clock | None = None) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.interval = 1.0 / per_second
        self.clock = clock or SystemClock()
        self._next_slot = 0.0
        self._resume_at = 0.0
        self._lock = threading.Lock()
        self.paused_seconds = 0.0

    def acquire(self) -> None:
        """Block until this caller may send one request."""
        with self._lock:
            now = self.clock.now()
            slot = max(now, self._next_slot, self._resume_at)
            self._next_slot = slot + self.interval
        self.clock.sleep(slot - now)

    def pause(self, seconds: float) -> None:
        """Graph said wait (Retry-After): nobody sends before then."""
        with self._lock:
            resume_at = self.clock.now() + seconds
            if resume_at > self._resume_at:
                self.paused_seconds += resume_at - max(self._resume_at, self.clock.now())
                self._resume_at = resume_at
