"""The requests a run still has to send, each with the dedupe key its answer is stored under."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from db.generations import dedupe_key
from db.tasks import pending_rows
from pipeline.generate.options import Selection, StageOptions
from pipeline.prompts import Prompt, label_name

CHARS_PER_TOKEN = 4  # rough, for estimates before the server reports real counts
GOLD_SHOWN = ("reflection", "judge")  # the stages whose prompt is given the gold label


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
    rows = pending_rows(db, selection.scope, opts.stage, opts.model, opts.prompt.version,
                        retry_failed=opts.retry_failed, judge_target=opts.judge_target)
    return [build_task(opts, row) for row in rows]


def build_task(opts: StageOptions, row: dict[str, Any], nonce: str | None = None) -> Task:
    """The request for one row of db.tasks.pending_rows (a nonce makes a new version of a stored answer)."""
    prompt = opts.prompt
    values: dict[str, Any] = {"premise": row["premise"], "hypothesis": row["hypothesis"]}
    if opts.stage != "thought":
        values.update(thought=row["thought"] or "(no reasoning was given)",
                      label="unknown" if row["label"] is None else row["label"], label_name=label_name(row["label"]))
    if opts.stage in GOLD_SHOWN:  # a blind reflection's prompt never gets gold (row["gold_label"] only selected it)
        gold = row["gold_label"]
        values.update(gold="unknown" if gold is None else gold, gold_name=label_name(gold))
    key = generation_key(opts.stage, row["id"], opts.model, prompt.version, row["parent_id"], row["attempts"], nonce)
    return Task(row["id"], row["gold_label"], row["parent_id"], prompt.messages(**values), key)
