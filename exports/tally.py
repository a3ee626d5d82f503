"""Counting an export as its blocks come in: what goes in (by label, source, model, split), what is left out and why."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from exports.fast.block import Block, Key, LeftOut


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
    # The reasons reviewers gave, by outcome: {"written" or a left-out reason: {reason: standing decisions}},
    # over every standing decision (each reviewer's, db.team) of the examples with that outcome.
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)

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
            "reasons": self.reasons,
        }


class Tally:
    """Accumulates an ExportPlan block by block; decides duplicates (the first written copy of a pair wins)."""

    def __init__(self, kind: str, rule: str):
        self.kind, self.rule = kind, rule
        self.considered = 0
        self.examples = 0
        self.written: Counter[Key] = Counter()
        self.left_out = LeftOut()
        self.cross_split: list[CrossSplit] = []
        self.first_copy: dict[str, int] = {}  # content_hash -> the example id written for it
        self.later_copies: list[tuple[int, int]] = []  # (written id, left-out duplicate id)
        self.reasons: Counter[tuple[str, str]] = Counter()  # (outcome, reason) -> standing decisions

    def merge(self, block: Block) -> bytes:
        """Count in the next block (blocks come in id order); its lines, less the duplicates of pairs written before."""
        self.considered += block.considered
        self.left_out.merge(block.left_out)
        firsts = list(map(self.first_copy.setdefault, block.hashes, block.ids))  # the id written for each pair
        if firsts == block.ids:  # no pair written before: the common case, at C speed
            self.examples += len(firsts)
            self._count(block.key_table, block.keys)
            self._count_reasons(block, set())
            return block.data
        copies_before = len(self.later_copies)
        lines = block.data.splitlines(keepends=True)  # JSON escapes every line break inside a record
        per_example = block.lines_per_example or [1] * len(block.ids)
        kept: list[bytes] = []
        keys: list[int] = []
        start = 0
        for example_id, first, n in zip(block.ids, firsts, per_example, strict=True):
            if first == example_id:
                self.examples += 1
                kept.extend(lines[start:start + n])
                keys.extend(block.keys[start:start + n])
            else:
                self.left_out.add(example_id, "duplicate")
                self.later_copies.append((first, example_id))
            start += n
        self._count(block.key_table, keys)
        self._count_reasons(block, {later for _first, later in self.later_copies[copies_before:]})
        return b"".join(kept)

    def _count_reasons(self, block: Block, duplicates: set[int]) -> None:
        for example_id, outcome, reasons in block.reasons:
            if outcome == "written" and example_id in duplicates:
                outcome = "duplicate"
            self.reasons.update((outcome, reason) for reason in reasons)

    def _count(self, table: list[Key], keys: list[int]) -> None:
        for index, n in Counter(keys).items():
            self.written[table[index]] += n

    def find_cross_split(self, copies: dict[int, tuple[str, str]], outside: list[tuple[int, str, str, str]]) -> None:
        """Note written pairs also stored under another split: left-out copies and rows outside the export.

        copies: (dataset, split) of the written and duplicate ids in later_copies; outside: (id, dataset,
        split, content_hash) of the examples outside the export's splits and datasets.
        """
        found: dict[int, list[str]] = {}
        for first, later in self.later_copies:
            if copies[first][1] != copies[later][1]:
                found.setdefault(first, []).append(f"{copies[later][0]}/{copies[later][1]}#{later}")
        for example_id, dataset, split, chash in outside:
            written = self.first_copy.get(chash)
            if written is not None and copies[written][1] != split:
                found.setdefault(written, []).append(f"{dataset}/{split}#{example_id}")
        self.cross_split = [CrossSplit(first, "/".join(copies[first]), tuple(others))
                            for first, others in sorted(found.items())]

    def plan(self, *, length_measure: str, max_tokens: int, review_log_position: int) -> ExportPlan:
        """The counts so far, as an ExportPlan."""
        by: list[Counter[str]] = [Counter(), Counter(), Counter(), Counter()]
        for (label, source, model, dataset, split), n in self.written.items():
            for counter, key in zip(by, (str(label), source, model, f"{dataset}/{split}"), strict=True):
                counter[key] += n
        by_label, by_source, by_model, by_split = (dict(sorted(c.items())) for c in by)
        warnings = []
        if self.cross_split:
            warnings.append(f"{len(self.cross_split)} written rows have the same premise and hypothesis as "
                            "an example of another split (possible leakage); see cross_split.")
        return ExportPlan(
            kind=self.kind, rule=self.rule, considered=self.considered, rows=sum(self.written.values()),
            examples=self.examples, by_label=by_label, by_source=by_source, by_model=by_model,
            by_split=by_split, left_out=dict(sorted(self.left_out.counts.items())),
            left_out_ids={k: self.left_out.ids[k] for k in sorted(self.left_out.ids)},
            cross_split=tuple(self.cross_split), length_measure=length_measure, max_tokens=max_tokens,
            review_log_position=review_log_position, warnings=tuple(warnings), reasons=self._reasons_by_outcome(),
        )

    def _reasons_by_outcome(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (outcome, reason), n in sorted(self.reasons.items()):
            out.setdefault(outcome, {})[reason] = n
        return out
