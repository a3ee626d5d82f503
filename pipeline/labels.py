"""Gold labels: 1 = entailment, 0 = no-entailment. Names map to numbers only through an explicit map."""
from __future__ import annotations

# The documented `--label-map nli` preset: the usual three- and two-way NLI label names.
NLI_PRESET = {
    "entailment": 1,
    "not_entailment": 0,
    "non_entailment": 0,
    "neutral": 0,
    "contradiction": 0,
}
PRESETS = {"nli": NLI_PRESET}


class LabelError(ValueError):
    """A label that is not 0/1 and not in the label map (the message says how to fix it)."""


def parse_label_map(spec: str | None) -> dict[str, int]:
    """`nli`, or comma-separated NAME=0|1 pairs (names compared case-insensitively); None: numbers only."""
    if not spec:
        return {}
    if spec in PRESETS:
        return dict(PRESETS[spec])
    mapping: dict[str, int] = {}
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        if not sep or value.strip() not in ("0", "1") or not name.strip():
            raise LabelError(
                f"bad --label-map entry {part!r}: use a preset ({', '.join(PRESETS)}) or NAME=0|1 pairs, "
                "e.g. 'entailment=1,neutral=0,contradiction=0'"
            )
        mapping[name.strip().lower()] = int(value)
    return mapping


def gold_label(value: object, mapping: dict[str, int]) -> int:
    """The 0/1 gold label for a value read from a file, or LabelError."""
    if isinstance(value, bool):
        raise LabelError(f"label {value!r} is a boolean; use 0 or 1")
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, float) and value in (0.0, 1.0):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text in ("0", "1"):
            return int(text)
        if text.lower() in mapping:
            return mapping[text.lower()]
        if not text:
            raise LabelError("the label is empty; give 0 (no entailment) or 1 (entailment)")
    hint = (
        "use 0 (no entailment) or 1 (entailment)"
        if not mapping
        else f"the label map knows only {', '.join(sorted(mapping))}"
    )
    raise LabelError(
        f"label {value!r} is not 0 or 1: {hint}, or pass --label-map nli to map "
        "entailment=1 and neutral/contradiction/not_entailment=0"
    )
