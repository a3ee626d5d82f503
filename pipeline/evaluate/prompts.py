"""The evaluation prompt: exactly the training prompt, through the model's own layout (exports.layout).

Without a layout the functions describe the paper's Mistral [INST] layout (exports.formats), as before.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from exports.formats import (
    INSTRUCTION_COT,
    INSTRUCTION_LABEL_ONLY,
    cot_target,
    inst_prompt,
    user_prompt,
)
from exports.layout import Layout

_LABEL_SLOT = "0}"
_PREMISE, _HYPOTHESIS = "Premise: ", "\nHypothesis: "


def prompt_text(premise: str, hypothesis: str, *, with_thought: bool = True, layout: Layout | None = None) -> str:
    """The text the model sees, up to where its answer starts (as in training)."""
    prompt = user_prompt(premise, hypothesis, with_thought=with_thought)
    return layout.prompt_text(prompt) if layout is not None else inst_prompt(prompt)


def prompt_ids(layout: Layout, pairs: Sequence[tuple[str, str]], *, with_thought: bool,
               forced: Sequence[str] | None = None) -> list[list[int]]:
    """Token ids of the (premise, hypothesis) prompts exactly as training encodes them, then any forced answer text."""
    return layout.prompt_ids([user_prompt(p, h, with_thought=with_thought) for p, h in pairs], forced)


def forced_label_prefix(thought: str, layout: Layout | None = None) -> str:
    """The start of a CoT answer that holds `thought` and stops where the label is written.

    Built from the training target itself, so the forced answer is byte for byte what training taught
    (after the layout's answer prefix: one space in the [INST] layout, as in exports.formats.inst_text).
    """
    target = cot_target(thought, 0)
    if not target.endswith(_LABEL_SLOT):
        raise ValueError("the CoT target no longer ends with the label; update forced_label_prefix")
    start = target[: -len(_LABEL_SLOT)]
    return layout.forced_prefix(start) if layout is not None else " " + start


def prompt_version(*, with_thought: bool, shuffle_thoughts: bool, layout: Layout | None = None) -> str:
    """A short hash of the prompt template and the flags that change what the model is asked.

    The [INST] layout keeps its version; a chat-template layout adds its own rendering to the hash.
    """
    template = prompt_text("{premise}", "{hypothesis}", with_thought=with_thought)
    if shuffle_thoughts:
        template += forced_label_prefix("{thought of another example}")
    payload: dict[str, Any] = {"template": template, "with_thought": with_thought,
                               "shuffle_thoughts": shuffle_thoughts}
    if layout is not None and layout.signature():
        payload["layout"] = layout.signature()
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a prompt exactly as training encodes its rows: exactly one BOS, at the start.

    The prompt strings carry a literal "<s>", so (as in pipeline/train/data.py) the tokenizer must
    not add another; a tokenizer that does not read "<s>" as its BOS token is refused.
    """
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is None or not ids or ids[0] != bos or ids.count(bos) != 1:
        raise ValueError(f"the prompt must encode to exactly one BOS at the start, found {ids.count(bos)} "
                         f"({text[:40]!r}...); use the model's own tokenizer, which reads {tokenizer.bos_token!r}")
    return ids


def split_user_prompt(text: str) -> tuple[str, str] | None:
    """(premise, hypothesis) read back out of a training prompt or record, else None."""
    for instruction in (INSTRUCTION_COT, INSTRUCTION_LABEL_ONLY):
        end = text.find("\n\n" + instruction)
        start = text.find(_PREMISE, 0, end) if end >= 0 else -1
        if start >= 0:
            premise, sep, hypothesis = text[start + len(_PREMISE):end].partition(_HYPOTHESIS)
            if sep:
                return premise, hypothesis
    return None
