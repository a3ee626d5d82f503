"""The one definition of the training prompt and target, shared by export, training and evaluation.

Evaluation must prompt exactly as training did, so nothing else may build these strings.
"""
from __future__ import annotations

import json

INSTRUCTION_COT = (
    "Does the premise entail the hypothesis? Think it through in a few short numbered steps, then "
    'reply with JSON only, in the form {"thought_process": "<your steps>", "predicted_label": <1 or 0>}, '
    "where 1 means the hypothesis follows from the premise and 0 means it does not."
)
INSTRUCTION_LABEL_ONLY = (
    "Does the premise entail the hypothesis? Reply with JSON only, in the form "
    '{"predicted_label": <1 or 0>}, where 1 means the hypothesis follows from the premise and 0 means '
    "it does not."
)


def user_prompt(premise: str, hypothesis: str, *, with_thought: bool = True) -> str:
    """The user turn: the pair, then the instruction (CoT or label-only)."""
    instruction = INSTRUCTION_COT if with_thought else INSTRUCTION_LABEL_ONLY
    return f"Premise: {premise}\nHypothesis: {hypothesis}\n\n{instruction}"


def cot_target(thought: str, label: int) -> str:
    """The assistant turn for CoT training: the JSON object, text in its original casing."""
    return json.dumps({"thought_process": thought, "predicted_label": int(label)}, ensure_ascii=False)


def label_target(label: int) -> str:
    """The assistant turn for the label-only baseline."""
    return json.dumps({"predicted_label": int(label)})


def inst_prompt(prompt: str) -> str:
    """The Mistral [INST] layout up to where the model's answer starts."""
    return f"<s>[INST] {prompt} [/INST]"


def inst_text(prompt: str, target: str) -> str:
    """One full SFT record in the Mistral [INST] layout."""
    return f"{inst_prompt(prompt)} {target} </s>"


def messages(prompt: str, target: str | None = None) -> list[dict[str, str]]:
    """The same turn(s) as chat messages, for TRL's chat templates."""
    turns = [{"role": "user", "content": prompt}]
    if target is not None:
        turns.append({"role": "assistant", "content": target})
    return turns
