"""The SFT layout of exports.lines compiled for speed: the same bytes and length estimates, far fewer steps.

`SftLines` renders one line per label through `sft_line` (and the training text through `sft_text`)
with placeholder characters, keeps the constant pieces between them, and from then on fills in each
row's dataset and source id (JSON strings, as json.dumps writes them) and its premise, hypothesis and
thought, JSON-escaping those only where one holds a character JSON escapes. The length estimate
counts the three texts in one pass and adds the constant pieces' counts, computed once; given the
limit, it leaves out the second pass (repeated spaces) wherever that cannot change which side of the
limit a row falls on. It checks itself against `sft_line` and `exports.length.estimate_tokens` on
awkward text when built and falls back to them if exports.formats ever stops inserting its arguments
verbatim.
"""
from __future__ import annotations

import functools
from json.encoder import encode_basestring
from typing import Any

from exports.length import LETTERS, estimate_tokens, part_stats, repeated_spaces, tokens
from exports.lines import sft_line, sft_text

_PREMISE, _HYPOTHESIS, _THOUGHT = "\ue000", "\ue001", "\ue002"  # JSON leaves private-use characters as they are
_DATASET, _SOURCE_ID = "\ue003", "\ue004"
_ID = 918_273_645
_ESCAPED = bytes(range(32)) + b'"\\'  # what JSON escapes (ensure_ascii=False)
_ESCAPES_TO_NUL = bytes(0 if b in _ESCAPED else 1 for b in range(256))  # a table: counting them needs no setup
_SEPARATOR = "\x7f"
_PROBES = (
    ("plain", "text", "step 1: fine."),
    ('say "hi"\\', "tab\there\nnew line", 'quote " back \\ slash\n\r\x01\x1f \x7f'),
    ("  leading", "trailing  ", "é ü 😀 </s> [INST] \u2028 {\"predicted_label\": 0}"),
    (" ", "  ", "   "),
    ("a  b ", " c", "d "),
    ("", "", ""),
)


def _edges(pieces: list[str]) -> list[str]:
    """What stands for the pieces around the texts where those are counted: each piece's characters next to a text.

    A piece longer than two keeps its first and last character with a separator between them
    (neither letter, space nor escaped), so every run of spaces across a border is the run in the
    text, and the counts of these few characters are taken off again.
    """
    first, middle, before, last = pieces
    return [first[-1:], *(p if len(p) <= 2 else f"{p[0]}{_SEPARATOR}{p[-1]}" for p in (middle, before)), last[:1]]


