"""Stages 1-3 against a Mistral-compatible API: thoughts, reflections, judge scores.

A run selects only the work whose answer is not stored yet (same kind, example, model, prompt
version and parent), sends it paced and retried, and stores each answer in its own transaction the
moment it arrives. Killing the process (even with SIGKILL) loses at most the requests in flight; a
re-run picks up the rest. The dedupe key on each generation makes a second copy impossible even if
two runs race. Parse failures are stored with the raw text and are not re-sent unless asked.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db.connection import open_db
from db.examples import get_example
from db.generations import add_generation, dedupe_key
from db.records import Generation
from db.runs import finish_run, start_run
from db.tx import when_unlocked
from pipeline.client import (
    ApiError,
    AuthError,
    ClientConfigError,
    Endpoint,
    MistralChat,
    estimate_cost,
    resolve_endpoint,
)
from pipeline.errors import PipelineError
from pipeline.metrics import BinaryMetrics
from pipeline.parsing import Parsed, parse_judge, parse_reflection, parse_thought
from pipeline.prompts import PROMPTS, Prompt, label_name
from pipeline.ratelimit import RateLimiter
from pipeline.settings import Settings, load_settings

STAGES = ("thought", "reflection", "judge")
RUN_KIND = {"thought": "generate", "reflection": "reflect", "judge": "judge"}
JUDGE_TARGETS = ("thought", "reflection")
CHARS_PER_TOKEN = 4  # rough, for estimates before the server reports real counts
STOP_AFTER_BAD_REQUESTS = 5  # consecutive 4xx rejections (bad model name, ...) stop the run


class GenerateError(PipelineError):
    """The work cannot be done as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class Selection:
    """Which examples a run covers."""

    dataset: str | None = None
    split: str | None = None
    ids: tuple[int, ...] | None = None
    limit: int | None = None


@dataclass(frozen=True)
class StageOptions:
    """Everything a run needs besides the selection; build it with `stage_options`."""

    stage: str
    model: str
    endpoint: Endpoint | None  # None only for --dry-run without a key
    rps: float | None
    tokens_per_minute: int | None
    max_concurrency: int
    timeout_s: float
    max_retries: int
    retry_failed: bool = False
    judge_target: str = "thought"

    @property
    def prompt(self) -> Prompt:
        return PROMPTS[self.stage]

    def config(self, selection: Selection) -> dict[str, Any]:
        """What the runs table records (never the key)."""
        return {
            "stage": self.stage, "model": self.model, "prompt_version": self.prompt.version,
            "endpoint": self.endpoint.label if self.endpoint else None, "rps": self.rps,
            "tokens_per_minute": self.tokens_per_minute, "max_concurrency": self.max_concurrency,
            "timeout_s": self.timeout_s, "max_retries": self.max_retries, "retry_failed": self.retry_failed,
            "judge_target": self.judge_target if self.stage == "judge" else None,
            "selection": {"dataset": selection.dataset, "split": selection.split,
                          "ids": list(selection.ids) if selection.ids else None, "limit": selection.limit},
        }


