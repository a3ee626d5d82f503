"""Plain typed records handed from the store to the rest of the program (never a database handle)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Example:
    """One premise/hypothesis pair with its gold label and derived pointers."""

    id: int
    dataset: str
    split: str
    source_id: str
    premise: str
    hypothesis: str
    gold_label: int | None
    content_hash: str
    thought_id: int | None = None
    thought_label: int | None = None
    thought_model: str | None = None
    reflection_id: int | None = None
    reflection_label: int | None = None
    parse_failed: bool = False

    @property
    def disagrees(self) -> bool:
        """True when the current thought's label is known and differs from gold."""
        return (
            self.gold_label is not None
            and self.thought_label is not None
            and self.thought_label != self.gold_label
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Example:
        """Build from a row of the examples table."""
        data = {k: row[k] for k in EXAMPLE_COLUMNS if k in row}
        data["parse_failed"] = bool(data.get("parse_failed"))
        return cls(**data)


# The examples table's columns, in table order: Example is their one declaration (db/schema.py's first
# migration created the table; a migration is history and keeps its own text).
EXAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Example))
# The columns an import writes, dataset through content_hash; those after it are derived from generations.
PAIR_COLUMNS: tuple[str, ...] = EXAMPLE_COLUMNS[1:EXAMPLE_COLUMNS.index("content_hash") + 1]


@dataclass(frozen=True)
class Generation:
    """One model output: a thought, reflection, prediction or judge score."""

    id: int
    example_id: int
    kind: str
    model: str
    backend: str
    parse_status: str
    created_at: str
    parent_id: int | None = None
    prompt_version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    thought_process: str | None = None
    predicted_label: int | None = None
    error_analysis: str | None = None
    score: float | None = None
    rationale: str | None = None
    raw_response: str | None = None
    flags: tuple[str, ...] = ()
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    run_id: int | None = None
    dedupe_key: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Generation:
        """Build from a row of the generations table."""
        data = dict(row)
        data["params"] = json.loads(data.get("params") or "{}")
        data["flags"] = tuple(json.loads(data.get("flags") or "[]"))
        return cls(**data)


@dataclass(frozen=True)
class ReviewState:
    """The current human decision on one example, derived from the review log."""

    example_id: int
    status: str = "pending"
    edited_thought: str | None = None
    edited_label: int | None = None
    edit_diff: str | None = None
    suggested_label: int | None = None
    bias_category: str | None = None
    bias_note: str | None = None
    note: str | None = None
    chosen_reflection_id: int | None = None
    skipped: bool = False
    reviewer: str | None = None
    seconds_spent: float = 0.0
    last_event_id: int | None = None
    conflict: bool = False  # reviewers' standing decisions differ and none is an adjudication (db/team.py)
    adjudicated: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ReviewState:
        """Build from a row of the review_state table."""
        data = dict(row)
        data["skipped"] = bool(data.get("skipped"))
        data["conflict"] = bool(data.get("conflict"))
        data["adjudicated"] = bool(data.get("adjudicated"))
        return cls(**data)