def _escaped(text: str) -> int:
    return text.encode().translate(_ESCAPES_TO_NUL).count(0)


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
        # label -> the line's pieces (head before the id, around the dataset and the source id, then around the
        # texts), the edges of the text's
        # pieces around the texts (see _edges), the letters and others the text has besides the counted
        # data, and the escaped characters of the edges
        self._plan: dict[int, tuple[Any, ...]] = {}
        self._text: dict[int, list[str]] = {}  # label -> the training text's pieces around the texts
        self._named: dict[int, dict[str, str]] = {0: {}, 1: {}}  # label -> dataset -> its piece (see _name)
        self.compiled = False
        dataset, source_id = encode_basestring(_DATASET), encode_basestring(_SOURCE_ID)  # with their quotes
        for label in (0, 1):
            head, found, tail = sft_line(_ID, _DATASET, _SOURCE_ID, _PREMISE, _HYPOTHESIS, _THOUGHT, label,
                                         fmt).partition(str(_ID))
            after_id, found_dataset, tail = tail.partition(dataset)
            after_dataset, found_source, tail = tail.partition(source_id)
            line_pieces = (_split3(tail) if found and found_dataset and found_source and str(_ID) not in tail
                           and _DATASET not in tail and _SOURCE_ID not in tail else None)
            text_pieces = _split3(sft_text(_PREMISE, _HYPOTHESIS, _THOUGHT, label))
            if line_pieces is None or text_pieces is None:
                return
            edges = _edges(text_pieces)
            text, counted = [part_stats(p) for p in text_pieces], [part_stats(e) for e in edges]
            self._text[label] = text_pieces
            self._plan[label] = (head, after_id, after_dataset, *line_pieces, *edges,
                                 sum(t.letters for t in text) - sum(c.letters for c in counted),
                                 sum(t.others for t in text) - sum(c.others for c in counted),
                                 sum(_escaped(e) for e in edges))
        self.compiled = True
        self.compiled = all(self._agrees(*probe, label) for probe in _PROBES for label in (0, 1))

    def _agrees(self, premise: str, hypothesis: str, thought: str, label: int) -> bool:
        # The texts stand in for the dataset and source id too: the same awkward characters.
        names = (hypothesis, premise)
        line, estimate = self.line_and_estimate(7, *names, premise, hypothesis, thought, label)
        exact = estimate_tokens(sft_text(premise, hypothesis, thought, label))
        return (line == sft_line(7, *names, premise, hypothesis, thought, label, self.fmt) and estimate == exact
                and all((self.encoded(7, *names, premise, hypothesis, thought, label, limit)[1] <= limit)
                        == (exact <= limit) for limit in (exact - 1, exact)))

    def encoded(self, example_id: int, dataset: str, source_id: str, premise: str, hypothesis: str, thought: str,
                label: int, limit: int | None = None) -> tuple[bytes, int]:
        """The UTF-8 JSONL line of a row and the length estimate of its training text (exports.length).

        Given a limit, the estimate may be a bound instead, always on the same side of the limit as
        the exact one: repeated spaces are counted only where they could decide.
        """
        if not self.compiled:
            return (sft_line(example_id, dataset, source_id, premise, hypothesis, thought, label, self.fmt).encode(),
                    estimate_tokens(sft_text(premise, hypothesis, thought, label)))
        head, _i0, _i1, c0, c1, c2, c3, e0, e1, e2, e3, letters, others, escaped = self._plan[label]
        # The three texts between the edges of the pieces around them, counted in one pass.
        data = f"{e0}{premise}{e1}{hypothesis}{e2}{thought}{e3}".encode()
        rest = data.translate(None, LETTERS)
        if rest.translate(_ESCAPES_TO_NUL).count(0) != escaped:  # a text holds something JSON escapes
            return self._escaping(example_id, dataset, source_id, premise, hypothesis, thought, label)
        spaces = rest.count(b" ")
        estimate = tokens(letters + len(data) - len(rest), others + len(rest) - spaces)  # less repeated spaces
        if (limit is None or estimate <= limit < estimate + spaces) and b"  " in data:
            estimate += repeated_spaces(data)  # at most one per space, so only a limit in that span needs them
        named = self._named[label].get(dataset) or self._name(label, dataset)
        return (f"{head}{example_id}{named}{encode_basestring(source_id)}"
                f"{c0}{premise}{c1}{hypothesis}{c2}{thought}{c3}").encode(), estimate

    def _name(self, label: int, dataset: str) -> str:
        """The line's piece from after the id to the source id, for a dataset (kept: datasets are few)."""
        _head, i0, i1 = self._plan[label][:3]
        named = self._named[label][dataset] = f"{i0}{encode_basestring(dataset)}{i1}"
        return named

    def _escaping(self, example_id: int, dataset: str, source_id: str, premise: str, hypothesis: str, thought: str,
                  label: int) -> tuple[bytes, int]:
        head, i0, i1, c0, c1, c2, c3 = self._plan[label][:7]
        t0, t1, t2, t3 = self._text[label]
        once = encode_basestring(thought)[1:-1]  # the thought as it stands inside the target JSON
        twice = once.replace("\\", "\\\\").replace('"', '\\"')  # inside the line (no control characters left)
        line = (f"{head}{example_id}{i0}{encode_basestring(dataset)}{i1}{encode_basestring(source_id)}"
                f"{c0}{encode_basestring(premise)[1:-1]}{c1}"
                f"{encode_basestring(hypothesis)[1:-1]}{c2}{twice}{c3}")
        return line.encode(), estimate_tokens(f"{t0}{premise}{t1}{hypothesis}{t2}{once}{t3}")

    def line_and_estimate(self, example_id: int, dataset: str, source_id: str, premise: str, hypothesis: str,
                          thought: str, label: int) -> tuple[str, int]:
        """The JSONL line of a row (as text) and the exact length estimate of its training text."""
        line, estimate = self.encoded(example_id, dataset, source_id, premise, hypothesis, thought, label)
        return line.decode(), estimate
