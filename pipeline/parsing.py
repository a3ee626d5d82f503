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

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pipeline.json_in_text import NOT_JSON, Unreadable, Written, find_objects, try_loads

STATUSES = ("ok", "repaired", "failed")

THOUGHT_KEYS = ("thought_process", "thoughts", "thought", "reasoning", "chain_of_thought")
IMPROVED_KEYS = ("improved_thought_process", "improved_thought", "improved_reasoning", "corrected_thought_process")
ANALYSIS_KEYS = ("error_analysis", "analysis", "errors")
LABEL_KEYS = ("predicted_label", "label", "prediction", "answer")
SCORE_KEYS = ("score", "rating")
RATIONALE_KEYS = ("rationale", "reason", "explanation", "justification")
_FIELD_NAMES = frozenset(THOUGHT_KEYS + IMPROVED_KEYS + ANALYSIS_KEYS + LABEL_KEYS + SCORE_KEYS + RATIONALE_KEYS)

# Label words: compared after lower-casing, with spaces and hyphens turned into underscores.
_LABEL_WORDS = {
    "entailment": 1, "entailed": 1, "entails": 1, "entail": 1, "yes": 1, "true": 1,
    "not_entailment": 0, "non_entailment": 0, "no_entailment": 0, "not_entailed": 0, "nonentailment": 0,
    "contradiction": 0, "neutral": 0, "no": 0, "false": 0,
}
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


_WRITTEN_LABEL = re.compile(r"[01]\.0+")  # 1.0 / 0.000: a decimal label with zeros only, as written


def label_value(value: object) -> tuple[int | None, str | None]:
    """A label as a model wrote it -> (0/1 or None, a note on what was normalised or why it was refused).

    A float read by this module's JSON reader carries its written text: only `0.0`/`1.0` written so
    pass. A plain float (read elsewhere, text unknown) passes only when it is exactly 0.0 or 1.0.
    """
    if isinstance(value, Written):
        if _WRITTEN_LABEL.fullmatch(value.written):
            return int(value), f"label written as {value.written}"
        return None, f"label {_show(value.written)} is not the integer 0 or 1"
    if isinstance(value, bool):
        return int(value), f"label written as {json.dumps(value)}"
    if isinstance(value, int):
        return (value, None) if value in (0, 1) else (None, f"label {_show(value)} is not 0 or 1")
    if isinstance(value, float):
        if value in (0.0, 1.0):
            return int(value), f"label written as {value}"
        return None, f"label {_show(value)} is not 0 or 1"
    if isinstance(value, str):
        return _label_from_string(value)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (str, int, float)):
        label, _ = label_value(value[0])
        return label, f"label written as a list {_show(value)}"
    return None, f"label {_show(value)} is not 0 or 1"


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


def _show(value: object, limit: int = 40) -> str:
    """A short, safe rendering of any value (huge integers and deep nesting included)."""
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        text = f"<{type(value).__name__}>"
    return repr(text[:limit]) if isinstance(value, str) else text[:limit]


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
        if _drop_cut_label(cut_obj, chunk):
            problems.append("the label was cut off, so it was not read")
    if found.objects:
        obj = _labelled_object(found.objects, found.outside, problems)
        if obj is None:
            return _failed(problems)
    else:
        obj = _loose_fields(raw, problems) or _bare_label(raw, problems) or _final_line(raw, problems)
        if obj is None:
            return _failed(problems or ["no JSON object, key: value fields or final answer line was found"])
    label, note = label_value(_get(obj, LABEL_KEYS, problems, "predicted_label"))
    if not _has(obj, LABEL_KEYS):
        problems.append("missing predicted_label")
    elif note:
        problems.append(note)
    thought = _text_value(_get(obj, thought_keys, problems, thought_name), thought_name, problems)
    if thought is None and need_thought:
        problems.append(f"missing {thought_name}")
        if require_thought and label is not None:
            problems.append(f"a label without {thought_name} cannot be used (an export leaves it out as "
                            "parse_failed), so it is not stored as an answer")
            label = None
    analysis = None
    if need_analysis:
        analysis = _text_value(_get(obj, ANALYSIS_KEYS, problems, "error_analysis"), "error_analysis", problems)
        if analysis is None:
            problems.append("missing error_analysis")
    flags = ("label_inconsistent",) if label is not None and concluded_label(thought) not in (None, label) else ()
    status = "failed" if label is None else ("repaired" if problems else "ok")
    return Parsed(status, label, thought, analysis, None, None, tuple(problems), flags)


