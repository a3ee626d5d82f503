"""Where a label is read outside a JSON answer: key: value lines, a bare label, a final-answer line; and
the label statements, conclusions and cut-off labels that decide whether such a reading can be trusted."""
from __future__ import annotations

import re
from typing import Any

from pipeline.answer_fields import FIELD_NAMES, LABEL_KEYS, label_from_string, norm_key
from pipeline.json_in_text import NOT_JSON, try_loads


def bare_label(raw: str, problems: list[str]) -> dict[str, Any] | None:
    """A reply that is nothing but a label ("1", "Entailment."): allowed, noted as repaired."""
    text = raw.strip().strip("`'\"").strip().rstrip(".!").strip()
    if len(text) > 40:
        return None
    label, _ = label_from_string(text)
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


def statements(text: str) -> list[tuple[int | None, str]]:
    """Every label statement in text, with the label it states (None when the value is not a label)."""
    return [(label_from_string(m.group(1))[0], m.group(0)) for m in _STATEMENT.finditer(text)]


def final_line(raw: str, problems: list[str]) -> dict[str, Any] | None:
    """`Final answer: 1` as the last line, when it is the only label statement in the reply."""
    lines = [line for line in _unfenced(raw).split("\n") if line.strip()]
    if not lines or len(lines[-1]) > 80:
        return None
    m = _FINAL.fullmatch(lines[-1].strip())
    if m is None:
        return None
    label, _ = label_from_string(m.group(1))
    if label is None:
        return None
    earlier = statements("\n".join(lines[:-1]))
    if earlier:
        problems.append(f"the reply states a label more than once ({earlier[0][1].strip()[:40]!r} and "
                        f"{lines[-1].strip()[:40]!r})")
        return None
    problems.append(f"read the label from the final line {lines[-1].strip()[:40]!r}")
    return {"predicted_label": label}


# ---------------------------------------------------------------------------------------------
# Key: value lines

_FIELD_LINE = re.compile(r"[ \t]{0,8}[\"'*`-]{0,3}[ \t]?([A-Za-z][A-Za-z _-]{0,39}?)[\"'*`]{0,3}[ \t]{0,4}[:=](.*)")


def loose_fields(raw: str, problems: list[str]) -> dict[str, Any] | None:
    """A reply that is nothing but `key: value` lines for known fields, each stated once."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in _unfenced(raw).split("\n"):
        m = _FIELD_LINE.fullmatch(line.rstrip("\r"))
        key = norm_key(m.group(1)) if m else None
        if m and key in FIELD_NAMES:
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


def drop_cut_label(obj: dict[str, Any], chunk: str) -> bool:
    """Remove a label that is the last value of truncated JSON and ran into the end of the text."""
    if not _CUT_LABEL.search(chunk[-200:]):
        return False
    while isinstance(obj, dict) and obj:
        key = next(reversed(obj))
        if isinstance(key, str) and norm_key(key) in LABEL_KEYS and not isinstance(obj[key], dict):
            del obj[key]
            return True
        obj = obj[key]
    return False
