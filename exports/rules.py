"""The selection rules: which target each example contributes to an export, or why it is left out.

A target is a thought text and a label, written with exports.formats.cot_target. Rules by ablation
(every rule first leaves out examples without a gold label: `unlabelled`):

- `unmodified`: the current thought as generated, whatever its label (`no_thought`, `parse_failed`).
- `correct-only`: the current thought when its label equals gold (else `thought_not_gold`).
- `reflected` (the original paper's set): the thought when it equals gold; otherwise (wrong or
  unparsed) the latest reflection of that thought when its label equals gold. A reflection that
  argues for the other label is left out (`label_not_gold`), never forced to gold. Review
  decisions are ignored, so this set is the same before and after review.
- `curated`: review decisions applied, checked in this order:
  `rejected` examples are left out; examples flagged for labeler bias are left out (`bias`) unless
  include_bias; pending ones are left out (`pending`) only with reviewed_only, otherwise they
  follow the `reflected` rule. With use_relabels, a suggested label replaces gold as the label a
  target must reach. An edited example contributes the edit (text and label as edited) when the
  edited label equals that label (else `edit_not_gold`); an accepted or pending one contributes
  its thought when it reaches the label, else the current reflection (the version chosen in
  review, else the latest) when that one does. Where a relabel is in force and no target reaches
  it, the reason is `relabel_mismatch`. Under several reviewers, an example they contest is first settled
  by the export's policy (exports.policy, db.curation): left out as `contested`, or given the majority's
  or the latest decision.

So every target written has the example's gold label (or, with use_relabels, its suggested label),
except in `unmodified`, which keeps wrong labels by design.

DPO pairs (from review decisions only; pending examples are left out as `pending`): `chosen` is the
curated target of an accepted or edited example; `rejected` is each generation the reviewer passed
over: the thought as generated and the current reflection (when the chosen side is not that
generation: an edit replaced them, or a relabel chose the thought over the reflection), and, when
a reflection version was chosen explicitly, the other versions of the same thought. Sides without a
parsed label, or with the same text and label as the chosen one, are skipped; an accepted example
with no side left (a thought that was right all along) is `no_pair`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

from db import curation

REASONS: dict[str, str] = {
    "unlabelled": "no gold label to check a target against",
    "no_thought": "no thought generated yet",
    "parse_failed": "the thought (or the reflection it needs) did not parse, so it has no label",
    "thought_not_gold": "the thought's label disagrees with gold (correct-only)",
    "no_reflection": "the thought disagrees with gold and has no reflection yet",
    "label_not_gold": "the reflection's label disagrees with gold (never forced to gold)",
    "edit_not_gold": "the edited label disagrees with gold (relabel and pass --use-relabels, or fix the edit)",
    "relabel_mismatch": "no target reaches the suggested label (--use-relabels)",
    "rejected": "rejected in review",
    "contested": "reviewers disagree, no one adjudicated, and --policy does not settle it (unanimous; a tie)",
    "bias": "flagged for labeler bias (pass --include-bias to keep)",
    "pending": "not reviewed yet (--reviewed-only; DPO pairs need a decision)",
    "no_pair": "accepted, but no passed-over generation to prefer it to (DPO)",
    "small_edit": "edited, but the edit is small (--route small=R): a target as edited in SFT, no DPO pair",
    "too_long": "longer than --max-tokens: left out, never cut",
    "duplicate": "same premise and hypothesis as a row already written",
}
SOURCES = ("thought", "reflection", "edit")  # exports.routing names a large edit's source edit_large
_EDIT = ("edit",)  # the sources of an edited example (db.curation)
HUMAN = "human"  # the model name counted for edited targets


class SourceRow(NamedTuple):
    """One example with its current thought, reflection and review state (columns of source.SQL)."""

    id: int
    dataset: str
    split: str
    premise: str
    hypothesis: str
    gold: int | None
    content_hash: str
    source_id: str  # the example's id in the user's own file
    thought_id: int | None
    thought_text: str | None
    thought_label: int | None
    thought_model: str | None
    reflection_id: int | None
    reflection_text: str | None
    reflection_label: int | None
    reflection_model: str | None
    status: str | None
    edited_thought: str | None
    edited_label: int | None
    suggested_label: int | None
    bias_category: str | None
    reviewer: str | None  # this and the rest: DPO provenance only (None in SFT queries)
    last_event_id: int | None
    chosen_reflection_id: int | None
    conflict: int | None = None  # 1: reviewers' standing decisions differ and none adjudicated (exports.policy)


class Target(NamedTuple):
    """What one row trains on: the thought text and label, and where they came from."""

    thought: str
    label: int
    source: str  # thought | reflection | edit (DPO rejected sides: also reflection_not_chosen)
    generation_id: int | None  # None for an edit
    model: str


# Target(text, label, source, generation_id, model) without the Python frame of the named tuple's __new__:
# a rule builds one per example, a million times in a large export.
_target = functools.partial(tuple.__new__, Target)


def thought_target(row: SourceRow) -> Target | None:
    """The current thought as generated, or None when there is none or it did not parse."""
    if row.thought_id is None or row.thought_label is None or row.thought_text is None:
        return None
    return _target((row.thought_text, row.thought_label, "thought", row.thought_id, row.thought_model or ""))


def reflection_target(row: SourceRow) -> Target | None:
    """The current reflection's improved thought, or None when there is none or it did not parse."""
    if row.reflection_id is None or row.reflection_label is None or row.reflection_text is None:
        return None
    return _target((row.reflection_text, row.reflection_label, "reflection", row.reflection_id,
                    row.reflection_model or ""))


