"""Pacing: requests per second and tokens per minute, on a fake clock and against the fake server."""
from __future__ import annotations

import asyncio

import pytest
from fake_mistral import FakeMistral
from fake_openai import FakeOpenAI

from pipeline.api.backends import open_chat
from pipeline.api.client import Endpoint
from pipeline.api.ratelimit import RateLimiter
from pipeline.prompts import THOUGHT


class Clock:
    """A clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_are_spaced_exactly() -> None:
    clock = Clock()
    limiter = RateLimiter(4, clock=clock)
    delays = [limiter.reserve() for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_late_callers_do_not_get_a_burst_but_idle_time_is_not_banked() -> None:
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    assert limiter.reserve() == 0.0
    clock.now += 10  # idle for a long time
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.5)  # no burst from the idle period


def test_token_bucket_holds_tokens_per_minute() -> None:
    clock = Clock()
    limiter = RateLimiter(None, tokens_per_minute=600, clock=clock)  # 10 tokens/s, bucket of 600
    assert limiter.reserve(500) == 0.0
    assert limiter.reserve(100) == 0.0
    assert limiter.reserve(50) == pytest.approx(5.0)  # empty: 50 tokens take 5 s to refill
    limiter.settle(estimated=50, actual=150)  # the answer was longer than estimated: 100 more owed
    assert limiter.reserve(10) == pytest.approx(5.0 + 10.0 + 1.0)


def test_oversized_request_waits_for_a_full_bucket_not_forever() -> None:
    clock = Clock()
    limiter = RateLimiter(None, tokens_per_minute=60, clock=clock)
    limiter.reserve(60)
    assert limiter.reserve(10_000) == pytest.approx(60.0)


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(1, tokens_per_minute=-5)


@pytest.mark.parametrize("backend", ["mistral", "openai"])
def test_rate_held_against_the_server(backend: str) -> None:
    """40 concurrent callers, limit 20 requests/s, through either backend's client: the server sees no more than ~20 in any second.

    Arrivals jitter by up to ~0.15 s after the limiter releases a request (SDK work, a busy loop on a
    shared 2-core machine): at 20/s that lets a window catch up to 3 more. Without the limiter all
    40 arrive within a fraction of a second.
    """
    rps, n = 20, 40
    messages = THOUGHT.messages(premise="A dog runs.", hypothesis="An animal moves.")

    async def go(url: str) -> None:
        async with open_chat(backend, [Endpoint(url, None)], RateLimiter(rps), timeout_s=5, max_retries=0) as chat:
            await asyncio.gather(*(chat.complete(messages, model=f"m{i}", max_tokens=50, temperature=0)
                                   for i in range(n)))

    with (FakeMistral if backend == "mistral" else FakeOpenAI)(latency_s=0.05) as fake:
        asyncio.run(go(fake.url))
        arrivals = sorted(r.at for r in fake.snapshot())
    assert len(arrivals) == n
    span = arrivals[-1] - arrivals[0]
    assert span >= (n - 1) / rps - 0.15  # not faster than the limit (arrival jitter: new connections)
    assert span <= (n - 1) / rps + 1.0  # and not far below it
    for i, start in enumerate(arrivals):
        in_window = sum(1 for t in arrivals[i:] if t < start + 1.0)
        assert in_window <= rps + 3, (i, in_window)