def stage_options(stage: str, settings: Settings | None = None, *, model: str | None = None,
                  server_url: str | None = None, rps: float | None = None, max_concurrency: int | None = None,
                  retry_failed: bool = False, judge_target: str = "thought", need_endpoint: bool = True,
                  ) -> StageOptions:
    """Options from the config file, with command-line values (when given) taking precedence."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
    if judge_target not in JUDGE_TARGETS:
        raise GenerateError(f"--target must be one of {', '.join(JUDGE_TARGETS)}, not {judge_target!r}")
    settings = settings or load_settings()
    api = settings.api
    try:
        endpoint = resolve_endpoint(settings, server_url)
    except ClientConfigError:
        if need_endpoint:
            raise
        endpoint = None
    rate = rps if rps is not None else api.rps
    concurrency = max_concurrency if max_concurrency is not None else api.max_concurrency
    if rate is not None and not rate > 0:  # not "<= 0": nan is neither
        raise GenerateError(f"--rps must be positive, not {rate}")
    if concurrency < 1:
        raise GenerateError(f"--max-concurrency must be at least 1, not {concurrency}")
    return StageOptions(
        stage=stage, model=model or getattr(settings.models, stage), endpoint=endpoint, rps=rate,
        tokens_per_minute=api.tokens_per_minute or None, max_concurrency=concurrency, timeout_s=api.timeout_s,
        max_retries=api.max_retries, retry_failed=retry_failed, judge_target=judge_target)


# ---------------------------------------------------------------------------------------------
# Selecting the work


@dataclass(frozen=True)
class Task:
    """One request to make, and where its answer goes."""

    example_id: int
    gold: int | None
    parent_id: int | None
    messages: list[dict[str, str]]
    dedupe_key: str

    def tokens_estimate(self, prompt: Prompt) -> int:
        """Prompt tokens (from its length) plus the usual answer length."""
        chars = sum(len(m["content"]) for m in self.messages)
        return chars // CHARS_PER_TOKEN + prompt.expected_output_tokens


def generation_key(stage: str, example_id: int, model: str, prompt_version: str, parent_id: int | None,
                   attempt: int = 0, nonce: str | None = None) -> str:
    """The dedupe key of an answer: one per (kind, example, model, prompt version, parent) and attempt."""
    parts: list[Any] = [stage, example_id, model, prompt_version, parent_id]
    if attempt:
        parts.append(["retry", attempt])
    if nonce:
        parts.append(["rerun", nonce])
    return dedupe_key(*parts)


def select_tasks(db: Database, opts: StageOptions, selection: Selection) -> list[Task]:
    """The requests still to send: no answer stored for this model and prompt version (failed ones
    count as answered unless retry_failed)."""
    prompt, stage = opts.prompt, opts.stage
    where, args = _where(selection)
    done_cond = " AND x.parse_status != 'failed'" if opts.retry_failed else ""
    limit = f" LIMIT {int(selection.limit)}" if selection.limit is not None else ""
    if stage == "thought":
        sql = f"""
            SELECT e.id, e.premise, e.hypothesis, e.gold_label, NULL AS parent_id, NULL AS thought, NULL AS label,
                (SELECT count(*) FROM generations x WHERE x.example_id = e.id AND x.kind = 'thought'
                    AND x.model = :model AND x.prompt_version = :pv) AS attempts
            FROM examples e WHERE {where} AND NOT EXISTS (
                SELECT 1 FROM generations x WHERE x.example_id = e.id AND x.kind = 'thought'
                AND x.model = :model AND x.prompt_version = :pv{done_cond})
            ORDER BY e.id{limit}"""
    else:
        if stage == "reflection":
            join = "JOIN generations g ON g.id = e.thought_id"
            cond = "e.gold_label IS NOT NULL AND g.predicted_label IS NOT NULL AND g.predicted_label != e.gold_label"
        else:
            join = f"JOIN generations g ON g.id = e.{opts.judge_target}_id"
            cond = "g.parse_status != 'failed'"
        sql = f"""
            SELECT e.id, e.premise, e.hypothesis, e.gold_label, g.id AS parent_id, g.thought_process AS thought,
                g.predicted_label AS label,
                (SELECT count(*) FROM generations x WHERE x.parent_id = g.id AND x.kind = :kind
                    AND x.model = :model AND x.prompt_version = :pv) AS attempts
            FROM examples e {join}
            WHERE {where} AND {cond} AND NOT EXISTS (
                SELECT 1 FROM generations x WHERE x.parent_id = g.id AND x.kind = :kind
                AND x.model = :model AND x.prompt_version = :pv{done_cond})
            ORDER BY e.id{limit}"""
    params = {**args, "model": opts.model, "pv": prompt.version, "kind": stage}
    return [_task(opts, row) for row in db.query(sql, params)]


def _where(selection: Selection) -> tuple[str, dict[str, Any]]:
    clauses, args = ["1"], {}
    if selection.dataset:
        clauses.append("e.dataset = :dataset")
        args["dataset"] = selection.dataset
    if selection.split:
        clauses.append("e.split = :split")
        args["split"] = selection.split
    if selection.ids is not None:
        clauses.append("e.id IN (SELECT value FROM json_each(:ids))")
        args["ids"] = json.dumps(list(selection.ids))
    return " AND ".join(clauses), args


def _task(opts: StageOptions, row: dict[str, Any], nonce: str | None = None) -> Task:
    prompt = opts.prompt
    values: dict[str, Any] = {"premise": row["premise"], "hypothesis": row["hypothesis"]}
    if opts.stage != "thought":
        gold = row["gold_label"]
        values.update(gold="unknown" if gold is None else gold, gold_name=label_name(gold),
                      thought=row["thought"] or "(no reasoning was given)",
                      label="unknown" if row["label"] is None else row["label"], label_name=label_name(row["label"]))
    key = generation_key(opts.stage, row["id"], opts.model, prompt.version, row["parent_id"], row["attempts"], nonce)
    return Task(row["id"], row["gold_label"], row["parent_id"], prompt.messages(**values), key)


# ---------------------------------------------------------------------------------------------
# Running


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


@dataclass(frozen=True)
class RunResult:
    """A finished (or stopped) run: its id, status, counters and summary metrics."""

    run_id: int
    status: str
    counters: Counters
    summary: dict[str, Any]
    error: str | None = None


ProgressFn = Callable[[Counters], None]


def run_stage(db_path: Path, opts: StageOptions, selection: Selection = Selection(), *,
              on_start: Callable[[Counters], None] | None = None, on_progress: ProgressFn | None = None,
              notify: Callable[[str], None] | None = None) -> RunResult:
    """Select, send and store one stage's work; records a run. Raises AuthError (the run is marked
    failed) and lets KeyboardInterrupt through after marking the run cancelled. A run in which every
    request failed and nothing was stored ends failed, with the reason in RunResult.error.

    Every write waits while another process holds the store's write lock (notify is told once per
    write), as the answers do.
    """
    if opts.endpoint is None:
        raise GenerateError("no endpoint configured; set MISTRAL_API_KEY or --server-url")
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
        summary = _summary(db, opts, selection, counters)
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
            asyncio.run(_run_tasks(db, tasks, opts, run_id, counters, on_progress))
        except (AuthError, GenerateError) as exc:
            finish("failed", counters, str(exc))
            raise
        except (KeyboardInterrupt, asyncio.CancelledError):
            try:  # no waiting on a lock after Ctrl-C: left running, the run reads as interrupted at the next open
                finish_run(db, run_id, "cancelled", metrics=_summary(db, opts, selection, counters),
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


# What to check when every request failed, by the commonest kind of failure.
FAILURE_HINTS = {
    "connection": "check that the server at {url} is running and reachable (--server-url / [api] server_url)",
    "timeout": "the server at {url} did not answer in time: check that it is up, or raise [api] timeout_s",
    "server_error": "the server at {url} answered with errors: check its status (or its log, for your own "
                    "server) and try again later",
    "rate_limited": "the server kept refusing over rate limits: lower --rps (or [api] rps) to your plan's limit, "
                    "or try again later",
    "bad_request": "the server rejected the requests: check --model (or [models] in the config file) and "
                   "--server-url",
}


def all_failed_message(opts: StageOptions, counters: Counters) -> str:
    """Why a run in which every request failed stored nothing, and what to check."""
    n = sum(counters.failures.values())
    kinds = ", ".join(f"{kind} {count}" for kind, count in counters.failures.most_common())
    kind = counters.failures.most_common(1)[0][0]
    url = opts.endpoint.label if opts.endpoint else "(none)"
    hint = FAILURE_HINTS.get(kind, "check --server-url and --model").format(url=url)
    return (f"every request failed ({n} given up: {kinds}), so nothing was stored. The last error: "
            f"{counters.last_error}. {hint[0].upper()}{hint[1:]}; then re-run the same command.")


async def _run_tasks(db: Database, tasks: list[Task], opts: StageOptions, run_id: int, counters: Counters,
                     on_progress: ProgressFn | None, *, raise_api_errors: bool = False) -> list[Generation]:
    assert opts.endpoint is not None
    limiter = RateLimiter(opts.rps, opts.tokens_per_minute)
    pending = iter(tasks)
    stored: list[Generation] = []
    bad_requests = 0

    def retried(kind: str, _delay: float) -> None:
        counters.retries[kind] += 1
        counters.requests += 1

    async with MistralChat(opts.endpoint, limiter, timeout_s=opts.timeout_s, max_retries=opts.max_retries,
                           on_retry=retried) as chat:

        async def worker() -> None:
            nonlocal bad_requests
            for task in pending:  # one shared iterator: each task is taken by exactly one worker
                if _is_stored(db, task.dedupe_key):
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
                        generation = _store(db, task, reply, opts, run_id, counters, on_progress)
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


def _is_stored(db: Database, key: str) -> bool:
    return db.execute("SELECT 1 FROM generations WHERE dedupe_key = ?", [key]).fetchone() is not None


def parse_answer(stage: str, text: str, gold: int | None) -> Parsed:
    """The parser for a stage's answer."""
    if stage == "thought":
        return parse_thought(text)
    if stage == "reflection":
        return parse_reflection(text, gold)
    return parse_judge(text)