def reaching(row: SourceRow, label: int, relabelled: bool = False) -> Target | str:
    """The thought if it has `label`, else the reflection if it does, else the reason neither is used."""
    if row.thought_label == label and row.thought_text is not None:  # a label implies a stored thought
        return _target((row.thought_text, label, "thought", row.thought_id, row.thought_model or ""))
    if row.reflection_id is None:
        if row.thought_id is None:
            return "no_thought"
        if thought_target(row) is None:
            return "parse_failed"
        return "relabel_mismatch" if relabelled else "no_reflection"
    reflection = reflection_target(row)
    if reflection is None:
        return "parse_failed"
    if reflection.label == label:
        return reflection
    return "relabel_mismatch" if relabelled else "label_not_gold"


def curated_target(row: SourceRow, include_bias: bool, use_relabels: bool, reviewed_only: bool) -> Target | str:
    """The curated rule (module docstring; its label as data in db.curation) for one labelled example."""
    status = row.status or "pending"
    if status in curation.LEFT_OUT:
        return status
    if row.bias_category is not None and not include_bias:
        return "bias"
    if status == "pending" and reviewed_only:
        return "pending"
    relabelled = use_relabels and row.suggested_label is not None and row.suggested_label != row.gold
    label = row.suggested_label if relabelled else row.gold
    if label is None:
        return "unlabelled"
    if curation.SOURCES.get(status) == _EDIT:
        if row.edited_label != label:
            return "relabel_mismatch" if relabelled else "edit_not_gold"
        return _target((row.edited_thought or "", label, "edit", None, HUMAN))
    return reaching(row, label, relabelled)  # curation.SOURCES: the thought, then the reflection


def sft_rule(ablation: str, *, include_bias: bool = False, use_relabels: bool = False,
             reviewed_only: bool = False) -> Callable[[SourceRow], Target | str]:
    """The rule of an ablation as a function of one example: its target, or the reason it is left out."""

    def curated(row: SourceRow) -> Target | str:
        if row.gold is None:
            return "unlabelled"
        return curated_target(row, include_bias, use_relabels, reviewed_only)

    def reflected(row: SourceRow) -> Target | str:
        return "unlabelled" if row.gold is None else reaching(row, row.gold)

    def thought_only(row: SourceRow) -> Target | str:
        if row.gold is None:
            return "unlabelled"
        thought = thought_target(row)
        if thought is None:
            return "no_thought" if row.thought_id is None else "parse_failed"
        if ablation == "unmodified" or thought.label == row.gold:
            return thought
        return "thought_not_gold"

    return {"curated": curated, "reflected": reflected}.get(ablation, thought_only)


def sft_target(row: SourceRow, ablation: str, *, include_bias: bool = False, use_relabels: bool = False,
               reviewed_only: bool = False) -> Target | str:
    """The target an example contributes under an ablation, or the reason it is left out."""
    return sft_rule(ablation, include_bias=include_bias, use_relabels=use_relabels, reviewed_only=reviewed_only)(row)


def dpo_sides(row: SourceRow, other_versions: Sequence[Target], *, include_bias: bool,
              use_relabels: bool) -> tuple[Target, list[Target]] | str:
    """The chosen target and the passed-over ones of a reviewed example, or the reason it gives no pair.

    other_versions: the reflection versions of the current thought that were not chosen, when a
    version was chosen explicitly (empty otherwise).
    """
    if row.gold is None:
        return "unlabelled"
    if (row.status or "pending") == "pending":
        return "pending"
    chosen = curated_target(row, include_bias=include_bias, use_relabels=use_relabels, reviewed_only=True)
    if isinstance(chosen, str):
        return chosen
    candidates = [thought_target(row), reflection_target(row)]
    candidates.extend(other_versions)
    rejected: list[Target] = []
    seen = {(chosen.thought, chosen.label)}
    for side in candidates:
        if side is None or side.generation_id == chosen.generation_id or (side.thought, side.label) in seen:
            continue
        seen.add((side.thought, side.label))
        rejected.append(side)
    return (chosen, rejected) if rejected else "no_pair"
