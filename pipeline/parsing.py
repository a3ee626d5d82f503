"""The one parser for every model output: thoughts, reflections, judge scores, evaluation predictions.

Model output is untrusted text. The parser repairs what it safely can and says what it did in
`problems`; it never invents a label and never raises, whatever it is given. A label comes from one
of these, and from nothing else (no keyword search in prose, no default):

1. The answer's own JSON field: a label key (`predicted_label`, `label`, `prediction`, `answer`) of a
   JSON object in the reply, also repaired near-JSON: code fences, text around the object, single
   quotes, unquoted keys, Python literals, trailing commas, an object encoded twice or wrapped in a
   list, and truncated JSON when the label field arrived whole (its value is followed by something:
   a cut `"predicted_label": 1` may have been `1.5` or `10`, a cut `"entail` anything).
2. Key: value lines that are the whole reply: it starts with a known field (`thought_process: ...`,
   `Predicted label: 1`), each field is stated once (two label fields are a conflict), and a value
   runs to the next field's line. Prose with a `label: 1` somewhere in it is not this.
3. A reply that is nothing but a label (`1`, `Entailment.`), as before.
4. One final-answer line: the last line is `Final answer: X` (or `Answer:`, `Label:`, `Predicted
   label:`, `Prediction:`) and no other line states a label (no `label:`/`answer:` anywhere else).

A label value is the integer 0 or 1 as written, its string, a label word (`entailment`, `neutral`,
`yes`, `false`, ...), `true`/`false`, or `1.0`/`0.0` written so (a decimal point and zeros only). A
number that merely rounds to 0 or 1 (`0.99999999999999999`, `1e-400`, `1e0`) is refused: the JSON is
read with hooks that keep each number's written text. Labels that conflict (two answers, two label
keys, a key stated twice, text around the JSON stating another label), that are retracted or quoted
(`the gold label: 1`, `the original label: true`) or out of range are failures: status "failed",
label None, and the caller keeps the raw text.

A thought or reflection with a label but no thought text is also "failed" (label None): an export
cannot train on it (exports.rules calls such a row `parse_failed`), so the store says the same. A
prediction (evaluation) without thought text keeps its label, noted. A reflection without an error
analysis keeps its label, noted: the export uses only the improved thought and the label.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pipeline.answer_fields import (
    ANALYSIS_KEYS,
    IMPROVED_KEYS,
    LABEL_KEYS,
    RATIONALE_KEYS,
    SCORE_KEYS,
    THOUGHT_KEYS,
    get_field,
    has_key,
    label_value,
    norm_key,
    score_value,
    text_value,
)
from pipeline.answer_text import bare_label, concluded_label, drop_cut_label, final_line, loose_fields, statements
from pipeline.json_in_text import Unreadable, find_objects

__all__ = ["STATUSES", "Parsed", "parse_judge", "parse_prediction", "parse_reflection", "parse_thought"]

STATUSES = ("ok", "repaired", "failed")
_INTERNAL = "the parser could not read this reply"  # the guard's note: the fuzz test asserts it never shows


@dataclass(frozen=True)
class Parsed:
    """What could be read from one model output, and how cleanly."""

    status: str                 # "ok" | "repaired" | "failed"
    label: int | None           # 0/1, never invented (None when not found / out of range)
    thought: str | None         # thought_process, or improved_thought_process for reflections
    error_analysis: str | None
    score: float | None         # judge score 1-5
    rationale: str | None       # judge rationale
    problems: tuple[str, ...]   # human-readable notes on what was repaired or missing
    flags: tuple[str, ...] = ()  # e.g. "label_inconsistent" (thought text concludes the other label)


# ---------------------------------------------------------------------------------------------
# Public entry points


def parse_thought(raw: str) -> Parsed:
    """A stage-1 thought: {"thought_process": str, "predicted_label": 0|1}."""
    return _guarded(lambda: _parse_labelled(raw, THOUGHT_KEYS, "thought_process", need_thought=True,
                                            require_thought=True))


def parse_reflection(raw: str, gold: int | None = None) -> Parsed:
    """A reflection: {"error_analysis", "improved_thought_process", "predicted_label"}.

    A label that is not gold is kept as written and flagged "label_not_gold", never forced.
    """
    def parse() -> Parsed:
        parsed = _parse_labelled(raw, IMPROVED_KEYS + THOUGHT_KEYS, "improved_thought_process",
                                 need_thought=True, require_thought=True, need_analysis=True)
        if gold is not None and parsed.label is not None and parsed.label != gold:
            return _with(parsed, flags=(*parsed.flags, "label_not_gold"))
        return parsed

    return _guarded(parse)


def parse_judge(raw: str) -> Parsed:
    """A judge verdict: {"score": 1-5, "rationale": str}."""
    return _guarded(lambda: _parse_judge(raw))


def parse_prediction(raw: str, *, with_thought: bool = True) -> Parsed:
    """The answer of a fine-tuned model under evaluation (label-only answers allowed without thought).

    An echoed prompt is cut off at the last `[/INST]`; a trailing `</s>` is dropped.
    """
    return _guarded(lambda: _parse_prediction(raw, with_thought))


# ---------------------------------------------------------------------------------------------
# Never raising


def _guarded(parse: Callable[[], Parsed]) -> Parsed:
    """Run a parse; any exception left is a bug, but the caller (a paid answer) must still be stored."""
    try:
        return parse()
    except Unreadable as exc:
        return _failed([str(exc)])
    except Exception as exc:  # noqa: BLE001 - the parser must never raise (issue 12 item 10)
        return _failed([f"{_INTERNAL} ({type(exc).__name__}); the raw text is kept"])


# ---------------------------------------------------------------------------------------------
# Labelled outputs (thoughts, reflections, predictions)


def _parse_prediction(raw: object, with_thought: bool) -> Parsed:
    text = raw if isinstance(raw, str) else ""
    notes: list[str] = []
    if "[/INST]" in text:
        text = text.rsplit("[/INST]", 1)[1]
        notes.append("the prompt was echoed; read the text after [/INST]")
    if text.rstrip().endswith("</s>"):
        text = text.rstrip()[: -len("</s>")]
    parsed = _parse_labelled(text, THOUGHT_KEYS, "thought_process", need_thought=with_thought,
                             require_thought=False)
    if notes:
        status = parsed.status if parsed.status == "failed" else "repaired"
        return _with(parsed, status=status, problems=(*notes, *parsed.problems))
    return parsed


def _parse_labelled(raw: object, thought_keys: tuple[str, ...], thought_name: str, *, need_thought: bool,
                    require_thought: bool, need_analysis: bool = False) -> Parsed:
    if not isinstance(raw, str) or not raw.strip():
        return _failed(["empty response"])
    problems: list[str] = []
    found = find_objects(raw, problems)
    for cut_obj, chunk in found.cut:
        if drop_cut_label(cut_obj, chunk):
            problems.append("the label was cut off, so it was not read")
    if found.objects:
        obj = _labelled_object(found.objects, found.outside, problems)
        if obj is None:
            return _failed(problems)
    else:
        obj = loose_fields(raw, problems) or bare_label(raw, problems) or final_line(raw, problems)
        if obj is None:
            return _failed(problems or ["no JSON object, key: value fields or final answer line was found"])
    label, note = label_value(get_field(obj, LABEL_KEYS, problems, "predicted_label"))
    if not has_key(obj, LABEL_KEYS):
        problems.append("missing predicted_label")
    elif note:
        problems.append(note)
    thought = text_value(get_field(obj, thought_keys, problems, thought_name), thought_name, problems)
    if thought is None and need_thought:
        problems.append(f"missing {thought_name}")
        if require_thought and label is not None:
            problems.append(f"a label without {thought_name} cannot be used (an export leaves it out as "
                            "parse_failed), so it is not stored as an answer")
            label = None
    analysis = None
    if need_analysis:
        analysis = text_value(get_field(obj, ANALYSIS_KEYS, problems, "error_analysis"), "error_analysis", problems)
        if analysis is None:
            problems.append("missing error_analysis")
    flags = ("label_inconsistent",) if label is not None and concluded_label(thought) not in (None, label) else ()
    status = "failed" if label is None else ("repaired" if problems else "ok")
    return Parsed(status, label, thought, analysis, None, None, tuple(problems), flags)


def _labelled_object(objects: list[dict[str, Any]], outside: str, problems: list[str]) -> dict[str, Any] | None:
    """The answer among the JSON objects, or None (with the reason in problems) when labels conflict.

    Objects one level down count too (`{"answer": {...}}`): every label stated must agree.
    """
    top = [o for o in objects if has_key(o, LABEL_KEYS) and not isinstance(_label_field(o), dict)]
    nested = [v for o in objects for v in o.values() if isinstance(v, dict) and has_key(v, LABEL_KEYS)]
    if not top and not nested:
        return objects[-1]
    if any(_labels_disagree(o) for o in top + nested):
        problems.append("the answer states two different labels")
        return None
    labels = {label for label in (label_value(_label_field(o))[0] for o in top + nested) if label is not None}
    if len(labels) > 1:
        problems.append("the reply holds several JSON answers with different labels")
        return None
    said = {label for label, _ in statements(outside) if label is not None}
    if said - labels and labels:
        problems.append(f"the text around the JSON states label {min(said - labels)}, the JSON another")
        return None
    if not top:
        problems.append("the answer was nested inside another object")
    answers = top or nested
    if len(answers) > 1:
        problems.append(f"the reply holds {len(answers)} JSON answers; used the last")
    return answers[-1]


def _label_field(obj: dict[str, Any]) -> Any:
    return get_field(obj, LABEL_KEYS, [], "predicted_label")


def _labels_disagree(obj: dict[str, Any]) -> bool:
    """Whether an object states two labels: two label keys, or one label key written twice, that differ."""
    if any(norm_key(k) in LABEL_KEYS for k in getattr(obj, "duplicates", ())):
        return True
    found = {label_value(v)[0] for k, v in obj.items() if isinstance(k, str) and norm_key(k) in LABEL_KEYS}
    return len(found - {None}) > 1


# ---------------------------------------------------------------------------------------------
# Judge verdicts


def _best_object(raw: object, keys: tuple[str, ...], problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(raw, str) or not raw.strip():
        problems.append("empty response")
        return None
    objects = find_objects(raw, problems).objects
    if not objects:
        return loose_fields(raw, problems)
    with_key = [o for o in objects if has_key(o, keys)]
    return (with_key or objects)[-1]


def _parse_judge(raw: object) -> Parsed:
    problems: list[str] = []
    obj = _best_object(raw, SCORE_KEYS, problems)
    if obj is None:
        return _failed(problems or ["no JSON object with a score was found"])
    score = score_value(get_field(obj, SCORE_KEYS, problems, "score"), problems)
    rationale = text_value(get_field(obj, RATIONALE_KEYS, problems, "rationale"), "rationale", problems)
    if rationale is None:
        problems.append("missing rationale")
    if score is None:
        return Parsed("failed", None, None, None, None, rationale, tuple(problems))
    return Parsed("repaired" if problems else "ok", None, None, None, score, rationale, tuple(problems))


def _failed(problems: list[str]) -> Parsed:
    return Parsed("failed", None, None, None, None, None, tuple(problems))


def _with(parsed: Parsed, **changes: Any) -> Parsed:
    return replace(parsed, **changes)
