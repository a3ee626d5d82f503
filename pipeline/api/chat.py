"""What every chat backend shares: the Reply, the ChatClient protocol, the paced retry loop, and a spread
over several servers.

A backend (pipeline.api.client for Mistral, pipeline.api.openai_client for OpenAI-compatible servers)
only says how one attempt is sent (`PacedChat._send`); pacing (RateLimiter) and retries (RetryPolicy)
are the same for all. pipeline.api.backends picks the backend by name.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, Self

from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import Retryable, RetryPolicy

log = logging.getLogger("nlistral.client")

Messages = list[dict[str, str]]
RetryFn = Callable[[str, float], None]  # (kind, delay_s), called before each retry


@dataclass(frozen=True)
class Reply:
    """One model answer with what it cost."""

    text: str
    tokens_in: int | None
    tokens_out: int | None
    latency_ms: float
    attempts: int
    response_model: str | None = None
    finish_reason: str | None = None
    envelope_error: str | None = None  # the HTTP body was not a chat completion; text is that body
    server: str | None = None  # the label of the server that answered (several --server-url)


class ChatClient(Protocol):
    """An async chat-completions client: paced, retried, closed with `aclose` (or `async with`)."""

    async def complete(self, messages: Messages, *, model: str, max_tokens: int, temperature: float,
                       json_mode: bool = True, tokens_estimate: int = 0) -> Reply:
        """One answer; retries transient failures; raises AuthError or ApiError."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...


class PacedChat:
    """The retry loop around one server's `_send`: every attempt takes a RateLimiter slot."""

    label = ""  # the server, safe to show and store

    def __init__(self, limiter: RateLimiter, *, timeout_s: float, max_retries: int, backoff_base_s: float,
                 backoff_cap_s: float, on_retry: RetryFn | None) -> None:
        self.limiter, self.timeout_s = limiter, timeout_s
        self.policy = RetryPolicy(max_retries, backoff_base_s, backoff_cap_s)
        self.on_retry = on_retry

    async def aclose(self) -> None:
        """Close the HTTP connections."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def complete(self, messages: Messages, *, model: str, max_tokens: int, temperature: float,
                       json_mode: bool = True, tokens_estimate: int = 0) -> Reply:
        """One answer; retries transient failures; raises AuthError or ApiError."""
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire(tokens_estimate)
            started = time.monotonic()
            try:
                reply = await self._send(messages, model, max_tokens, temperature, json_mode, attempt)
            except Retryable as exc:
                failure = exc
            else:
                if reply.tokens_in is not None and reply.tokens_out is not None:
                    self.limiter.settle(tokens_estimate, reply.tokens_in + reply.tokens_out)
                return replace(reply, latency_ms=(time.monotonic() - started) * 1000, attempts=attempt,
                               server=self.label)
            delay = self.policy.delay(failure, attempt)  # outside the except: an ApiError chains nothing
            log.info("retrying after %s (attempt %d, waiting %.2f s)", failure.kind, attempt, delay)
            if self.on_retry:
                self.on_retry(failure.kind, delay)
            await asyncio.sleep(delay)

    async def _send(self, messages: Messages, model: str, max_tokens: int, temperature: float,
                    json_mode: bool, attempt: int) -> Reply:
        raise NotImplementedError


class Spread:
    """Several servers as one ChatClient: each request goes to the least busy (ties in turn), and is
    retried against that server by its own client."""

    def __init__(self, clients: Sequence[ChatClient]) -> None:
        if not clients:
            raise ValueError("Spread needs at least one client")
        self.clients = list(clients)
        self.busy = [0] * len(self.clients)
        self.sent = [0] * len(self.clients)
        self._turn = 0

    def _pick(self) -> int:
        n = len(self.clients)
        order = [(self._turn + i) % n for i in range(n)]
        chosen = min(order, key=lambda i: self.busy[i])
        self._turn = (chosen + 1) % n
        return chosen

    async def complete(self, messages: Messages, *, model: str, max_tokens: int, temperature: float,
                       json_mode: bool = True, tokens_estimate: int = 0) -> Reply:
        """One answer from the least busy server."""
        i = self._pick()
        self.busy[i] += 1
        self.sent[i] += 1
        try:
            return await self.clients[i].complete(messages, model=model, max_tokens=max_tokens,
                                                  temperature=temperature, json_mode=json_mode,
                                                  tokens_estimate=tokens_estimate)
        finally:
            self.busy[i] -= 1

    async def aclose(self) -> None:
        """Close every server's connections."""
        await asyncio.gather(*(c.aclose() for c in self.clients), return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
