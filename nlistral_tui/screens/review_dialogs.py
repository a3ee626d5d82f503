"""The review screen's dialogs about the shown example or the filter: what each one offers and asks."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from db.detail import ExampleDetail, TeamDecision
from db.queues import QueueFilter
from db.reviews import BIAS_CATEGORIES
from nlistral_tui.screens.choice import ChoiceScreen
from nlistral_tui.screens.edit import EditScreen
from nlistral_tui.widgets.detail_text import BIAS_NAMES

CLEAR = "clear"  # the relabel dialog's value for clearing the suggestion
REASON_HINT = "1-9 a reason · 0 or enter: none · tab: a comment · esc cancels"


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


def reason_dialog(action: str, example_id: int, reasons: Sequence[str], comment: str | None = "") -> ChoiceScreen:
    """Why reject or flag: 1-9 a reason, 0 (or enter) none (""). With a comment field (comment not None) the
    result is (reason, comment), else the reason; esc cancels the decision (None)."""
    choices: list[tuple[str, str, Any]] = [("0", f"{action} without a reason", ""),
                                           *((str(i), reason, reason) for i, reason in enumerate(reasons, 1))]
    hint = REASON_HINT if comment is not None else REASON_HINT.replace(" · tab: a comment", "")
    return ChoiceScreen(f"Why {action} #{example_id}?", choices, note=comment, hint=hint,
                        note_placeholder="comment (optional)")


def adjudicate_dialog(d: ExampleDetail, reviewer: str) -> ChoiceScreen:
    """Settle a conflict: adopt one reviewer's standing decision, accept, or reject (a reason next).
    The result is (a TeamDecision, "accept" or "reject"; comment)."""
    choices: list[tuple[str, str, Any]] = [
        (str(i), f"adopt {t.reviewer}'s {t.decision}" + (f" ({t.reason})" if t.reason else ""), t)
        for i, t in enumerate(d.decisions[:9], 1)]
    choices += [("a", "accept", "accept"), ("r", "reject (the reason next)", "reject")]
    return ChoiceScreen(f"Adjudicate #{d.id} as {reviewer}: the final decision, marked in the log", choices,
                        note="", note_placeholder="comment (optional)")


def why(payload: dict[str, Any], reason: str | None, comment: str | None) -> dict[str, Any]:
    """payload with the reason (if any) and the comment (a blank one clears an earlier comment)."""
    payload = {k: v for k, v in payload.items() if k != "comment"}
    if reason:
        payload["reason"] = reason
    if comment and comment.strip():
        payload["comment"] = comment.strip()
    return payload


def recorded_again(t: TeamDecision, comment: str | None, adjudication: bool = False) -> dict[str, Any]:
    """The payload that records a standing decision again: with this comment, and as an adjudication if asked."""
    payload = why(json.loads(t.payload), t.reason, comment)
    return {**payload, "adjudication": True} if adjudication else payload
