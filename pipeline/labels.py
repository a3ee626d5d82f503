"""Gold labels: 1 = entailment, 0 = no-entailment. Names, and numbers other than 0/1, map only through an explicit map.

A label map (`--label-map`) maps label texts (compared stripped and case-insensitively) to 0 or 1, or
to None: "no gold label" (the annotators reached no consensus), a row skipped and counted, never
guessed. A map that names a number (`0=1,1=0,2=0`) is *numbered*: every number is then read through
it, 0 and 1 included; without one, 0 and 1 are themselves. A number from JSON counts only as written
(pipeline.answer_fields.label_value's rules: `1` or `1.0`, never `0.99999999999999999` or `1e-400`).
"""
from __future__ import annotations

import re
import sys

from pipeline.answer_fields import label_value
from pipeline.errors import PipelineError
from pipeline.json_in_text import Written

LabelMap = dict[str, int | None]

# The documented `--label-map nli` preset: the usual three- and two-way NLI label names.
NLI_PRESET: LabelMap = {
    "entailment": 1,
    "not_entailment": 0,
    "non_entailment": 0,
    "neutral": 0,
    "contradiction": 0,
}
# `--label-map nli-numbered`: Hugging Face's SNLI / MultiNLI / ANLI copies number 0 = entailment,
# 1 = neutral, 2 = contradiction, and -1 = no gold label (SNLI's `-`).
NLI_NUMBERED: LabelMap = {"0": 1, "1": 0, "2": 0, "-1": None}
PRESETS = {"nli": NLI_PRESET, "nli-numbered": NLI_NUMBERED}
NO_GOLD = "-"  # the value of a map entry whose label means "no gold label": NAME=-
_NUMBER = re.compile(r"[+-]?\d+")
_SHOWN = 40  # characters of a value shown in a message (a 5,000-digit number is cut)


class LabelError(PipelineError, ValueError):
    """A label that is not 0/1 and not in the label map; reason and fix say what and how."""

    def __init__(self, reason: str, fix: str, *, three_class: bool = False):
        super().__init__(f"{reason}: {fix}")
        self.reason, self.fix, self.three_class = reason, fix, three_class


THREE_CLASS = ("this looks like a 3-class NLI file numbered 0 = entailment, 1 = neutral, 2 = contradiction (as "
               "Hugging Face's SNLI / MultiNLI copies are)")
THREE_CLASS_FIX = ("import it with --label-map nli-numbered (0 -> 1, entailment; 1, 2 -> 0; -1 = no gold label, "
                   "skipped). If 0 and 1 here already mean no entailment and entailment, pass --label-map 0=0,1=1 "
                   "(with --skip-bad to leave out the rows labelled 2)")


def parse_label_map(spec: str | None) -> LabelMap:
    """A preset (`nli`, `nli-numbered`), or comma-separated NAME=0|1|- pairs; None: numbers 0/1 only."""
    if not spec:
        return {}
    if spec.strip() in PRESETS:
        return dict(PRESETS[spec.strip()])
    mapping: LabelMap = {}
    for part in spec.split(","):
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or value not in ("0", "1", NO_GOLD) or not name:
            raise LabelError(
                f"bad --label-map entry {part!r}",
                f"use a preset ({', '.join(PRESETS)}) or NAME=0|1 pairs, e.g. 'entailment=1,neutral=0,"
                "contradiction=0' or, for numbered labels, '0=1,1=0,2=0' (NAME=- marks a label meaning no gold "
                "label: such rows are skipped)")
        key = name.lower()
        if key in mapping:
            raise LabelError(f"--label-map names {name!r} twice", "give each label once")
        mapping[key] = None if value == NO_GOLD else int(value)
    return mapping


def numbered(mapping: LabelMap) -> bool:
    """Whether the map names a number (then every number is read through it, 0 and 1 included)."""
    return any(_NUMBER.fullmatch(key) for key in mapping)


def as_written(value: object) -> str:
    """A label value for a message, as the file wrote it (a number's own digits, a string quoted), cut short."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (list, dict)):
        return f"a JSON {'list' if isinstance(value, list) else 'object'}"
    if isinstance(value, Written):
        text = value.written
    elif isinstance(value, (int, float)):
        try:
            text = repr(value)
        except ValueError:  # an integer over Python's int-to-text limit (not from our readers)
            return f"an integer of over {sys.get_int_max_str_digits():,} digits"
    else:
        text = str(value)
    cut = text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."
    shown = repr(cut) if isinstance(value, str) else cut
    return shown if len(text) <= _SHOWN else f"{shown} ({len(text):,} characters)"


def describe(mapping: LabelMap) -> str:
    """A label map as NAME=0|1|- pairs, as --label-map takes it."""
    return ",".join(f"{name}={NO_GOLD if label is None else label}" for name, label in mapping.items())


def gold_label(value: object, mapping: LabelMap) -> int | None:
    """The 0/1 gold label of a value read from a file (None: the map says it has no gold label), or LabelError."""
    if isinstance(value, bool):
        raise LabelError(f"label {as_written(value)} is a boolean", "write 0 or 1")
    if isinstance(value, (int, float)):
        label, _ = label_value(value)
        written = value.written if isinstance(value, Written) else str(value)
        if label is None and not _NUMBER.fullmatch(written):
            raise LabelError(f"label {as_written(value)} is not 0 or 1 as written",
                             "write the label as the integer 0 or 1 (a number that only rounds to 0 or 1, "
                             "such as 0.99999999999999999 or 1e-400, is not taken as one)")
        key = written if label is None or isinstance(value, int) else str(label)  # 1.0 written so is 1
    elif isinstance(value, str):
        key = value.strip().lower()
        if not key:
            raise LabelError("the label is empty", "give 0 (no entailment) or 1 (entailment)")
    else:
        raise LabelError(f"label {as_written(value)} is not 0 or 1", "give 0 (no entailment) or 1 (entailment)")
    if key in mapping:
        return mapping[key]
    is_numbered = numbered(mapping)
    if not is_numbered and key in ("0", "1"):
        return int(key)
    reason = f"label {as_written(value)} is not 0 or 1"
    if is_numbered:
        raise LabelError(f"label {as_written(value)} is not in the label map",
                         f"the label map is {describe(mapping)}; add it to --label-map")
    if key == "2":
        raise LabelError(reason, f"{THREE_CLASS}: {THREE_CLASS_FIX}", three_class=True)
    if mapping:
        raise LabelError(reason, f"the label map knows only {', '.join(sorted(mapping))}; add it to --label-map")
    raise LabelError(reason, "use 0 (no entailment) or 1 (entailment), or pass --label-map nli to map "
                     "entailment=1 and neutral/contradiction/not_entailment=0")
