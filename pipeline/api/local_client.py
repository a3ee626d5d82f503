"""`--backend local`: a ChatClient whose concurrent requests are decoded together by a model in this process.

The send loop (pipeline/generate/send.py) keeps --max-concurrency requests in flight; here each
`complete` joins a queue, and one runner takes up to `max_batch` waiting requests (the longest prompts
first, pipeline/evaluate/batching.py), decodes them with one `generate` in a worker thread, and answers
each. So --max-concurrency is the batch size, and each batch's answers are stored as it completes.
Pacing (--rps, tokens/min) and retries do not apply to a model in this process: nothing is throttled.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from pipeline.api.chat import Messages, Reply
from pipeline.api.local_model import Answer, LocalModel
from pipeline.api.retry import ApiError
from pipeline.evaluate.batching import length_sorted_batches

GATHER_S = 0.02  # how long a part-filled batch waits for the other workers' requests (decoding takes far longer)


@dataclass
class _Request:
    prompt: str
    max_tokens: int
    temperature: float
    future: asyncio.Future[Answer]
    started: float = field(default_factory=time.monotonic)


class LocalChat:
    """A ChatClient over a LocalModel: requests waiting together are decoded as one batch (no pacing, no retries)."""

    def __init__(self, folder: str, *, max_batch: int = 8, load: Callable[[str], Any] | None = None,
                 gather_s: float = GATHER_S) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.folder, self.max_batch, self.gather_s = folder, max_batch, gather_s
        self._load = load or LocalModel  # load: a stand-in model, for tests
        self.model: Any = None  # a LocalModel (or a stand-in with prompt() and generate()) once opened
        self.label = "in-process"
        self._waiting: list[_Request] = []
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Load the model (in a worker thread: it takes seconds) unless it is loaded."""
        if self.model is None:
            self.model = await asyncio.to_thread(self._load, self.folder)
            self.label = f"in-process ({getattr(self.model, 'device', 'cpu')})"

    async def aclose(self) -> None:
        """Stop the batch runner; requests still waiting fail."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        for request in self._waiting:
            if not request.future.done():
                request.future.cancel()
        self._waiting.clear()

    async def complete(self, messages: Messages, *, model: str, max_tokens: int, temperature: float,
                       json_mode: bool = True, tokens_estimate: int = 0) -> Reply:
        """One answer from the in-process model, decoded in a batch with the other requests waiting; raises
        ApiError (kind "local_model") when decoding failed."""
        await self.open()
        request = _Request(self.model.prompt(messages), max_tokens, temperature,
                           asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self._wake.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        answer = await request.future
        return Reply(answer.text, answer.tokens_in, answer.tokens_out,
                     latency_ms=(time.monotonic() - request.started) * 1000, attempts=1,
                     response_model=self.folder, finish_reason=answer.finish_reason, server=self.label)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if 0 < len(self._waiting) < self.max_batch:
                await asyncio.sleep(self.gather_s)  # the other workers' requests arrive one event-loop turn later
            batch = self._take()
            if not batch:
                continue
            try:
                answers = await asyncio.to_thread(self.model.generate, [r.prompt for r in batch],
                                                  batch[0].max_tokens, batch[0].temperature)
            except Exception as exc:  # noqa: BLE001 - out of memory, a broken model: the whole batch fails
                error = ApiError(f"the in-process model {self.folder} failed: {type(exc).__name__}: {exc}",
                                 "local_model")
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
            else:
                for request, answer in zip(batch, answers, strict=True):
                    if not request.future.done():
                        request.future.set_result(answer)
            if self._waiting:
                self._wake.set()

    def _take(self) -> list[_Request]:
        """The next batch: up to max_batch waiting requests of the first one's settings, longest prompts first."""
        self._waiting = [r for r in self._waiting if not r.future.done()]  # a cancelled caller is not decoded
        if not self._waiting:
            return []
        first = self._waiting[0]
        alike = [r for r in self._waiting if (r.max_tokens, r.temperature) == (first.max_tokens, first.temperature)]
        batch = [alike[i] for i in length_sorted_batches([len(r.prompt) for r in alike], self.max_batch)[0]]
        taken = {id(r) for r in batch}
        self._waiting = [r for r in self._waiting if id(r) not in taken]
        return batch
