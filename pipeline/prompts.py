"""The generation prompts (thought, reflection, blind reflection, judge), each versioned by a hash of its text.

Every generation stores the version of the prompt it was made with, so changing a word here makes
a new version: `generate` then treats the examples as not done for that version, and old outputs
stay comparable by version. The training prompt is not here: it lives in exports/formats.py.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

LABEL_NAMES = {1: "entailment", 0: "no entailment"}


@dataclass(frozen=True)
class Prompt:
    """A system message, a user-message template and the sampling settings that go with them."""

    name: str
    system: str
    user: str  # str.format template; the values are inserted verbatim (braces in them are safe)
    max_tokens: int
    temperature: float
    expected_output_tokens: int  # for --dry-run cost estimates only
    version: str = field(init=False)

    def __post_init__(self) -> None:
        text = json.dumps([self.name, self.system, self.user, self.max_tokens, self.temperature])
        object.__setattr__(self, "version", f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}")

    def messages(self, **values: Any) -> list[dict[str, str]]:
        """The chat messages for one request."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user.format(**values)}]

    def params(self) -> dict[str, Any]:
        """The request parameters stored on each generation."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "response_format": "json_object"}


THOUGHT = Prompt(
    name="thought",
    system=(
        "You decide natural language inference questions. Given a premise and a hypothesis, decide whether "
        "the hypothesis must be true whenever the premise is true. Label 1 (entailment) when it must; "
        "label 0 (no entailment) when the hypothesis contradicts the premise or the premise leaves it open.\n"
        "Reason briefly, in about three numbered steps: what the premise states, what the hypothesis claims, "
        "and whether that claim follows. Keep each step to one or two sentences and end with your verdict.\n"
        "Reply with one JSON object and nothing else:\n"
        '{"thought_process": "Step 1: ... Step 2: ... Step 3: ...", "predicted_label": 1 or 0}'
    ),
    user="Premise: {premise}\nHypothesis: {hypothesis}",
    max_tokens=600,
    temperature=0.2,
    expected_output_tokens=170,
)

REFLECTION = Prompt(
    name="reflection",
    system=(
        "You review reasoning about natural language inference (does the premise entail the hypothesis? "
        "1 = entailment, 0 = no entailment: contradicted or left open). You are given a premise, a hypothesis, "
        "the label human annotators gave, and a line of reasoning that reached the other label.\n"
        "First, in error_analysis, say precisely where that reasoning went wrong: a misread detail, an "
        "unsupported assumption, a missed implication, or too strict or too loose a reading.\n"
        "Then, in improved_thought_process, reason again from the premise and the hypothesis themselves, in "
        "about three numbered steps, as if seeing the pair for the first time. Do not cite the annotators' "
        "label as a reason. If careful reasoning still disagrees with the annotators, keep your own verdict, "
        "say why in error_analysis, and give the label your reasoning supports.\n"
        "Reply with one JSON object and nothing else:\n"
        '{"error_analysis": "...", "improved_thought_process": "Step 1: ... Step 2: ... Step 3: ...", '
        '"predicted_label": 1 or 0}'
    ),
    user=(
        "Premise: {premise}\nHypothesis: {hypothesis}\n"
        "Annotators' label: {gold} ({gold_name})\n"
        "Reasoning to review (it answered {label} ({label_name})):\n{thought}"
    ),
    max_tokens=1000,
    temperature=0.2,
    expected_output_tokens=330,
)

# The rationalisation test (`nlistral reflect --blind`): the same question and the same earlier attempt as a
# reflection, without the annotators' label. The task is binary and only attempts that missed gold are sent,
# so calling the attempt wrong or flawed would tell the model the gold label: it is "an earlier attempt, which
# may or may not be right", and finding no fault is offered as an equal outcome. The answer fields are the
# reflection's, so one parser reads both; the prompt says they carry no verdict on the attempt.
BLIND_REFLECTION = Prompt(
    name="blind_reflection",
    system=(
        "You check reasoning about natural language inference: does the premise entail the hypothesis? "
        "1 = entailment (whenever the premise is true, the hypothesis must be true); 0 = no entailment (the "
        "premise contradicts the hypothesis or leaves it open).\n"
        "You are given a premise, a hypothesis and an earlier attempt at this question, which may or may not be "
        "right. Decide from the two sentences alone: the earlier attempt is one opinion to test, not evidence.\n"
        "In error_analysis, go through the earlier attempt step by step and say whether each step holds; name any "
        "misreading, any assumption the premise does not support and any missed implication. If you find none, "
        "say that the attempt holds: finding no fault is as good an outcome as finding one.\n"
        "In improved_thought_process, work the question out yourself in about three numbered steps (what the "
        "premise states, what the hypothesis claims, whether the claim follows) and end with your verdict. The "
        "field names are fixed by the answer format; they say nothing about whether the earlier attempt is right.\n"
        "Reply with one JSON object and nothing else:\n"
        '{"error_analysis": "...", "improved_thought_process": "Step 1: ... Step 2: ... Step 3: ...", '
        '"predicted_label": 1 or 0}'
    ),
    user=(
        "Premise: {premise}\nHypothesis: {hypothesis}\n"
        "Earlier attempt (it answered {label} ({label_name})):\n{thought}"
    ),
    max_tokens=1000,
    temperature=0.2,
    expected_output_tokens=330,
)

JUDGE = Prompt(
    name="judge",
    system=(
        "You grade a piece of reasoning about natural language inference (does the premise entail the "
        "hypothesis? 1 = entailment, 0 = no entailment). You see the premise, the hypothesis, the annotators' "
        "label, the reasoning and the label it reached. Score it from 1 to 5:\n"
        "5: every step is faithful to the premise and hypothesis, nothing is assumed that is not given, and "
        "the steps lead to its label;\n"
        "4: sound, with a minor gap or an unneeded step;\n"
        "3: reaches a defensible label but with a real gap or an unsupported assumption;\n"
        "2: mostly wrong: misreads the text or the conclusion does not follow from the steps;\n"
        "1: unrelated to the pair, self-contradictory, or its label contradicts its own reasoning.\n"
        "A label that differs from the annotators' is not wrong in itself: judge the reasoning.\n"
        "Reply with one JSON object and nothing else:\n"
        '{"score": 1 to 5, "rationale": "one or two sentences"}'
    ),
    user=(
        "Premise: {premise}\nHypothesis: {hypothesis}\n"
        "Annotators' label: {gold} ({gold_name})\n"
        "Reasoning:\n{thought}\n"
        "Its label: {label} ({label_name})"
    ),
    max_tokens=300,
    temperature=0.0,
    expected_output_tokens=70,
)

PROMPTS = {p.name: p for p in (THOUGHT, REFLECTION, BLIND_REFLECTION, JUDGE)}


def label_name(label: int | None) -> str:
    """'entailment', 'no entailment', or 'unknown' for a missing label."""
    return LABEL_NAMES.get(label, "unknown") if label is not None else "unknown"
