"""The fields of a model's answer and how each value is read: key names, labels, scores, text.

What counts as a label value is pipeline.parsing's rule (its module docstring); label_value applies it.
"""
from __future__ import annotations

import json
import re
from typing import Any

from pipeline.json_in_text import Written

THOUGHT_KEYS = ("thought_process", "thoughts", "thought", "reasoning", "chain_of_thought")
IMPROVED_KEYS = ("improved_thought_process", "improved_thought", "improved_reasoning", "corrected_thought_process")
ANALYSIS_KEYS = ("error_analysis", "analysis", "errors")
LABEL_KEYS = ("predicted_label", "label", "prediction", "answer")
SCORE_KEYS = ("score", "rating")
RATIONALE_KEYS = ("rationale", "reason", "explanation", "justification")
FIELD_NAMES = frozenset(THOUGHT_KEYS + IMPROVED_KEYS + ANALYSIS_KEYS + LABEL_KEYS + SCORE_KEYS + RATIONALE_KEYS)

# Label words: compared after lower-casing, with spaces and hyphens turned into underscores.
_LABEL_WORDS = {
    "entailment": 1, "entailed": 1, "entails": 1, "entail": 1, "yes": 1, "true": 1,
    "not_entailment": 0, "non_entailment": 0, "no_entailment": 0, "not_entailed": 0, "nonentailment": 0,
    "contradiction": 0, "neutral": 0, "no": 0, "false": 0,
}

_WRITTEN_LABEL = re.compile(r"[01]\.0+")  # 1.0 / 0.000: a decimal label with zeros only, as written


def label_value(value: object) -> tuple[int | None, str | None]:
    """A label as a model wrote it -> (0/1 or None, a note on what was normalised or why it was refused).

    A float read by pipeline.json_in_text carries its written text: only `0.0`/`1.0` written so
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
        return label_from_string(value)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (str, int, float)):
        label, _ = label_value(value[0])
        return label, f"label written as a list {_show(value)}"
    return None, f"label {_show(value)} is not 0 or 1"


def _show(value: object, limit: int = 40) -> str:
    """A short, safe rendering of any value (huge integers and deep nesting included)."""
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        text = f"<{type(value).__name__}>"
    return repr(text[:limit]) if isinstance(value, str) else text[:limit]


_KEY_GAPS = re.compile(r"[\s\-]+")
_NUMBER_AND_WORD = re.compile(r"([01])\s*[\(\-:]\s*([A-Za-z_\- ]+?)\)?\.?")
_SCORE_TEXT = re.compile(r"\s*(\d{1,6}(?:\.\d{1,12})?)\s*(?:/\s*5)?\s*")


def norm_key(key: str) -> str:
    key = key.strip().lower()
    return key if key.replace("_", "").isalnum() else _KEY_GAPS.sub("_", key)


def has_key(obj: dict[str, Any], keys: tuple[str, ...]) -> bool:
    names = {norm_key(k) for k in obj if isinstance(k, str)}
    return any(k in names for k in keys)


def get_field(obj: dict[str, Any], keys: tuple[str, ...], problems: list[str], name: str) -> Any:
    by_norm = {norm_key(k): v for k, v in obj.items() if isinstance(k, str)}
    for key in keys:
        if key in by_norm:
            if key != name and f"read {name} from key {key!r}" not in problems:
                problems.append(f"read {name} from key {key!r}")
            elif key not in obj:
                problems.append(f"key {name!r} was written differently")
            return by_norm[key]
    return None


def text_value(value: Any, name: str, problems: list[str]) -> str | None:
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


def label_from_string(value: str) -> tuple[int | None, str | None]:
    text = value.strip()
    if text in ("0", "1"):
        return int(text), "label written as a string"
    if len(text) > 60:
        return None, f"label {text[:40]!r} is not 0 or 1"
    word = norm_key(text.strip("'\"`.!()[] "))
    if word in ("0", "1"):
        return int(word), f"label written as {text!r}"
    if word in _LABEL_WORDS:
        return _LABEL_WORDS[word], f"label written as the word {text!r}"
    m = _NUMBER_AND_WORD.fullmatch(text)
    if m and _LABEL_WORDS.get(norm_key(m.group(2))) == int(m.group(1)):
        return int(m.group(1)), f"label written as {text!r}"
    return None, f"label {text[:40]!r} is not 0 or 1"


def score_value(value: Any, problems: list[str]) -> float | None:
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

