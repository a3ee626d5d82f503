"""`nlistral evaluate --backend openai`: the evaluation prompts answered by an OpenAI-compatible server.

The server (vLLM: `vllm serve BASE --enable-lora --lora-modules NAME=ADAPTER_DIR`) holds the model or
adapter named `model`. Each example is one chat request: the training user prompt
(exports.formats.user_prompt, with or without the thought instruction) as the only, user, message, so
the server applies the model's own chat template; greedy (temperature 0), at most --max-new-tokens,
without JSON mode (the in-process path does not constrain decoding either). Requests go through
pipeline.api's paced, retried client (several servers: Spread). Answers are parsed by the same parser
as in-process evaluation and stored as each arrives, as 'prediction' generations under the run
(same dedupe key, so --resume asks nothing twice); runner.run_evaluation does everything else.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from db.generations import add_generations, dedupe_key
from db.records import Example
from db.tx import when_unlocked
from exports.formats import user_prompt
from pipeline.api.backends import open_chat
from pipeline.api.chat import Messages, Reply
from pipeline.api.endpoint import ClientConfigError, resolve_endpoints
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import ApiError
from pipeline.evaluate.errors import EvaluationError
from pipeline.evaluate.generation import STOP_EOS, STOP_LENGTH
from pipeline.evaluate.prompts import prompt_version
from pipeline.parsing import parse_prediction
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.evaluate.runner import EvalOptions

SERVED_BACKENDS = ("openai",)
SERVED_LAYOUT = "one user message; the server applies the model's chat template"
# the server's finish_reason -> the stop reasons the in-process decoder records
FINISH_TO_STOP = {"stop": STOP_EOS, "length": STOP_LENGTH}


def check_served(options: EvalOptions) -> None:
    """EvaluationError for options a served evaluation cannot honour (the message says what to do instead)."""
    if options.backend not in SERVED_BACKENDS:
        raise EvaluationError(f"unknown evaluate backend {options.backend!r}: use local (the default) or openai")
    if options.adapter or options.base:
        raise EvaluationError("--adapter and --base are for in-process evaluation: with --backend openai the "
                              "adapter lives on the server (vLLM: --enable-lora --lora-modules NAME=ADAPTER_DIR); "
                              "pass --model NAME, the name the server serves it under")
    if options.shuffle_thoughts:
        raise EvaluationError("--shuffle-thoughts forces the start of each answer, which a chat server cannot "
                              "be given: run it in-process with --adapter DIR")
    if not options.model:
        raise EvaluationError("--backend openai needs --model NAME: the served model or LoRA module name")
    if not options.servers:
        raise EvaluationError("--backend openai needs --server-url URL (repeatable), e.g. http://localhost:8000/v1")
    if options.max_concurrency < 1:
        raise EvaluationError("--max-concurrency must be at least 1")
    if options.rps is not None and options.rps <= 0:
        raise EvaluationError("--rps must be positive (leave it out for no limit)")


def served_prompt_version(*, with_thought: bool) -> str:
    """The prompt version of served predictions: the training prompt's version plus the served layout."""
    payload = {"prompt": prompt_version(with_thought=with_thought, shuffle_thoughts=False), "layout": SERVED_LAYOUT}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def chat_messages(example: Example, *, with_thought: bool) -> Messages:
    """The one chat message sent for an example: the training user prompt."""
    return [{"role": "user", "content": user_prompt(example.premise, example.hypothesis, with_thought=with_thought)}]


def prediction_row(example: Example, reply: Reply, options: EvalOptions, run_id: int, version: str) -> dict[str, Any]:
    """The stored 'prediction' generation for a server's answer, parsed as in-process answers are."""
    parsed = parse_prediction(reply.text, with_thought=options.with_thought)
    finish = reply.finish_reason or ""
    params: dict[str, Any] = {"stop": FINISH_TO_STOP.get(finish, finish or "unknown"), "finish_reason": finish or None,
                              "max_new_tokens": options.max_new_tokens, "decoding": "greedy", "mode": "served",
                              "problems": list(parsed.problems), "endpoint": reply.server, "attempts": reply.attempts}
    if reply.envelope_error:
        params["envelope_error"] = reply.envelope_error
    return {
        "example_id": example.id, "kind": "prediction", "model": options.model, "backend": options.backend,
        "prompt_version": version, "params": params,
        "thought_process": parsed.thought, "predicted_label": parsed.label, "raw_response": reply.text,
        "parse_status": parsed.status, "flags": list(parsed.flags), "tokens_in": reply.tokens_in,
        "tokens_out": reply.tokens_out, "latency_ms": reply.latency_ms,
        "run_id": run_id, "dedupe_key": dedupe_key("prediction", run_id, example.id),
    }


def ask_and_store(db: Database, run_id: int, options: EvalOptions, todo: Sequence[Example],
                  progress: Callable[[int], None]) -> int:
    """Ask the server(s) about each example, storing each answer as it arrives; returns how many were stored."""
    try:
        _, endpoints = resolve_endpoints(Settings(), options.backend, options.servers)
    except ClientConfigError as exc:
        raise EvaluationError(str(exc)) from None
    try:
        return asyncio.run(_ask_all(db, run_id, options, endpoints, todo, progress))
    except ApiError as exc:
        raise EvaluationError(f"{exc}. The answers stored so far are kept: fix the server (or --model) and run "
                              "the same command with --resume to ask only for the rest.") from exc


async def _ask_all(db: Database, run_id: int, options: EvalOptions, endpoints: Sequence[Any],
                   todo: Sequence[Example], progress: Callable[[int], None]) -> int:
    assert options.model is not None
    model = options.model
    version = served_prompt_version(with_thought=options.with_thought)
    gate = asyncio.Semaphore(options.max_concurrency)
    stored = 0
    async with open_chat(options.backend, endpoints, RateLimiter(options.rps), timeout_s=options.timeout_s,
                         max_retries=options.max_retries) as chat:

        async def ask(example: Example) -> tuple[Example, Reply]:
            async with gate:
                reply = await chat.complete(chat_messages(example, with_thought=options.with_thought), model=model,
                                            max_tokens=options.max_new_tokens, temperature=0.0, json_mode=False)
            return example, reply

        tasks = [asyncio.create_task(ask(example)) for example in todo]
        try:
            for finished in asyncio.as_completed(tasks):
                example, reply = await finished
                row = prediction_row(example, reply, options, run_id, version)
                # One commit per answer: an interruption loses only the requests in flight.
                when_unlocked(functools.partial(add_generations, db, [row]))
                stored += 1
                progress(stored)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return stored