def _store(db: Database, task: Task, reply: Any, opts: StageOptions, run_id: int,
           counters: Counters, on_progress: ProgressFn | None = None) -> Generation | None:
    """Store one answer in its own transaction (add_generation commits at once)."""

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
    cost = estimate_cost(opts.model, reply.tokens_in, reply.tokens_out)
    params = {**opts.prompt.params(), "endpoint": opts.endpoint.label if opts.endpoint else None,
              "response_model": reply.response_model, "finish_reason": reply.finish_reason,
              "attempts": reply.attempts}
    if problems:
        params["parse_problems"] = problems
    # A paid answer is never dropped because another process (a large import) holds the write lock.
    generation = when_unlocked(lambda: add_generation(
        db, example_id=task.example_id, kind=opts.stage, parent_id=task.parent_id, model=opts.model,
        backend="mistral", prompt_version=opts.prompt.version, params=params, thought_process=parsed.thought,
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


# ---------------------------------------------------------------------------------------------
# Summaries and estimates


def _summary(db: Database, opts: StageOptions, selection: Selection, counters: Counters) -> dict[str, Any]:
    """This run's counters, plus quality figures over every answer of this model and prompt version
    in the selection (so a resumed run reports the whole)."""
    where, args = _where(Selection(selection.dataset, selection.split, selection.ids))
    params = {**args, "model": opts.model, "pv": opts.prompt.version, "kind": opts.stage}
    latest = f"""
        SELECT g.*, e.gold_label FROM generations g JOIN examples e ON e.id = g.example_id
        WHERE {where} AND g.id IN (SELECT max(x.id) FROM generations x WHERE x.kind = :kind AND x.model = :model
            AND x.prompt_version = :pv GROUP BY x.example_id)"""
    rows = list(db.query(latest, params))
    summary: dict[str, Any] = {"run": counters.as_dict(), "answers": len(rows)}
    labelled = [(r["gold_label"], r["predicted_label"]) for r in rows if r["gold_label"] is not None]
    flags = Counter(f for r in rows for f in json.loads(r["flags"] or "[]"))
    summary["parse_failed"] = sum(r["parse_status"] == "failed" for r in rows)
    summary["flags"] = dict(flags)
    if opts.stage == "thought":
        summary["against_gold"] = BinaryMetrics.from_pairs(labelled).as_dict()
    elif opts.stage == "reflection":
        summary["reached_gold"] = sum(g == p for g, p in labelled)
        summary["not_gold"] = sum(p is not None and g != p for g, p in labelled)
        summary["thoughts_without_label"] = db.execute(
            f"SELECT count(*) FROM examples e JOIN generations g ON g.id = e.thought_id "
            f"WHERE {where} AND g.predicted_label IS NULL", args).fetchone()[0]
    else:
        scores = [r["score"] for r in rows if r["score"] is not None]
        summary["mean_score"] = round(sum(scores) / len(scores), 3) if scores else None
        summary["scores"] = {str(s): scores.count(s) for s in sorted(set(scores))}
    return summary


@dataclass(frozen=True)
class Estimate:
    """What a run would send (for --dry-run)."""

    requests: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    model: str
    prompt_version: str


def estimate(db_path: Path, opts: StageOptions, selection: Selection = Selection()) -> Estimate:
    """Count the requests a run would send and estimate tokens (~4 characters each) and cost."""
    db = open_db(db_path)
    try:
        tasks = select_tasks(db, opts, selection)
    finally:
        db.conn.close()
    prompt = opts.prompt
    tokens_out = prompt.expected_output_tokens * len(tasks)
    tokens_in = sum(t.tokens_estimate(prompt) for t in tasks) - tokens_out
    return Estimate(len(tasks), tokens_in, tokens_out, estimate_cost(opts.model, tokens_in, tokens_out),
                    opts.model, prompt.version)


# ---------------------------------------------------------------------------------------------
# One reflection on demand (the review app's re-run key)


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
        thought = db.execute("SELECT thought_process, predicted_label FROM generations WHERE id = ?",
                             [example.thought_id]).fetchone()
        row = {"id": example.id, "premise": example.premise, "hypothesis": example.hypothesis,
               "gold_label": example.gold_label, "parent_id": example.thought_id, "thought": thought[0],
               "label": thought[1], "attempts": 0}
        task = _task(opts, row, nonce=uuid.uuid4().hex)
        run_id = when_unlocked(lambda: start_run(db, "reflect", {**opts.config(Selection(ids=(example_id,))),
                                                                "rerun": True}))
        counters = Counters(total=1)
        try:
            stored = asyncio.run(_run_tasks(db, [task], opts, run_id, counters, None, raise_api_errors=True))
        except (ApiError, AuthError) as exc:
            error = str(exc)
            when_unlocked(lambda: finish_run(db, run_id, "failed", metrics={"run": counters.as_dict()}, error=error))
            raise
        when_unlocked(lambda: finish_run(db, run_id, "completed", metrics={"run": counters.as_dict()}))
        return stored[0]
    finally:
        db.conn.close()