def _labelled_object(objects: list[dict[str, Any]], outside: str, problems: list[str]) -> dict[str, Any] | None:
    """The answer among the JSON objects, or None (with the reason in problems) when labels conflict.

    Objects one level down count too (`{"answer": {...}}`): every label stated must agree.
    """
    top = [o for o in objects if _has(o, LABEL_KEYS) and not isinstance(_label_field(o), dict)]
    nested = [v for o in objects for v in o.values() if isinstance(v, dict) and _has(v, LABEL_KEYS)]
    if not top and not nested:
        return objects[-1]
    if any(_labels_disagree(o) for o in top + nested):
        problems.append("the answer states two different labels")
        return None
    labels = {label_value(_label_field(o))[0] for o in top + nested} - {None}
    if len(labels) > 1:
        problems.append("the reply holds several JSON answers with different labels")
        return None
    said = {label for label, _ in _statements(outside)} - {None}
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
    return _get(obj, LABEL_KEYS, [], "predicted_label")


def _labels_disagree(obj: dict[str, Any]) -> bool:
    """Whether an object states two labels: two label keys, or one label key written twice, that differ."""
    if any(_norm_key(k) in LABEL_KEYS for k in getattr(obj, "duplicates", ())):
        return True
    found = {label_value(v)[0] for k, v in obj.items() if isinstance(k, str) and _norm_key(k) in LABEL_KEYS}
    return len(found - {None}) > 1


def _bare_label(raw: str, problems: list[str]) -> dict[str, Any] | None:
    """A reply that is nothing but a label ("1", "Entailment."): allowed, noted as repaired."""
    text = raw.strip().strip("`'\"").strip().rstrip(".!").strip()
    if len(text) > 40:
        return None
    label, _ = _label_from_string(text)
    if label is None:
        return None
    problems.append("the reply is a bare label, not JSON")
    return {"predicted_label": label}


# A label statement anywhere in text: `label: 1`, `"answer" = no` (not `mislabel:`, not `label is`).
_STATEMENT = re.compile(
    r"(?<![A-Za-z])(?:predicted[ \t_-]{0,3}label|label|prediction|answer)(?![A-Za-z])[\"'*` \t]{0,4}[:=]"
    r"[ \t]{0,4}[\"'*`]{0,2}([^\s,;\"'*`]{0,40})", re.IGNORECASE)
_FINAL = re.compile(
    r"[\s*#>_-]{0,6}(?:final[ \t]+answer|final[ \t]+label|answer|predicted[ \t_-]{0,3}label|label|prediction)"
    r"[ \t*_`\"']{0,4}[:=][ \t*_`\"']{0,4}(.{1,40}?)[ \t*_`\"'.!]{0,6}", re.IGNORECASE)


def _statements(text: str) -> list[tuple[int | None, str]]:
    """Every label statement in text, with the label it states (None when the value is not a label)."""
    return [(_label_from_string(m.group(1))[0], m.group(0)) for m in _STATEMENT.finditer(text)]


def _final_line(raw: str, problems: list[str]) -> dict[str, Any] | None:
    """`Final answer: 1` as the last line, when it is the only label statement in the reply."""
    lines = [line for line in _unfenced(raw).split("\n") if line.strip()]
    if not lines or len(lines[-1]) > 80:
        return None
    m = _FINAL.fullmatch(lines[-1].strip())
    if m is None:
        return None
    label, _ = _label_from_string(m.group(1))
    if label is None:
        return None
    earlier = _statements("\n".join(lines[:-1]))
    if earlier:
        problems.append(f"the reply states a label more than once ({earlier[0][1].strip()[:40]!r} and "
                        f"{lines[-1].strip()[:40]!r})")
        return None
    problems.append(f"read the label from the final line {lines[-1].strip()[:40]!r}")
    return {"predicted_label": label}


# ---------------------------------------------------------------------------------------------
# Key: value lines

