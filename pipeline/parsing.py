"""The one parser for every model output: thoughts, reflections, judge scores, evaluation predictions.

Model output is untrusted text. The parser repairs what it safely can (code fences, text around the
JSON, single quotes, trailing commas, labels written as words, cut-off JSON) and says what it did in
`problems`. It never invents a label: no keyword search in free prose, no default. When no label is
found, `label` is None and `status` is "failed"; the caller keeps the raw text.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

STATUSES = ("ok", "repaired", "failed")

THOUGHT_KEYS = ("thought_process", "thoughts", "thought", "reasoning", "chain_of_thought")
IMPROVED_KEYS = ("improved_thought_process", "improved_thought", "improved_reasoning", "corrected_thought_process")
ANALYSIS_KEYS = ("error_analysis", "analysis", "errors")
LABEL_KEYS = ("predicted_label", "label", "prediction", "answer")
SCORE_KEYS = ("score", "rating")
RATIONALE_KEYS = ("rationale", "reason", "explanation", "justification")

# Label words: compared after lower-casing, with spaces and hyphens turned into underscores.
_LABEL_WORDS = {
    "entailment": 1, "entailed": 1, "entails": 1, "entail": 1, "yes": 1, "true": 1,
    "not_entailment": 0, "non_entailment": 0, "no_entailment": 0, "not_entailed": 0, "nonentailment": 0,
    "contradiction": 0, "neutral": 0, "no": 0, "false": 0,
}


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
    return _parse_labelled(raw, THOUGHT_KEYS, "thought_process", need_thought=True)


def parse_reflection(raw: str, gold: int | None = None) -> Parsed:
    """A reflection: {"error_analysis", "improved_thought_process", "predicted_label"}.

    A label that is not gold is kept as written and flagged "label_not_gold", never forced.
    """
    parsed = _parse_labelled(raw, IMPROVED_KEYS + THOUGHT_KEYS, "improved_thought_process",
                             need_thought=True, need_analysis=True)
    if gold is not None and parsed.label is not None and parsed.label != gold:
        return _with(parsed, flags=(*parsed.flags, "label_not_gold"))
    return parsed


def parse_judge(raw: str) -> Parsed:
    """A judge verdict: {"score": 1-5, "rationale": str}."""
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


def parse_prediction(raw: str, *, with_thought: bool = True) -> Parsed:
    """The answer of a fine-tuned model under evaluation (label-only answers allowed without thought).

    An echoed prompt is cut off at the last `[/INST]`; a trailing `</s>` is dropped.
    """
    text = raw if isinstance(raw, str) else ""
    notes: list[str] = []
    if "[/INST]" in text:
        text = text.rsplit("[/INST]", 1)[1]
        notes.append("the prompt was echoed; read the text after [/INST]")
    if text.rstrip().endswith("</s>"):
        text = text.rstrip()[: -len("</s>")]
    parsed = _parse_labelled(text, THOUGHT_KEYS, "thought_process", need_thought=with_thought)
    if notes:
        status = parsed.status if parsed.status == "failed" else "repaired"
        return _with(parsed, status=status, problems=(*notes, *parsed.problems))
    return parsed


def label_value(value: object) -> tuple[int | None, str | None]:
    """A label as a model wrote it -> (0/1 or None, a note on what was normalised or why it was refused)."""
    if isinstance(value, bool):
        return int(value), f"label written as {json.dumps(value)}"
    if isinstance(value, int):
        return (value, None) if value in (0, 1) else (None, f"label {value} is not 0 or 1")
    if isinstance(value, float):
        if value in (0.0, 1.0):
            return int(value), f"label written as {value}"
        return None, f"label {value} is not 0 or 1"
    if isinstance(value, str):
        return _label_from_string(value)
    if isinstance(value, list) and len(value) == 1:
        label, _ = label_value(value[0])
        return label, f"label written as a list {json.dumps(value)[:40]}"
    return None, f"label {json.dumps(value, default=str)[:40]} is not 0 or 1"


# ---------------------------------------------------------------------------------------------
# Labelled outputs (thoughts, reflections, predictions)


def _parse_labelled(raw: str, thought_keys: tuple[str, ...], thought_name: str, *, need_thought: bool,
                    need_analysis: bool = False) -> Parsed:
    if not isinstance(raw, str) or not raw.strip():
        return _failed(["empty response"])
    problems: list[str] = []
    objects = _objects(raw, problems)
    with_label = [o for o in objects if _has(o, LABEL_KEYS)]
    if not with_label:
        nested = [v for o in objects for v in o.values() if isinstance(v, dict) and _has(v, LABEL_KEYS)]
        if nested:
            problems.append("the answer was nested inside another object")
            with_label = nested
    if with_label:
        labels = {label_value(_get(o, LABEL_KEYS, [], "predicted_label"))[0] for o in with_label}
        labels.discard(None)
        if len(labels) > 1:
            return _failed([*problems, "the reply holds several JSON answers with different labels"])
        obj = with_label[-1]
        if len(with_label) > 1:
            problems.append(f"the reply holds {len(with_label)} JSON answers; used the last")
    elif objects:
        obj = objects[-1]
    else:
        obj = _bare_label(raw, problems)
        if obj is None:
            return _failed(problems or ["no JSON object was found"])
    label, note = label_value(_get(obj, LABEL_KEYS, problems, "predicted_label"))
    if note:
        problems.append(note)
    if not _has(obj, LABEL_KEYS):
        problems.append("missing predicted_label")
    thought = _text_value(_get(obj, thought_keys, problems, thought_name), thought_name, problems)
    if thought is None and need_thought:
        problems.append(f"missing {thought_name}")
    analysis = None
    if need_analysis:
        analysis = _text_value(_get(obj, ANALYSIS_KEYS, problems, "error_analysis"), "error_analysis", problems)
        if analysis is None:
            problems.append("missing error_analysis")
    flags = ("label_inconsistent",) if label is not None and concluded_label(thought) not in (None, label) else ()
    status = "failed" if label is None else ("repaired" if problems else "ok")
    return Parsed(status, label, thought, analysis, None, None, tuple(problems), flags)


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
    if not text:
        return None
    last = None
    for last in _CONCLUSION.finditer(text):
        pass
    if last is None or last.group("that"):
        return None
    return 0 if last.group("neg") else 1


# ---------------------------------------------------------------------------------------------
# Finding JSON objects in text


def _objects(raw: str, problems: list[str]) -> list[dict[str, Any]]:
    """Every JSON object that can be read from the text, outermost only, in order."""
    text = raw.strip()
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        value = None
    if isinstance(value, str):  # double-encoded JSON
        try:
            inner = json.loads(value)
        except json.JSONDecodeError:
            inner = None
        if isinstance(inner, dict):
            problems.append("the JSON was encoded twice")
            return [inner]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        problems.append("the JSON was wrapped in a list")
        return list(value)
    segments = _fenced(text)
    if segments:
        problems.append("removed a code fence")
    else:
        segments = [text]
    found: list[dict[str, Any]] = []
    for segment in segments:
        for chunk, closed in _brace_chunks(segment):
            obj = _load_object(chunk, closed, problems)
            if obj is not None:
                found.append(obj)
    if not found:
        loose = _loose_fields(text)
        if loose:
            problems.append("read the fields from text that is not valid JSON")
            found.append(loose)
    elif _text_outside(text, segments):
        problems.append("ignored text around the JSON")
    return found


_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)


def _fenced(text: str) -> list[str]:
    return [m.group(1) for m in _FENCE.finditer(text) if "{" in m.group(1)]


def _text_outside(text: str, segments: list[str]) -> bool:
    """Whether anything but whitespace and fences surrounds the JSON objects."""
    rest = _FENCE.sub("", text) if segments != [text] else text
    for segment in segments:
        for chunk, _ in _brace_chunks(segment):
            rest = rest.replace(chunk, "", 1)
    return bool(rest.strip())


def _brace_chunks(text: str) -> list[tuple[str, bool]]:
    """Top-level {...} spans (strings respected); a span cut off by the end is returned unclosed."""
    chunks: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        start = text.find("{", i)
        if start < 0:
            break
        depth, j, quote = 0, start, None
        while j < n:
            ch = text[j]
            if quote:
                if ch == "\\":
                    j += 1
                elif ch == quote and _closes_string(text, j):
                    quote = None
            elif ch in "\"'" and _opens_string(text, j):
                quote = ch
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= n:
            chunks.append((text[start:], False))
            break
        chunks.append((text[start:j + 1], True))
        i = j + 1
    return chunks


def _opens_string(text: str, i: int) -> bool:
    """A quote opens a string only where JSON expects a key or value (after { [ , : or space)."""
    k = i - 1
    while k >= 0 and text[k] in " \t\r\n":
        k -= 1
    return k < 0 or text[k] in "{[,:"


def _closes_string(text: str, i: int) -> bool:
    """A quote closes a string only when followed by , : } ] or the end (so "the speaker's" survives)."""
    k = i + 1
    while k < len(text) and text[k] in " \t\r\n":
        k += 1
    return k >= len(text) or text[k] in ",:}]"


def _load_object(chunk: str, closed: bool, problems: list[str]) -> dict[str, Any] | None:
    if closed:
        try:
            value = json.loads(chunk)
            return value if isinstance(value, dict) else None
        except (json.JSONDecodeError, RecursionError):
            pass
    fixed, notes = _repair(chunk, closed)
    try:
        value = json.loads(fixed)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    problems.extend(n for n in notes if n not in problems)
    return value


def _repair(chunk: str, closed: bool) -> tuple[str, list[str]]:
    """Rewrite near-JSON as JSON: quotes, Python literals, trailing commas, unclosed strings and brackets."""
    out: list[str] = []
    notes: list[str] = []
    stack: list[str] = []
    quote: str | None = None
    i, n = 0, len(chunk)
    while i < n:
        ch = chunk[i]
        if quote:
            if ch == "\\" and i + 1 < n:
                nxt = chunk[i + 1]
                out.append("'" if nxt == "'" else ch + nxt)
                i += 2
                continue
            if ch == quote and _closes_string(chunk, i):
                out.append('"')
                quote = None
            elif ch == '"':
                out.append('\\"')
            elif ch == "\n":
                out.append("\\n")
            elif ch == "\t":
                out.append("\\t")
            else:
                out.append(ch)
        elif ch in "\"'" and _opens_string(chunk, i):
            if ch == "'" and "single quotes" not in notes:
                notes.append("single quotes")
            quote = ch
            out.append('"')
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
            out.append(ch)
        elif ch in "}]":
            if stack:
                stack.pop()
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    text = "".join(out)
    if quote:
        text += '"'
    if not closed:
        notes.append("truncated JSON was closed")
        text = re.sub(r',\s*"[^"]*"?\s*:?\s*$', "", text)  # a dangling half key
        text = re.sub(r":\s*$", ": null", text)
        text += "".join(reversed(stack))
    literals = re.sub(r"(?<=[:\[,\s])(True|False|None)(?=\s*[,}\]])",
                      lambda m: {"True": "true", "False": "false", "None": "null"}[m.group(1)], text)
    if literals != text:
        notes.append("Python literals")
        text = literals
    commas = re.sub(r",\s*([}\]])", r"\1", text)
    if commas != text:
        notes.append("trailing commas")
        text = commas
    return text, [f"repaired {n}" if not n.startswith("truncated") else n for n in notes]


_LOOSE_KEY = r"[\"']?{key}[\"']?\s*[:=]\s*"


def _loose_fields(text: str) -> dict[str, Any] | None:
    """key: value pairs written without valid JSON around them ("predicted_label: 1")."""
    found: dict[str, Any] = {}
    for key in (*LABEL_KEYS[:2], *SCORE_KEYS[:1]):
        m = re.search(_LOOSE_KEY.format(key=key) + r"[\"']?([A-Za-z_\- ]+?|-?\d+(?:\.\d+)?(?:\s*/\s*5)?)[\"']?\s*(?:[,}\n]|$)",
                      text, re.IGNORECASE)
        if m:
            found[key] = m.group(1).strip()
    for key in (*IMPROVED_KEYS[:1], *THOUGHT_KEYS[:1], *ANALYSIS_KEYS[:1], *RATIONALE_KEYS[:1]):
        m = re.search(_LOOSE_KEY.format(key=key) + r"[\"'](.*?)(?:[\"']\s*(?:[,}]|\n\s*[\"']?\w+[\"']?\s*:)|\Z)",
                      text, re.IGNORECASE | re.DOTALL)
        if m:
            found[key] = m.group(1)
    return found or None


def _best_object(raw: str, keys: tuple[str, ...], problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(raw, str) or not raw.strip():
        problems.append("empty response")
        return None
    objects = _objects(raw, problems)
    with_key = [o for o in objects if _has(o, keys)]
    return (with_key or objects or [None])[-1]


# ---------------------------------------------------------------------------------------------
# Field access and value normalisation


def _norm_key(key: str) -> str:
    return re.sub(r"[\s\-]+", "_", key.strip().lower())


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
    problems.append(f"{name} was not text; stored it as JSON")
    return json.dumps(value, ensure_ascii=False)


def _label_from_string(value: str) -> tuple[int | None, str | None]:
    text = value.strip()
    if text in ("0", "1"):
        return int(text), "label written as a string"
    word = _norm_key(text.strip("'\"`.!()[] "))
    if word in _LABEL_WORDS:
        return _LABEL_WORDS[word], f"label written as the word {text!r}"
    m = re.fullmatch(r"([01])\s*[\(\-:]\s*([A-Za-z_\- ]+?)\)?\.?", text)
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
        score = float(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*5)?\s*", value)
        if m:
            score = float(m.group(1))
            problems.append("score written as a string")
    if score is None or not 1 <= score <= 5:
        problems.append(f"score {str(value)[:20]!r} is not a number from 1 to 5")
        return None
    return score


def _failed(problems: list[str]) -> Parsed:
    return Parsed("failed", None, None, None, None, None, tuple(problems))


def _with(parsed: Parsed, **changes: Any) -> Parsed:
    return replace(parsed, **changes)
