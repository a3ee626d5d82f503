"""Sending a run's requests, paced and retried, and storing each answer the moment it arrives."""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from db.generations import add_generation, is_stored
from db.records import Generation
from db.tx import when_unlocked
from pipeline.api.backends import open_chat
from pipeline.api.client import Reply, estimate_cost
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import ApiError
from pipeline.generate.options import GenerateError, StageOptions
from pipeline.generate.tasks import Task
from pipeline.parsing import Parsed, parse_judge, parse_reflection, parse_thought

STOP_AFTER_BAD_REQUESTS = 5  # consecutive 4xx rejections (bad model name, ...) stop the run


@dataclass
class Counters:
    """What a run has done so far (for the progress bar and the summary)."""

    total: int
    started: float = field(default_factory=time.monotonic)
    stored: int = 0
    already_stored: int = 0
    requests: int = 0
    parse: Counter[str] = field(default_factory=Counter)  # ok / repaired / failed
    flags: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # requests given up, by kind
    retries: Counter[str] = field(default_factory=Counter)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cost_unknown: int = 0
    last_error: str | None = None
    waiting_for_store: bool = False  # another process holds the write lock past the busy timeout
    store_waits: int = 0

    @property
    def finished(self) -> int:
        """Requests done with: stored, found stored, or given up."""
        return self.stored + self.already_stored + sum(self.failures.values())

    @property
    def failed(self) -> int:
        """Requests given up plus answers that did not parse."""
        return sum(self.failures.values()) + self.parse["failed"]

    def as_dict(self) -> dict[str, Any]:
        """For the runs table and --json output."""
        elapsed = time.monotonic() - self.started
        return {
            "total": self.total, "stored": self.stored, "already_stored": self.already_stored,
            "requests": self.requests, "parse": dict(self.parse), "flags": dict(self.flags),
            "failures": dict(self.failures), "retries": dict(self.retries), "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out, "cost_usd_estimate": round(self.cost_usd, 6),
            "cost_unknown": self.cost_unknown, "store_waits": self.store_waits, "elapsed_s": round(elapsed, 3),
            "requests_per_s": round(self.requests / elapsed, 3) if elapsed > 0 else None,
        }


ProgressFn = Callable[[Counters], None]


async def send_tasks(db: Database, tasks: list[Task], opts: StageOptions, run_id: int, counters: Counters,
                     on_progress: ProgressFn | None, *, raise_api_errors: bool = False) -> list[Generation]:
    """Send the tasks with opts.max_concurrency workers and store each answer; returns the generations stored.

    A request that finally failed is counted (or raised, with raise_api_errors); STOP_AFTER_BAD_REQUESTS
    rejections in a row raise GenerateError.
    """
    assert opts.endpoint is not None or opts.backend == "local"
    limiter = RateLimiter(opts.rps, opts.tokens_per_minute)
    pending = iter(tasks)
    stored: list[Generation] = []
    bad_requests = 0

    def retried(kind: str, _delay: float) -> None:
        counters.retries[kind] += 1
        counters.requests += 1

    async with open_chat(opts.backend, opts.endpoints, limiter, timeout_s=opts.timeout_s,
                         max_retries=opts.max_retries, on_retry=retried, model=opts.model,
                         max_batch=opts.max_concurrency) as chat:

        async def worker() -> None:
            nonlocal bad_requests
            for task in pending:  # one shared iterator: each task is taken by exactly one worker
                if is_stored(db, task.dedupe_key):
                    counters.already_stored += 1
                else:
                    try:
                        reply = await chat.complete(task.messages, model=opts.model, max_tokens=opts.prompt.max_tokens,
                                                    temperature=opts.prompt.temperature,
                                                    tokens_estimate=task.tokens_estimate(opts.prompt))
                    except ApiError as exc:
                        counters.requests += 1
                        counters.failures[exc.kind] += 1
                        counters.last_error = str(exc)
                        if raise_api_errors:
                            raise
                        bad_requests = bad_requests + 1 if exc.kind == "bad_request" else 0
                        if bad_requests >= STOP_AFTER_BAD_REQUESTS:
                            raise GenerateError(f"{bad_requests} requests in a row were rejected; the last: {exc}. "
                                                "Check --model and --server-url.") from None
                    else:
                        counters.requests += 1
                        bad_requests = 0
                        generation = store_answer(db, task, reply, opts, run_id, counters, on_progress)
                        if generation is not None:
                            stored.append(generation)
                if on_progress:
                    on_progress(counters)

        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(opts.max_concurrency, len(tasks))))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
    return stored


def parse_answer(stage: str, text: str, gold: int | None) -> Parsed:
    """The parser for a stage's answer."""
    if stage == "thought":
        return parse_thought(text)
    if stage in ("reflection", "blind_reflection"):  # one answer format; gold (never sent blind) only flags
        return parse_reflection(text, gold)
    return parse_judge(text)


def store_answer(db: Database, task: Task, reply: Reply, opts: StageOptions, run_id: int,
                 counters: Counters, on_progress: ProgressFn | None = None) -> Generation | None:
    """Store one answer in its own transaction (add_generation commits at once); None when already stored."""

    def waiting() -> None:  # shown on the progress bar until the answer is stored
        counters.waiting_for_store, counters.store_waits = True, counters.store_waits + 1
        if on_progress:
            on_progress(counters)

    parsed = parse_answer(opts.stage, reply.text, task.gold)
    problems = list(parsed.problems)
    if reply.envelope_error:
        parsed = Parsed("failed", None, None, None, None, None, ("the server's reply was not a chat completion",))
        problems = [*parsed.problems, reply.envelope_error]
    if reply.finish_reason == "length":
        problems.append(f"the answer was cut off at max_tokens ({opts.prompt.max_tokens})")
    cost = estimate_cost(opts.model, reply.tokens_in, reply.tokens_out, opts.backend)
    endpoint = reply.server or (opts.endpoint.label if opts.endpoint else None)
    params = {**opts.prompt.params(), "endpoint": endpoint,
              "response_model": reply.response_model, "finish_reason": reply.finish_reason,
              "attempts": reply.attempts}
    if problems:
        params["parse_problems"] = problems
    # A paid answer is never dropped because another process (a large import) holds the write lock.
    generation = when_unlocked(lambda: add_generation(
        db, example_id=task.example_id, kind=opts.stage, parent_id=task.parent_id, model=opts.model,
        backend=opts.backend, prompt_version=opts.prompt.version, params=params, thought_process=parsed.thought,
        predicted_label=parsed.label, error_analysis=parsed.error_analysis, score=parsed.score,
        rationale=parsed.rationale, raw_response=reply.text, parse_status=parsed.status, flags=list(parsed.flags),
        tokens_in=reply.tokens_in, tokens_out=reply.tokens_out, latency_ms=round(reply.latency_ms, 1),
        cost_usd=cost, run_id=run_id, dedupe_key=task.dedupe_key), on_wait=waiting)
    counters.waiting_for_store = False
    if generation is None:  # another run stored the same answer first
        counters.already_stored += 1
        return None
    counters.stored += 1
    counters.parse[parsed.status] += 1
    counters.flags.update(parsed.flags)
    counters.tokens_in += reply.tokens_in or 0
    counters.tokens_out += reply.tokens_out or 0
    if cost is None:
        counters.cost_unknown += 1
    else:
        counters.cost_usd += cost
    return generation
