"""The selection rules, one example at a time: which target each ablation takes, or why it leaves one out."""
from __future__ import annotations

import pytest

from exports.rules import REASONS, SourceRow, Target, dpo_sides, sft_target

BASE = dict(id=1, dataset="d", split="train", source_id="0", premise="p", hypothesis="h", gold=1, content_hash="x",
            thought_id=10, thought_text="t", thought_label=1, thought_model="tm", reflection_id=None,
            reflection_text=None, reflection_label=None, reflection_model=None, status=None, edited_thought=None,
            edited_label=None, suggested_label=None, bias_category=None, reviewer=None, last_event_id=None,
            chosen_reflection_id=None)
WRONG = dict(thought_label=0, reflection_id=20, reflection_text="r", reflection_label=1, reflection_model="rm")


def row(**changes: object) -> SourceRow:
    return SourceRow(**{**BASE, **changes})


def source(result: Target | str) -> str:
    return result if isinstance(result, str) else f"{result.source}:{result.label}"


@pytest.mark.parametrize("changes, expected", [
    ({}, {"correct-only": "thought:1", "reflected": "thought:1", "unmodified": "thought:1", "curated": "thought:1"}),
    (WRONG, {"correct-only": "thought_not_gold", "reflected": "reflection:1", "unmodified": "thought:0",
             "curated": "reflection:1"}),
    ({**WRONG, "reflection_label": 0}, {"correct-only": "thought_not_gold", "reflected": "label_not_gold",
                                        "unmodified": "thought:0", "curated": "label_not_gold"}),
    ({"thought_label": 0}, {"correct-only": "thought_not_gold", "reflected": "no_reflection",
                            "unmodified": "thought:0", "curated": "no_reflection"}),
    ({"thought_label": None, "thought_text": None}, {"correct-only": "parse_failed", "reflected": "parse_failed",
                                                    "unmodified": "parse_failed", "curated": "parse_failed"}),
    ({"thought_label": None, "thought_text": None, "reflection_id": 20, "reflection_text": "r",
      "reflection_label": 1}, {"correct-only": "parse_failed", "reflected": "reflection:1",
                               "unmodified": "parse_failed", "curated": "reflection:1"}),
    ({**WRONG, "reflection_label": None, "reflection_text": None}, {"reflected": "parse_failed"}),
    ({"thought_id": None, "thought_text": None, "thought_label": None},
     {"correct-only": "no_thought", "reflected": "no_thought", "unmodified": "no_thought", "curated": "no_thought"}),
    ({"gold": None}, {"correct-only": "unlabelled", "reflected": "unlabelled", "unmodified": "unlabelled",
                      "curated": "unlabelled"}),
])
def test_each_ablation_picks_its_target_or_says_why_not(changes, expected):
    for ablation, want in expected.items():
        assert source(sft_target(row(**changes), ablation)) == want, ablation


def test_a_reflection_that_argues_the_other_label_is_never_forced_to_gold():
    result = sft_target(row(**{**WRONG, "reflection_label": 0}), "reflected")
    assert result == "label_not_gold" and result in REASONS


@pytest.mark.parametrize("review, flags, expected", [
    ({"status": "rejected"}, {}, "rejected"),
    ({"status": "accepted", "bias_category": "gold_wrong"}, {}, "bias"),
    ({"status": "accepted", "bias_category": "gold_wrong"}, {"include_bias": True}, "reflection:1"),
    ({}, {"reviewed_only": True}, "pending"),
    ({}, {}, "reflection:1"),  # pending: the reflected rule
    ({"status": "edited", "edited_thought": "mine", "edited_label": 1}, {}, "edit:1"),
    ({"status": "edited", "edited_thought": "mine", "edited_label": 0}, {}, "edit_not_gold"),
    ({"status": "edited", "edited_thought": "mine", "edited_label": 0, "suggested_label": 0},
     {"use_relabels": True}, "edit:0"),
    # A relabel to the thought's label makes the (formerly wrong) thought the target ...
    ({"status": "accepted", "suggested_label": 0}, {"use_relabels": True}, "thought:0"),
    # ... and is ignored without --use-relabels.
    ({"status": "accepted", "suggested_label": 0}, {}, "reflection:1"),
])
def test_curated_applies_review_decisions(review, flags, expected):
    assert source(sft_target(row(**WRONG, **review), "curated", **flags)) == expected


def test_a_relabel_no_target_reaches_is_counted_as_such():
    correct_thought = row(status="accepted", suggested_label=0)  # thought says 1, reviewer suggests 0
    assert sft_target(correct_thought, "curated", use_relabels=True) == "relabel_mismatch"
    both_disagree = row(**{**WRONG, "reflection_label": 0}, suggested_label=1)  # relabel equal to gold: not a relabel
    assert sft_target(both_disagree, "curated", use_relabels=True) == "label_not_gold"


def test_the_edit_keeps_its_text_and_label_exactly():
    edited = row(**WRONG, status="edited", edited_thought="Step 1: My Own Words.", edited_label=1)
    assert sft_target(edited, "curated") == Target("Step 1: My Own Words.", 1, "edit", None, "human")


def test_dpo_pairs_an_accepted_reflection_with_the_flawed_thought():
    chosen, rejected = dpo_sides(row(**WRONG, status="accepted"), [], include_bias=False, use_relabels=False)
    assert (chosen.source, chosen.generation_id) == ("reflection", 20)
    assert [(r.source, r.generation_id, r.label) for r in rejected] == [("thought", 10, 0)]


def test_dpo_pairs_an_edit_with_both_generations_it_replaced():
    edited = row(**WRONG, status="edited", edited_thought="mine", edited_label=1)
    chosen, rejected = dpo_sides(edited, [], include_bias=False, use_relabels=False)
    assert chosen.source == "edit"
    assert [r.source for r in rejected] == ["thought", "reflection"]


def test_dpo_adds_the_versions_not_chosen_and_skips_sides_equal_to_chosen():
    other = Target("r2", 1, "reflection_not_chosen", 21, "rm")
    same_text = Target("r", 1, "reflection_not_chosen", 22, "rm")
    _chosen, rejected = dpo_sides(row(**WRONG, status="accepted", chosen_reflection_id=20), [other, same_text],
                                 include_bias=False, use_relabels=False)
    assert [r.generation_id for r in rejected] == [10, 21]


@pytest.mark.parametrize("changes, reason", [
    ({}, "pending"),
    ({"status": "rejected"}, "rejected"),
    ({"status": "accepted", "bias_category": "ambiguous"}, "bias"),
    ({"status": "accepted", "reflection_label": 0}, "label_not_gold"),
])
def test_dpo_needs_a_decision_that_reaches_gold(changes, reason):
    assert dpo_sides(row(**{**WRONG, **changes}), [], include_bias=False, use_relabels=False) == reason


def test_dpo_has_no_pair_for_a_thought_that_was_right_all_along():
    assert dpo_sides(row(status="accepted"), [], include_bias=False, use_relabels=False) == "no_pair"
