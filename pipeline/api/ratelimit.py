"""Pacing for a rate-limited API: requests per second and tokens per minute, scheduled precisely.

Each `acquire` reserves the next free send time on an absolute schedule (requests spaced exactly
1/rps apart, and no earlier than the token bucket allows), then sleeps until it. Because the
schedule is absolute, a late wake-up never delays the requests after it, so a steady stream of
callers sends at the limit, not below it. Every attempt, retries included, takes a slot.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    """At most `rps` requests per second and `tokens_per_minute` tokens per minute (None: unlimited)."""

    def __init__(
        self,
        rps: float | None,
        tokens_per_minute: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rps is not None and rps <= 0:
            raise ValueError(f"rps must be positive (or None for no limit), not {rps}")
        if tokens_per_minute is not None and tokens_per_minute <= 0:
            raise ValueError(f"tokens_per_minute must be positive (or None), not {tokens_per_minute}")
        self.rps = rps
        self.tokens_per_minute = tokens_per_minute
        self._clock, self._sleep = clock, sleep
        self._interval = 1.0 / rps if rps else 0.0
        self._next_send = clock()
        self._bucket = float(tokens_per_minute or 0)  # tokens available at _bucket_at
        self._bucket_at = clock()

    def reserve(self, tokens: int = 0) -> float:
        """Book the next send time for a request of about `tokens` tokens; returns the delay until it."""
        now = self._clock()
        at = max(now, self._next_send)
        if self.tokens_per_minute:
            per_second = self.tokens_per_minute / 60.0
            need = min(float(tokens), float(self.tokens_per_minute))  # a huge request waits for a full bucket
            level = min(float(self.tokens_per_minute), self._bucket + (at - self._bucket_at) * per_second)
            if level < need:
                at += (need - level) / per_second
                level = need
            self._bucket, self._bucket_at = level - need, at
        self._next_send = at + self._interval
        return at - now

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for this request's turn."""
        delay = self.reserve(tokens)
        if delay > 0:
            await self._sleep(delay)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once the real token count of a request is known."""
        if self.tokens_per_minute:
            self._bucket -= actual - estimated
