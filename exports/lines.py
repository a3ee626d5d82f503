"""JSON Lines records of the exports, laid out only by exports.formats.

`sft_line` and `dpo_line` are the definitions: json.dumps of the record (key order fixed,
ensure_ascii=False, one object per line, "\\n" line ends). `SftLines` is the same layout compiled
for speed: it renders one line per label through `sft_line` with placeholder characters, keeps
the constant pieces between them, and from then on only JSON-escapes the premise, hypothesis and
thought of each row. It checks itself against `sft_line` on awkward text when built and falls back
to `sft_line` if exports.formats ever stops inserting its arguments verbatim.
"""
from __future__ import annotations

import functools
import json
from json.encoder import encode_basestring
from typing import Any

from exports.formats import cot_target, inst_text, messages, user_prompt
from exports.length import LETTERS, PartStats, combine, estimate_tokens, part_stats, repeated_spaces, tokens

_ENCODER = json.JSONEncoder(ensure_ascii=False)  # exactly json.dumps(..., ensure_ascii=False)
_PREMISE, _HYPOTHESIS, _THOUGHT = "\ue000", "\ue001", "\ue002"  # JSON leaves private-use characters as they are
_ID = 918_273_645
_ESCAPED = bytes(range(32)) + b'"\\'  # what JSON escapes (ensure_ascii=False)
# The keys of a DPO record's provenance, in order, with their types (for the Hugging Face features).
PROVENANCE_FIELDS = {
    "dataset": "string", "split": "string", "source_id": "string", "gold_label": "int64",
    "target_label": "int64", "review_status": "string", "reviewer": "string", "review_event": "int64",
    "chosen_source": "string", "chosen_generation_id": "int64", "chosen_model": "string",
    "rejected_source": "string", "rejected_generation_id": "int64", "rejected_model": "string",
}
_PROBES = (
    ("plain", "text", "step 1: fine."),
    ('say "hi"\\', "tab\there\nnew line", 'quote " back \\ slash\n\r\x01\x1f \x7f'),
    ("  leading", "trailing  ", "é ü 😀 </s> [INST] \u2028 {\"predicted_label\": 0}"),
    ("", "", ""),
)


def sft_text(premise: str, hypothesis: str, thought: str, label: int) -> str:
    """The full training text of an SFT row in the Mistral [INST] layout (what the length check measures)."""
    return inst_text(user_prompt(premise, hypothesis), cot_target(thought, label))


def sft_line(example_id: int, premise: str, hypothesis: str, thought: str, label: int, fmt: str) -> str:
    """One SFT record: {"id", "text"} (inst) or {"id", "messages"} (messages), with its newline."""
    prompt, target = user_prompt(premise, hypothesis), cot_target(thought, label)
    if fmt == "inst":
        record: dict[str, Any] = {"id": example_id, "text": inst_text(prompt, target)}
    else:
        record = {"id": example_id, "messages": messages(prompt, target)}
    return _ENCODER.encode(record) + "\n"


def dpo_line(example_id: int, premise: str, hypothesis: str, chosen: tuple[str, int], rejected: tuple[str, int],
             provenance: dict[str, Any]) -> str:
    """One DPO record: {"id", "prompt", "chosen", "rejected", "provenance"}, with its newline."""
    record = {
        "id": example_id,
        "prompt": user_prompt(premise, hypothesis),
        "chosen": cot_target(*chosen),
        "rejected": cot_target(*rejected),
        "provenance": provenance,
    }
    return _ENCODER.encode(record) + "\n"


def _split3(text: str) -> list[str] | None:
    """The constant pieces around the three placeholders, or None unless each occurs once, in order."""
    if [c for c in text if c in (_PREMISE, _HYPOTHESIS, _THOUGHT)] != [_PREMISE, _HYPOTHESIS, _THOUGHT]:
        return None
    head, rest = text.split(_PREMISE)
    middle, rest = rest.split(_HYPOTHESIS)
    before, tail = rest.split(_THOUGHT)
    return [head, middle, before, tail]


@functools.cache
def sft_lines(fmt: str) -> SftLines:
    """The compiled layout of a format, built once per process."""
    return SftLines(fmt)


