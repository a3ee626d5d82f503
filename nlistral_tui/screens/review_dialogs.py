"""The review screen's dialogs about the shown example or the filter: what each one offers and asks."""
from __future__ import annotations

from typing import Any

from db.detail import ExampleDetail
from db.queues import QueueFilter
from db.reviews import BIAS_CATEGORIES
from nlistral_tui.screens.choice import ChoiceScreen
from nlistral_tui.screens.edit import EditScreen
from nlistral_tui.widgets.detail_text import BIAS_NAMES

CLEAR = "clear"  # the relabel dialog's value for clearing the suggestion


def edit_dialog(d: ExampleDetail) -> EditScreen:
    """Edit the improved thought and its label, starting from the current improved thought."""
    return EditScreen(d.id, d.improved_thought, d.improved_label, gold=d.example.gold_label,
                      suggested=d.state.suggested_label)


def bias_dialog(d: ExampleDetail) -> ChoiceScreen:
    """Flag labeler bias: a category (or clear the flag) and a note; the result is (category or None, note)."""
    choices: list[tuple[str, str, Any]] = [(str(i), BIAS_NAMES[c], c) for i, c in enumerate(BIAS_CATEGORIES, 1)]
    if d.state.bias_category:
        choices.append(("c", "clear the flag", None))
    return ChoiceScreen(f"Flag labeler bias on #{d.id}", choices, note=d.state.bias_note or "")


def relabel_dialog(d: ExampleDetail) -> ChoiceScreen:
    """Suggest a label beside gold: 1, 0 or CLEAR."""
    choices: list[tuple[str, str, Any]] = [("1", "suggest 1 entailment", 1), ("0", "suggest 0 no-entailment", 0),
                                           ("c", "clear the suggestion", CLEAR)]
    return ChoiceScreen(f"Suggest a label for #{d.id} (gold {d.example.gold_label} is kept)", choices)


def bulk_dialog(action: str, f: QueueFilter, undecided: list[int], decided: list[int]) -> ChoiceScreen:
    """Ask before a bulk step: by default it takes only the undecided examples; replacing earlier decisions
    (edits among them) has its own key. The result is the ids to take, or None."""
    choices: list[tuple[str, str, Any]] = []
    if undecided:
        choices.append(("y", f"yes, {action} the {len(undecided):,} undecided (one undo step)", undecided))
    if decided:
        everything = f"{action} all {len(undecided) + len(decided):,}, replacing {len(decided):,} decisions (edits too)"
        choices.append(("a", everything, undecided + decided))
    choices.append(("n", "no", None))
    title = f"{action.capitalize()} in {f.describe()}? {len(undecided):,} undecided · {len(decided):,} decided"
    return ChoiceScreen(title, choices)
