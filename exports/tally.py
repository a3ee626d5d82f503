"""Counting an export as it is selected: what goes in (by label, source, model, split), what is left out and why."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from exports.rules import SourceRow

MAX_IDS_PER_REASON = 1000  # example ids kept per left-out reason (the counts are always complete)


@dataclass(frozen=True)
class CrossSplit:
    """A written row whose premise and hypothesis are also stored under another split."""

    example_id: int
    scope: str  # dataset/split of the written row
    also_in: tuple[str, ...]  # dataset/split#id of the other copies

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.example_id, "scope": self.scope, "also_in": list(self.also_in)}


@dataclass(frozen=True)
class ExportPlan:
    """What an export writes (or would write): counts only, cheap to show before writing."""

    kind: str  # sft | dpo
    rule: str  # the ablation, or review-pairs for DPO
    considered: int  # examples in the chosen splits and datasets
    rows: int  # rows (SFT) or pairs (DPO) written
    examples: int  # examples that contributed rows
    by_label: dict[str, int]
    by_source: dict[str, int]
    by_model: dict[str, int]
    by_split: dict[str, int]
    left_out: dict[str, int]  # reason -> examples (too_long counts DPO pairs)
    left_out_ids: dict[str, list[int]]  # reason -> first MAX_IDS_PER_REASON example ids
    cross_split: tuple[CrossSplit, ...]
    length_measure: str
    max_tokens: int
    review_log_position: int
    warnings: tuple[str, ...] = field(default=())

    def label_balance(self) -> dict[str, float]:
        """The share of each label among the rows written."""
        return {label: n / self.rows for label, n in self.by_label.items()} if self.rows else {}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts (the manifest's `counts`)."""
        return {
            "kind": self.kind,
            "rule": self.rule,
            "considered": self.considered,
            "rows": self.rows,
            "examples": self.examples,
            "by_label": self.by_label,
            "label_balance": {k: round(v, 4) for k, v in self.label_balance().items()},
            "by_source": self.by_source,
            "by_model": self.by_model,
            "by_split": self.by_split,
            "left_out": self.left_out,
            "left_out_ids": self.left_out_ids,
            "cross_split": [c.as_dict() for c in self.cross_split],
            "length_measure": self.length_measure,
            "max_tokens": self.max_tokens,
            "review_log_position": self.review_log_position,
            "warnings": list(self.warnings),
        }


class Tally:
    """Accumulates an ExportPlan row by row; also decides duplicates and notes cross-split pairs."""

    def __init__(self, kind: str, rule: str, split_index: dict[str, list[tuple[int, str, str]]]):
        self.kind, self.rule, self.split_index = kind, rule, split_index
        self.considered = 0
        self.examples = 0
        self.written: Counter[tuple[int, str, str, str, str]] = Counter()  # (label, source, model, dataset, split)
        self.left_out: Counter[str] = Counter()
        self.left_out_ids: dict[str, list[int]] = {}
        self.cross_split: list[CrossSplit] = []
        self._seen: set[str] = set()

    def leave_out(self, example_id: int, reason: str, n: int = 1) -> None:
        """Count an example (or n pairs of it) left out for a reason."""
        self.left_out[reason] += n
        ids = self.left_out_ids.setdefault(reason, [])
        if len(ids) < MAX_IDS_PER_REASON and (not ids or ids[-1] != example_id):
            ids.append(example_id)

    def admit(self, row: SourceRow) -> bool:
        """Whether an example that passed the rules and the length check is written: the first copy of a pair is."""
        if row.content_hash in self._seen:
            self.leave_out(row.id, "duplicate")
            return False
        self._seen.add(row.content_hash)
        self.examples += 1
        copies = self.split_index.get(row.content_hash)
        if copies:
            others = tuple(f"{d}/{s}#{i}" for i, d, s in copies if i != row.id and s != row.split)
            if others:
                self.cross_split.append(CrossSplit(row.id, f"{row.dataset}/{row.split}", others))
        return True

    def add(self, label: int, source: str, model: str, row: SourceRow) -> None:
        """Count one row written."""
        self.written[(label, source, model, row.dataset, row.split)] += 1

    def plan(self, *, length_measure: str, max_tokens: int, review_log_position: int) -> ExportPlan:
        """The counts so far, as an ExportPlan."""
        by: list[Counter[str]] = [Counter(), Counter(), Counter(), Counter()]
        for (label, source, model, dataset, split), n in self.written.items():
            for counter, key in zip(by, (str(label), source, model, f"{dataset}/{split}")):
                counter[key] += n
        by_label, by_source, by_model, by_split = (dict(sorted(c.items())) for c in by)
        warnings = []
        if self.cross_split:
            warnings.append(f"{len(self.cross_split)} written rows have the same premise and hypothesis as "
                            "an example of another split (possible leakage); see cross_split.")
        return ExportPlan(
            kind=self.kind, rule=self.rule, considered=self.considered, rows=sum(self.written.values()),
            examples=self.examples, by_label=by_label, by_source=by_source, by_model=by_model,
            by_split=by_split, left_out=dict(sorted(self.left_out.items())),
            left_out_ids={k: self.left_out_ids[k] for k in sorted(self.left_out_ids)},
            cross_split=tuple(self.cross_split), length_measure=length_measure, max_tokens=max_tokens,
            review_log_position=review_log_position, warnings=tuple(warnings),
        )