class SftLines:
    """Fast SFT lines and length estimates for one format (see the module docstring)."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self._line: dict[int, list[str]] = {}
        self._text: dict[int, tuple[int, int, tuple[bool, ...], list[PartStats]]] = {}
        self.compiled = False
        for label in (0, 1):
            head, found, tail = sft_line(_ID, _PREMISE, _HYPOTHESIS, _THOUGHT, label, fmt).partition(str(_ID))
            line_pieces = _split3(tail) if found and str(_ID) not in tail else None
            text_pieces = _split3(sft_text(_PREMISE, _HYPOTHESIS, _THOUGHT, label))
            if line_pieces is None or text_pieces is None:
                return
            self._line[label] = [head, *line_pieces]
            stats = [part_stats(p) for p in text_pieces]
            # Where a constant piece ends (or starts) with a space, a variable piece beside it starting
            # (or ending) with one adds a repeated space.
            edges = (stats[0].ends_with_space, stats[1].starts_with_space, stats[1].ends_with_space,
                     stats[2].starts_with_space, stats[2].ends_with_space, stats[3].starts_with_space)
            self._text[label] = (sum(p.letters for p in stats), sum(p.others for p in stats), edges, stats)
        self.compiled = True
        self.compiled = all(self._agrees(*probe, label) for probe in _PROBES for label in (0, 1))

    def _agrees(self, premise: str, hypothesis: str, thought: str, label: int) -> bool:
        line, estimate = self.line_and_estimate(7, premise, hypothesis, thought, label)
        return (line == sft_line(7, premise, hypothesis, thought, label, self.fmt)
                and estimate == estimate_tokens(sft_text(premise, hypothesis, thought, label)))

    def line_and_estimate(self, example_id: int, premise: str, hypothesis: str, thought: str,
                          label: int) -> tuple[str, int]:
        """The JSONL line of a row and the length estimate of its training text (exports.length)."""
        if not self.compiled:
            return (sft_line(example_id, premise, hypothesis, thought, label, self.fmt),
                    estimate_tokens(sft_text(premise, hypothesis, thought, label)))
        head, c0, c1, c2, c3 = self._line[label]
        const_letters, const_others, edges, stats = self._text[label]
        if not (premise and hypothesis and thought):
            once = encode_basestring(thought)[1:-1]
            return (self._join(example_id, head, c0, c1, c2, c3, premise, hypothesis, once),
                    combine((stats[0], part_stats(premise), stats[1], part_stats(hypothesis), stats[2],
                             part_stats(once), stats[3])))
        # The three pieces in one pass; the NUL separators count as two "other" bytes, taken off again.
        data = f"{premise}\0{hypothesis}\0{thought}".encode()
        rest = data.translate(None, LETTERS)
        if len(rest.translate(None, _ESCAPED)) == len(rest) - 2:  # nothing to escape: JSON keeps the text as is
            once = thought
            line = f"{head}{example_id}{c0}{premise}{c1}{hypothesis}{c2}{thought}{c3}"
        else:
            once = encode_basestring(thought)[1:-1]  # the thought as it stands inside the target JSON
            line = self._join(example_id, head, c0, c1, c2, c3, premise, hypothesis, once)
            data = f"{premise}\0{hypothesis}\0{once}".encode()
            rest = data.translate(None, LETTERS)
        others = const_others + len(rest) - rest.count(b" ") - 2
        if b"  " in data:
            others += repeated_spaces(data)
        others += ((edges[0] and premise[0] == " ") + (edges[1] and premise[-1] == " ")
                   + (edges[2] and hypothesis[0] == " ") + (edges[3] and hypothesis[-1] == " ")
                   + (edges[4] and once[0] == " ") + (edges[5] and once[-1] == " "))
        return line, tokens(const_letters + len(data) - len(rest), others)

    @staticmethod
    def _join(example_id: int, head: str, c0: str, c1: str, c2: str, c3: str, premise: str, hypothesis: str,
              once: str) -> str:
        twice = once.replace("\\", "\\\\").replace('"', '\\"')  # inside the line (no control characters left)
        return (f"{head}{example_id}{c0}{encode_basestring(premise)[1:-1]}{c1}"
                f"{encode_basestring(hypothesis)[1:-1]}{c2}{twice}{c3}")

    def line(self, example_id: int, premise: str, hypothesis: str, thought: str, label: int) -> str:
        """The JSONL line of a row."""
        return self.line_and_estimate(example_id, premise, hypothesis, thought, label)[0]
