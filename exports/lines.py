"""JSON Lines records of the exports, laid out only by exports.formats.

`sft_line` and `dpo_line` are the definitions: json.dumps of the record (key order fixed,
ensure_ascii=False, one object per line, "\\n" line ends). `SftLines` is the same layout compiled
for speed: it renders one line per label through `sft_line` (and the training text through
`sft_text`) with placeholder characters, keeps the constant pieces between them, and from then on
fills in each row's premise, hypothesis and thought, JSON-escaping them only where one holds a
character JSON escapes. The length estimate counts the three texts in one pass and adds the
constant pieces' counts, computed once; given the limit, it leaves out the second pass (repeated
spaces) wherever that cannot change which side of the limit a row falls on. It checks itself
against `sft_line` and `exports.length.estimate_tokens` on awkward text when built and falls back
to them if exports.formats ever stops inserting its arguments verbatim.
"""
from __future__ import annotations

import functools
import json
from json.encoder import encode_basestring
from typing import Any

from exports.formats import cot_target, inst_text, messages, user_prompt
from exports.length import LETTERS, estimate_tokens, part_stats, repeated_spaces, tokens

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
    (" ", "  ", "   "),
    ("a  b ", " c", "d "),
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
        self._line: dict[int, list[str]] = {}  # label -> head before the id, then the pieces around the texts
        self._text: dict[int, list[str]] = {}  # label -> the training text's pieces around the texts
        # label -> (letters and others of the text's constant pieces, whether a space run can cross each of the
        # six borders between a constant piece and a text: it ends / starts with a space)
        self._counts: dict[int, tuple[int, int, tuple[bool, ...]]] = {}
        self.compiled = False
        for label in (0, 1):
            head, found, tail = sft_line(_ID, _PREMISE, _HYPOTHESIS, _THOUGHT, label, fmt).partition(str(_ID))
            line_pieces = _split3(tail) if found and str(_ID) not in tail else None
            text_pieces = _split3(sft_text(_PREMISE, _HYPOTHESIS, _THOUGHT, label))
            if line_pieces is None or text_pieces is None:
                return
            self._line[label], self._text[label] = [head, *line_pieces], text_pieces
            stats = [part_stats(p) for p in text_pieces]
            t0, t1, t2, t3 = text_pieces
            borders = (t0[-1:] == " ", t1[:1] == " ", t1[-1:] == " ", t2[:1] == " ", t2[-1:] == " ", t3[:1] == " ")
            self._counts[label] = (sum(s.letters for s in stats), sum(s.others for s in stats), borders)
        self.compiled = True
        self.compiled = all(self._agrees(*probe, label) for probe in _PROBES for label in (0, 1))

    def _agrees(self, premise: str, hypothesis: str, thought: str, label: int) -> bool:
        line, estimate = self.line_and_estimate(7, premise, hypothesis, thought, label)
        exact = estimate_tokens(sft_text(premise, hypothesis, thought, label))
        return (line == sft_line(7, premise, hypothesis, thought, label, self.fmt) and estimate == exact
                and all((self.encoded(7, premise, hypothesis, thought, label, limit)[1] <= limit) == (exact <= limit)
                        for limit in (exact - 1, exact)))

    def encoded(self, example_id: int, premise: str, hypothesis: str, thought: str, label: int,
                limit: int | None = None) -> tuple[bytes, int]:
        """The UTF-8 JSONL line of a row and the length estimate of its training text (exports.length).

        Given a limit, the estimate may be a bound instead, always on the same side of the limit as
        the exact one: repeated spaces inside the texts are counted only where they could decide.
        """
        if not self.compiled:
            return (sft_line(example_id, premise, hypothesis, thought, label, self.fmt).encode(),
                    estimate_tokens(sft_text(premise, hypothesis, thought, label)))
        # The three texts in one pass; the NUL separators count as two "other" bytes, taken off again.
        data = f"{premise}\0{hypothesis}\0{thought}".encode()
        rest = data.translate(None, LETTERS)
        if len(rest) - len(rest.translate(None, _ESCAPED)) != 2 or not (premise and hypothesis and thought):
            return self._escaping(example_id, premise, hypothesis, thought, label)  # or an empty text
        letters, others, borders = self._counts[label]
        spaces = rest.count(b" ")
        others += len(rest) - spaces - 2 + (
            (borders[0] and premise[0] == " ") + (borders[1] and premise[-1] == " ")
            + (borders[2] and hypothesis[0] == " ") + (borders[3] and hypothesis[-1] == " ")
            + (borders[4] and thought[0] == " ") + (borders[5] and thought[-1] == " "))
        estimate = tokens(letters + len(data) - len(rest), others)  # all but the repeated spaces inside the texts
        if (limit is None or estimate <= limit < estimate + spaces) and b"  " in data:
            estimate += repeated_spaces(data)  # at most one per space, so only a limit in that span needs them
        head, c0, c1, c2, c3 = self._line[label]
        return f"{head}{example_id}{c0}{premise}{c1}{hypothesis}{c2}{thought}{c3}".encode(), estimate

    def _escaping(self, example_id: int, premise: str, hypothesis: str, thought: str,
                  label: int) -> tuple[bytes, int]:
        head, c0, c1, c2, c3 = self._line[label]
        t0, t1, t2, t3 = self._text[label]
        once = encode_basestring(thought)[1:-1]  # the thought as it stands inside the target JSON
        twice = once.replace("\\", "\\\\").replace('"', '\\"')  # inside the line (no control characters left)
        line = (f"{head}{example_id}{c0}{encode_basestring(premise)[1:-1]}{c1}"
                f"{encode_basestring(hypothesis)[1:-1]}{c2}{twice}{c3}")
        return line.encode(), estimate_tokens(f"{t0}{premise}{t1}{hypothesis}{t2}{once}{t3}")

    def line_and_estimate(self, example_id: int, premise: str, hypothesis: str, thought: str,
                          label: int) -> tuple[str, int]:
        """The JSONL line of a row (as text) and the exact length estimate of its training text."""
        line, estimate = self.encoded(example_id, premise, hypothesis, thought, label)
        return line.decode(), estimate