_FIELD_LINE = re.compile(r"[ \t]{0,8}[\"'*`-]{0,3}[ \t]?([A-Za-z][A-Za-z _-]{0,39}?)[\"'*`]{0,3}[ \t]{0,4}[:=](.*)")


def _loose_fields(raw: str, problems: list[str]) -> dict[str, Any] | None:
    """A reply that is nothing but `key: value` lines for known fields, each stated once."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in _unfenced(raw).split("\n"):
        m = _FIELD_LINE.fullmatch(line.rstrip("\r"))
        key = _norm_key(m.group(1)) if m else None
        if m and key in _FIELD_NAMES:
            group = "predicted_label" if key in LABEL_KEYS else key
            if group in fields:
                problems.append(f"the reply states {group} twice")
                return None
            current = fields[group] = [m.group(2)]
        elif current is not None:
            current.append(line)
        elif line.strip():
            return None  # text before the first field: prose, not fields
    if not fields:
        return None
    problems.append("read the fields from text that is not valid JSON")
    return {key: _loose_value("\n".join(lines)) for key, lines in fields.items()}


def _loose_value(text: str) -> str:
    value = text.strip()
    if value.endswith(","):
        value = value[:-1].rstrip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        decoded = try_loads(value) if value[0] == '"' else NOT_JSON
        value = decoded if isinstance(decoded, str) else value[1:-1]
    return value


def _unfenced(raw: str) -> str:
    """The reply without one code fence around all of it."""
    text = raw.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text


# ---------------------------------------------------------------------------------------------
# Thought text that concludes the other label

_ADV = r"(?:(?:\w+ly|indeed|thus|therefore|also|still|be)\s+){0,2}"
_NEG = (
    rf"(?:can\s*not|can't|could\s*not|couldn't|cannot)\s+{_ADV}"
    r"(?:inferred|infer|entailed|concluded|conclude|deduced|deduce|derived)"
    rf"|(?:is|are|was)\s*(?:not|n't)\s+{_ADV}(?:entailed|inferred|implied|supported|deducible)"
    rf"|(?:does|do)\s*(?:not|n't)\s+{_ADV}(?:entail|imply|follow|support)"
    rf"|not\s+{_ADV}possible\s+to\s+{_ADV}(?:infer|conclude|deduce)"
    r"|(?:no|not\s+an?|non[-\s]?)\s*entailment"
)
_POS = (
    rf"(?:can|could)\s+{_ADV}(?:inferred|entailed|concluded|deduced)"
    rf"|(?:is|are)\s+{_ADV}(?:entailed|implied)\s+by"
    r"|(?<![\w'])(?:entails|logically\s+follows|follows\s+from)\b"
)
# "cannot conclude that <something>" is about the content, not the verdict: not a conclusion.
_CONCLUSION = re.compile(rf"\b(?:(?P<neg>{_NEG})|(?P<pos>{_POS}))(?P<that>\s+that\b)?", re.IGNORECASE)


def concluded_label(text: str | None) -> int | None:
    """The label the reasoning's last explicit conclusion states ("cannot be inferred" -> 0), else None."""
    if not text or not isinstance(text, str):
        return None
    last = None
    for last in _CONCLUSION.finditer(text):
        pass
    if last is None or last.group("that"):
        return None
    return 0 if last.group("neg") else 1


# The label value at the very end of cut-off text: a number or word that may have gone on, an open string.
_CUT_LABEL = re.compile(
    r"(?<![A-Za-z])(?:predicted[ \t_-]{0,3}label|label|prediction|answer)[\"']?\s{0,20}:\s{0,20}"
    r"(?:[\"'][^\"'\n]{0,120}|[^\"'\s,}\]]{1,40})\Z", re.IGNORECASE)


def _drop_cut_label(obj: dict[str, Any], chunk: str) -> bool:
    """Remove a label that is the last value of truncated JSON and ran into the end of the text."""
    if not _CUT_LABEL.search(chunk[-200:]):
        return False
    while isinstance(obj, dict) and obj:
        key = next(reversed(obj))
        if isinstance(key, str) and _norm_key(key) in LABEL_KEYS and not isinstance(obj[key], dict):
            del obj[key]
            return True
        obj = obj[key]
    return False


