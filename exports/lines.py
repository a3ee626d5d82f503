"""JSON Lines records of the exports, laid out only by exports.formats.

`sft_line` and `dpo_line` are the definitions: json.dumps of the record (key order fixed,
ensure_ascii=False, one object per line, "\\n" line ends). Every record starts with the store's
example id, the example's dataset and its id in the user's own file (source_id). The same SFT
layout compiled for speed is exports.fast.sft_layout.
"""
from __future__ import annotations

import json
from typing import Any

from exports.formats import cot_target, inst_text, messages, user_prompt

_ENCODER = json.JSONEncoder(ensure_ascii=False)  # exactly json.dumps(..., ensure_ascii=False)
# The keys of a DPO record's provenance, in order, with their types (for the Hugging Face features); "decisions"
# is a list of each reviewer's standing decision behind the pair (exports.policy.provenance_of).
DECISION_FIELDS = {"reviewer": "string", "decision": "string", "reason": "string", "comment": "string",
                   "adjudication": "bool"}
PROVENANCE_FIELDS: dict[str, str | dict[str, str]] = {
    "dataset": "string", "split": "string", "source_id": "string", "gold_label": "int64",
    "target_label": "int64", "review_status": "string", "reviewer": "string", "review_event": "int64",
    "chosen_source": "string", "chosen_generation_id": "int64", "chosen_model": "string",
    "rejected_source": "string", "rejected_generation_id": "int64", "rejected_model": "string",
    "decisions": DECISION_FIELDS,
}


def sft_text(premise: str, hypothesis: str, thought: str, label: int) -> str:
    """The full training text of an SFT row in the Mistral [INST] layout (what the length check measures)."""
    return inst_text(user_prompt(premise, hypothesis), cot_target(thought, label))


def sft_line(example_id: int, dataset: str, source_id: str, premise: str, hypothesis: str, thought: str, label: int,
             fmt: str) -> str:
    """One SFT record: {"id", "dataset", "source_id", "text"} (inst) or {..., "messages"} (messages), newline ended."""
    prompt, target = user_prompt(premise, hypothesis), cot_target(thought, label)
    record: dict[str, Any] = {"id": example_id, "dataset": dataset, "source_id": source_id}
    if fmt == "inst":
        record["text"] = inst_text(prompt, target)
    else:
        record["messages"] = messages(prompt, target)
    return _ENCODER.encode(record) + "\n"


def dpo_line(example_id: int, dataset: str, source_id: str, premise: str, hypothesis: str, chosen: tuple[str, int],
             rejected: tuple[str, int], provenance: dict[str, Any]) -> str:
    """One DPO record: {"id", "dataset", "source_id", "prompt", "chosen", "rejected", "provenance"}, newline ended."""
    record = {
        "id": example_id,
        "dataset": dataset,
        "source_id": source_id,
        "prompt": user_prompt(premise, hypothesis),
        "chosen": cot_target(*chosen),
        "rejected": cot_target(*rejected),
        "provenance": provenance,
    }
    return _ENCODER.encode(record) + "\n"
