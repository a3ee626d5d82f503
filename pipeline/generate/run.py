"""A whole run: select the work, record the run, send and store, summarise; the dry-run estimate; one
reflection on demand (the review app's re-run key)."""
from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.connection import open_db
from db.examples import get_example
from db.generations import get_generation
from db.records import Generation
from db.runs import finish_run, start_run
from db.tx import when_unlocked
from pipeline.api.client import estimate_cost
from pipeline.api.endpoint import AuthError
from pipeline.api.retry import ApiError
from pipeline.generate.options import (
    EVERY_EXAMPLE,
    RUN_KIND,
    GenerateError,
    Selection,
    StageOptions,
    stage_options,
)
from pipeline.generate.send import Counters, ProgressFn, send_tasks
from pipeline.generate.summary import all_failed_message, run_summary
from pipeline.generate.tasks import build_task, select_tasks
from pipeline.settings import Settings


@dataclass(frozen=True)
class RunResult:
    """A finished (or stopped) run: its id, status, counters and summary metrics."""

    run_id: int
    status: str
    counters: Counters
    summary: dict[str, Any]
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """For --json output: the run's id, status and error, then its summary."""
        return {"run_id": self.run_id, "status": self.status, "error": self.error, **self.summary}


def run_stage(db_path: Path, opts: StageOptions, selection: Selection = EVERY_EXAMPLE, *,
              on_start: Callable[[Counters], None] | None = None, on_progress: ProgressFn | None = None,
              notify: Callable[[str], None] | None = None) -> RunResult:
    """Select, send and store one stage's work; records a run. Raises AuthError (the run is marked
    failed) and lets KeyboardInterrupt through after marking the run cancelled. A run in which every
    request failed and nothing was stored ends failed, with the reason in RunResult.error.

    Every write waits while another process holds the store's write lock (notify is told once per
    write), as the answers do.
    """
    if opts.endpoint is None and opts.backend != "local":
        raise GenerateError("no endpoint configured; set MISTRAL_API_KEY or --server-url (--backend openai: "
                            "--server-url)")
    db = open_db(db_path)

    def locked(what: str) -> Callable[[], None]:
        said = False

        def on_wait() -> None:
            nonlocal said
            if notify is not None and not said:
                notify(f"Waiting: another process holds the write lock of {db_path} (a large import is one "
                       f"transaction); {what} as soon as it is released. Nothing is lost while waiting.")
            said = True
        return on_wait

    def finish(status: str, counters: Counters, error: str | None = None) -> dict[str, Any]:
        summary = run_summary(db, opts, selection, counters)
        when_unlocked(lambda: finish_run(db, run_id, status, metrics=summary, error=error),
                      on_wait=locked(f"run {run_id} is recorded as {status}"))
        return summary

    try:
        tasks = select_tasks(db, opts, selection)
        run_id = when_unlocked(lambda: start_run(db, RUN_KIND[opts.stage], opts.config(selection)),
                               on_wait=locked("the run starts"))
        counters = Counters(total=len(tasks))
        if on_start:
            on_start(counters)
        try:
            asyncio.run(send_tasks(db, tasks, opts, run_id, counters, on_progress))
        except (AuthError, GenerateError) as exc:
            finish("failed", counters, str(exc))
            raise
        except (KeyboardInterrupt, asyncio.CancelledError):
            try:  # no waiting on a lock after Ctrl-C: left running, the run reads as interrupted at the next open
                finish_run(db, run_id, "cancelled", metrics=run_summary(db, opts, selection, counters),
                           error="interrupted; re-run the same command to continue")
            except sqlite3.OperationalError:
                pass
            raise
        status, error = "completed", None
        if counters.stored == 0 and counters.failures:
            status, error = "failed", all_failed_message(opts, counters)
        summary = finish(status, counters, error)
        return RunResult(run_id, status, counters, summary, error)
    finally:
        db.conn.close()


@dataclass(frozen=True)
class Estimate:
    """What a run would send (for --dry-run)."""

    requests: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    model: str
    prompt_version: str
    cost_note: str | None = None  # why the cost reads 0 (a self-hosted model without a price)

    def as_dict(self) -> dict[str, Any]:
        """For --json output."""
        return {"requests": self.requests, "model": self.model, "prompt_version": self.prompt_version,
                "tokens_in_estimate": self.tokens_in, "tokens_out_estimate": self.tokens_out,
                "cost_usd_estimate": None if self.cost_usd is None else round(self.cost_usd, 4),
                **({"cost_note": self.cost_note} if self.cost_note else {})}


def estimate(db_path: Path, opts: StageOptions, selection: Selection = EVERY_EXAMPLE) -> Estimate:
    """Count the requests a run would send and estimate tokens (~4 characters each) and cost."""
    db = open_db(db_path)
    try:
        tasks = select_tasks(db, opts, selection)
    finally:
        db.conn.close()
    prompt = opts.prompt
    tokens_out = prompt.expected_output_tokens * len(tasks)
    tokens_in = sum(t.tokens_estimate(prompt) for t in tasks) - tokens_out
    return Estimate(len(tasks), tokens_in, tokens_out, estimate_cost(opts.model, tokens_in, tokens_out, opts.backend),
                    opts.model, prompt.version, opts.cost_note)


def reflect_one(db_path: Path, example_id: int, *, settings: Settings | None = None,
                model: str | None = None, server_url: str | None = None) -> Generation:
    """Make, store and return a NEW reflection version for the example's current thought.

    Synchronous (call it from a worker thread; it opens its own connection). Raises
    ClientConfigError when no key or endpoint is configured, ApiError when the request finally
    failed, GenerateError when the example has no thought or no gold label.
    """
    opts = stage_options("reflection", settings, model=model, server_url=server_url, max_concurrency=1)
    db = open_db(db_path)
    try:
        example = get_example(db, example_id)
        if example.thought_id is None:
            raise GenerateError(f"example {example_id} has no thought yet; run `nlistral generate --ids "
                                f"{example_id}` first.")
        if example.gold_label is None:
            raise GenerateError(f"example {example_id} has no gold label, so there is nothing to reflect towards.")
        thought = get_generation(db, example.thought_id)
        row = {"id": example.id, "premise": example.premise, "hypothesis": example.hypothesis,
               "gold_label": example.gold_label, "parent_id": example.thought_id,
               "thought": thought.thought_process, "label": thought.predicted_label, "attempts": 0}
        task = build_task(opts, row, nonce=uuid.uuid4().hex)
        config = {**opts.config(Selection(ids=(example_id,))), "rerun": True}
        run_id = when_unlocked(lambda: start_run(db, "reflect", config))
        counters = Counters(total=1)
        try:
            stored = asyncio.run(send_tasks(db, [task], opts, run_id, counters, None, raise_api_errors=True))
        except (ApiError, AuthError) as exc:
            error = str(exc)
            when_unlocked(lambda: finish_run(db, run_id, "failed", metrics={"run": counters.as_dict()}, error=error))
            raise
        when_unlocked(lambda: finish_run(db, run_id, "completed", metrics={"run": counters.as_dict()}))
        return stored[0]
    finally:
        db.conn.close()