def _best_object(raw: object, keys: tuple[str, ...], problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(raw, str) or not raw.strip():
        problems.append("empty response")
        return None
    objects = find_objects(raw, problems).objects
    if not objects:
        return _loose_fields(raw, problems)
    with_key = [o for o in objects if _has(o, keys)]
    return (with_key or objects)[-1]


def _parse_judge(raw: object) -> Parsed:
    problems: list[str] = []
    obj = _best_object(raw, SCORE_KEYS, problems)
    if obj is None:
        return _failed(problems or ["no JSON object with a score was found"])
    score = _score_value(_get(obj, SCORE_KEYS, problems, "score"), problems)
    rationale = _text_value(_get(obj, RATIONALE_KEYS, problems, "rationale"), "rationale", problems)
    if rationale is None:
        problems.append("missing rationale")
    if score is None:
        return Parsed("failed", None, None, None, None, rationale, tuple(problems))
    return Parsed("repaired" if problems else "ok", None, None, None, score, rationale, tuple(problems))


# ---------------------------------------------------------------------------------------------
# Field access and value normalisation


_KEY_GAPS = re.compile(r"[\s\-]+")
_NUMBER_AND_WORD = re.compile(r"([01])\s*[\(\-:]\s*([A-Za-z_\- ]+?)\)?\.?")
_SCORE_TEXT = re.compile(r"\s*(\d{1,6}(?:\.\d{1,12})?)\s*(?:/\s*5)?\s*")


def _norm_key(key: str) -> str:
    key = key.strip().lower()
    return key if key.replace("_", "").isalnum() else _KEY_GAPS.sub("_", key)


def _has(obj: dict[str, Any], keys: tuple[str, ...]) -> bool:
    names = {_norm_key(k) for k in obj if isinstance(k, str)}
    return any(k in names for k in keys)


def _get(obj: dict[str, Any], keys: tuple[str, ...], problems: list[str], name: str) -> Any:
    by_norm = {_norm_key(k): v for k, v in obj.items() if isinstance(k, str)}
    for key in keys:
        if key in by_norm:
            if key != name and f"read {name} from key {key!r}" not in problems:
                problems.append(f"read {name} from key {key!r}")
            elif key not in obj:
                problems.append(f"key {name!r} was written differently")
            return by_norm[key]
    return None


def _text_value(value: Any, name: str, problems: list[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        problems.append(f"{name} was a list of steps; joined them")
        return "\n".join(value) if value else None
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        problems.append(f"{name} was not text and could not be stored")
        return None
    problems.append(f"{name} was not text; stored it as JSON")
    return text


def _label_from_string(value: str) -> tuple[int | None, str | None]:
    text = value.strip()
    if text in ("0", "1"):
        return int(text), "label written as a string"
    if len(text) > 60:
        return None, f"label {text[:40]!r} is not 0 or 1"
    word = _norm_key(text.strip("'\"`.!()[] "))
    if word in ("0", "1"):
        return int(word), f"label written as {text!r}"
    if word in _LABEL_WORDS:
        return _LABEL_WORDS[word], f"label written as the word {text!r}"
    m = _NUMBER_AND_WORD.fullmatch(text)
    if m and _LABEL_WORDS.get(_norm_key(m.group(2))) == int(m.group(1)):
        return int(m.group(1)), f"label written as {text!r}"
    return None, f"label {text[:40]!r} is not 0 or 1"


def _score_value(value: Any, problems: list[str]) -> float | None:
    if isinstance(value, bool) or value is None:
        if value is None:
            problems.append("missing score")
        else:
            problems.append(f"score {value} is not a number from 1 to 5")
        return None
    score: float | None = None
    if isinstance(value, (int, float)):
        score = float(value) if not isinstance(value, int) or abs(value) < 10**6 else None
    elif isinstance(value, str):
        m = _SCORE_TEXT.fullmatch(value)
        if m:
            score = float(m.group(1))
            problems.append("score written as a string")
    if score is None or not 1 <= score <= 5:
        problems.append(f"score {_show(value, 20)} is not a number from 1 to 5")
        return None
    return score


def _failed(problems: list[str]) -> Parsed:
    return Parsed("failed", None, None, None, None, None, tuple(problems))


def _with(parsed: Parsed, **changes: Any) -> Parsed:
    return replace(parsed, **changes)
